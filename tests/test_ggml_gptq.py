"""GPTQ and RTN onto ggml grids: the GGUF file decodes to exactly slmkit's weights, and llama.cpp runs them."""

from __future__ import annotations

import os
import subprocess
import sys

import gguf
import numpy as np
import pytest
import torch
from tiny import tiny_model, tiny_tokenizer

from slmkit.anatomy import decoder_linears
from slmkit.compress.quant.gptq import gptq_codes, gptq_quantize
from slmkit.compress.quant.options import GPTQOptions, RTNOptions
from slmkit.compress.quant.rtn import rtn_quantize
from slmkit.errors import SlmError
from slmkit.ggml.blocks import dequantize
from slmkit.ggml.rtn import quantize
from slmkit.ggml.types import grid_type
from slmkit.layouts.gguf import permute_rotary
from slmkit.layouts.gguf import save as export_gguf
from slmkit.modules.ggml_linear import GgmlLinear
from slmkit.steps import StepContext

NAMES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
         "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}


def gptq_model(gguf_type: str, **options):
    model = tiny_model("llama", seed=7, hidden_size=64, intermediate_size=128)
    context = StepContext(tokenizer=tiny_tokenizer(), nsamples=4, seqlen=32, calibration_source="pydoc")
    return gptq_quantize(model, tiny_tokenizer(), GPTQOptions(gguf_type=gguf_type, **options), context)


def file_weight(reader_tensors, path: str, config) -> torch.Tensor:
    """The file's decoded weight for decoder Linear `path`, rotary permutation undone."""
    layer, proj = path.split(".")[2], path.split(".")[-1]
    t = reader_tensors[f"blk.{layer}.{NAMES[proj]}.weight"]
    w = torch.from_numpy(gguf.quants.dequantize(t.data, t.tensor_type).reshape(t.data.shape[0], -1).copy())
    heads = {"q_proj": config.num_attention_heads, "k_proj": config.num_key_value_heads}.get(proj)
    if heads:  # permute_rotary's inverse: view as [heads, half, 2, ...] and swap back
        w = w.reshape(heads, w.shape[0] // heads // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)
    return w


@pytest.mark.parametrize("gguf_type,act_order", [("Q4_0", True), ("Q4_0", False), ("Q4_1", True), ("Q5_0", True),
                                                 ("Q8_0", False)])
def test_gguf_of_gptq_decodes_to_slmkit_weights_bit_for_bit(tmp_path, gguf_type, act_order):
    model = gptq_model(gguf_type, act_order=act_order)
    linears = decoder_linears(model)
    assert linears and all(isinstance(m, GgmlLinear) and m.gguf_type == gguf_type for m in linears.values())
    reader = gguf.GGUFReader(export_gguf(model, tiny_tokenizer(), tmp_path / "m.gguf", gguf_type))
    tensors = {t.name: t for t in reader.tensors}
    for path, module in linears.items():
        theirs = file_weight(tensors, path, model.config)
        assert torch.equal(theirs.view(torch.int32), module.dequantized_weight().view(torch.int32)), path


def test_permutation_inverse_used_by_the_test_is_exact():
    w = torch.randn(16, 8)
    p = permute_rotary(w, 2)
    assert torch.equal(p.reshape(2, 4, 2, -1).swapaxes(1, 2).reshape(w.shape), w)


@pytest.mark.parametrize("name", ["Q4_0", "Q4_1", "Q5_0"])
@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_on_the_grid_beats_rtn_on_the_grid(name, act_order):
    """Output error on correlated inputs: GPTQ's error feedback pays off on the decoded grid."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(512, 128, generator=g) @ (torch.randn(128, 128, generator=g) * 0.3 + torch.eye(128))
    w = torch.randn(64, 128, generator=g)
    t = grid_type(name)
    q = gptq_codes(w, x.T @ x / len(x), t, act_order=act_order, blocksize=32)
    rtn = dequantize(quantize(w, t))
    err = lambda w_hat: float((x @ (w - w_hat).T).pow(2).sum())  # noqa: E731
    assert err(dequantize(q)) < 0.8 * err(rtn)


def test_llama_cpp_logits_match_slmkit(tmp_path):
    llama_cpp = pytest.importorskip("llama_cpp")
    model = gptq_model("Q8_0", act_order=True)
    path = export_gguf(model, tiny_tokenizer(), tmp_path / "m.gguf", "Q8_0")
    ids = list(range(5, 45))
    llm = llama_cpp.Llama(str(path), logits_all=True, n_ctx=64, n_threads=1, verbose=False)
    llm.eval(ids)
    theirs = np.array(llm.scores[: len(ids)])
    with torch.no_grad():
        mine = model(torch.tensor([ids])).logits[0].numpy()
    # ggml multiplies Q8_0 weights by activations it rounds to 8 bits itself: close, not bit-equal.
    assert np.abs(theirs - mine).max() < 0.05 * np.abs(mine).max()
    assert (theirs.argmax(-1) == mine.argmax(-1)).mean() > 0.9


def test_errors_before_work(tmp_path):
    with pytest.raises(ValueError, match="gguf_type must be one of"):
        GPTQOptions(gguf_type="Q3_K")
    with pytest.raises(SlmError, match="rows of 48 values"):
        rtn_quantize(tiny_model("llama", hidden_size=48, intermediate_size=96), None, RTNOptions(gguf_type="Q4_0"))
    with pytest.raises(SlmError, match="cannot store pruned weights"):
        gptq_model("Q4_1", sparsity=0.5)
    model = rtn_quantize(tiny_model("llama"), None, RTNOptions(gguf_type="Q4_0"))
    with pytest.raises(SlmError, match="Q4_0 grid and a Q8_0 tensor was asked.*--requantize"):
        export_gguf(model, tiny_tokenizer(), tmp_path / "m.gguf", "Q8_0")
    assert gguf.GGUFReader(export_gguf(model, tiny_tokenizer(), tmp_path / "m.gguf", "Q8_0", requantize=True)).tensors


def test_gguf_loads_back_onto_the_same_blocks_and_reexports_raw(tmp_path):
    from slmkit.layouts import gguf as codec

    model = gptq_model("Q5_0")
    first = export_gguf(model, tiny_tokenizer(), tmp_path / "a.gguf")
    back, tokenizer = codec.load(first)
    linears = decoder_linears(back)
    assert all(isinstance(m, GgmlLinear) and m.gguf_type == "Q5_0" for m in linears.values())
    for path, module in decoder_linears(model).items():
        assert torch.equal(linears[path].codes, module.codes) and torch.equal(linears[path].d, module.d)
    second = export_gguf(back, tokenizer, tmp_path / "b.gguf")
    a, b = ({t.name: np.asarray(t.data) for t in gguf.GGUFReader(p).tensors} for p in (first, second))
    # The token embedding is an nn.Embedding, loaded as floats and rounded again on export (known gap).
    assert a.keys() == b.keys() and [k for k in a if not np.array_equal(a[k], b[k])] in ([], ["token_embd.weight"])


def test_cli_compress_to_gguf_then_export_raw_or_refuse(tmp_path, tiny_folder):
    def slm(*args, check=True):
        env = dict(os.environ, SLMKIT_PROGRESS="0", HF_HUB_OFFLINE="1")
        result = subprocess.run([sys.executable, "-m", "slmkit.cli", *args], capture_output=True, text=True, env=env)
        assert result.returncode == 0 or not check, result.stderr
        return result

    out = tmp_path / "m.gguf"
    slm("compress", str(tiny_folder), "--method", "rtn", "--gguf-type", "Q5_0", "--out", str(out))
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(out).tensors}
    assert types["blk.0.attn_q.weight"] == "Q5_0" and types["output_norm.weight"] == "F32"
    raw = tmp_path / "again.gguf"
    slm("export", str(out), "--format", "gguf", "--out", str(raw))
    a, b = ({t.name: np.asarray(t.data) for t in gguf.GGUFReader(p).tensors} for p in (out, raw))
    assert all(np.array_equal(a[k], b[k]) for k in a if k.startswith("blk."))
    result = slm("export", str(out), "--format", "gguf", "--type", "Q8_0", "--out", str(tmp_path / "x.gguf"), check=False)
    assert result.returncode == 1 and "--requantize" in result.stderr and not (tmp_path / "x.gguf").exists()
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("quantizer", ["rtn", "gptq"])
def test_awq_on_the_grid_exports_raw(tmp_path, quantizer):
    from slmkit.compress.quant.awq import awq_quantize
    from slmkit.compress.quant.options import AWQOptions

    model = tiny_model("llama", seed=7, hidden_size=64, intermediate_size=128)
    context = StepContext(tokenizer=tiny_tokenizer(), nsamples=4, seqlen=32, calibration_source="pydoc")
    model = awq_quantize(model, tiny_tokenizer(), AWQOptions(gguf_type="Q4_0", quantizer=quantizer, grid=4), context)
    assert all(isinstance(m, GgmlLinear) and m.gguf_type == "Q4_0" for m in decoder_linears(model).values())
    tensors = {t.name: t for t in gguf.GGUFReader(export_gguf(model, tiny_tokenizer(), tmp_path / "m.gguf")).tensors}
    for path, module in decoder_linears(model).items():
        assert torch.equal(file_weight(tensors, path, model.config), module.dequantized_weight()), path


def test_importance_rtn_lowers_output_error_and_exports_raw(tmp_path):
    """With the calibration inputs' importance, the rounding error the layer's outputs see goes down."""
    make = lambda: tiny_model("llama", seed=7, hidden_size=64, intermediate_size=128)  # noqa: E731
    context = StepContext(tokenizer=tiny_tokenizer(), nsamples=4, seqlen=32, calibration_source="pydoc")
    weighted = rtn_quantize(make(), tiny_tokenizer(), RTNOptions(gguf_type="Q4_0", importance=True), context)
    plain = rtn_quantize(make(), tiny_tokenizer(), RTNOptions(gguf_type="Q4_0"))
    ids, base = context.calibration_ids(), make()
    with torch.no_grad():
        ref = base(ids).logits
        err = {n: (m(ids).logits - ref).pow(2).mean().item() for n, m in (("weighted", weighted), ("plain", plain))}
    assert err["weighted"] < err["plain"]
    tensors = {t.name: t for t in gguf.GGUFReader(export_gguf(weighted, tiny_tokenizer(), tmp_path / "m.gguf")).tensors}
    for path, module in decoder_linears(weighted).items():
        assert torch.equal(file_weight(tensors, path, weighted.config), module.dequantized_weight()), path
    with pytest.raises(ValueError, match="importance needs gguf_type"):
        RTNOptions(gguf_type="Q4_1", importance=True)
