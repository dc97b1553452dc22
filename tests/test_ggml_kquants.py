"""K grids end to end: GPTQ onto Q4_K (and the 32-wide grids) gives GGUF files that decode to slmkit's exact
weights and run in llama.cpp; a K file type's mix (Q4_K_M) quantizes each layer on the type llama-quantize gives it."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch
from test_ggml_export import llama_quantize
from test_ggml_gptq import file_weight
from tiny import tiny_model, tiny_tokenizer

from slmkit.anatomy import decoder_linears
from slmkit.compress.quant.gptq import gptq_codes, gptq_quantize
from slmkit.compress.quant.options import GPTQOptions, RTNOptions
from slmkit.compress.quant.rtn import rtn_quantize
from slmkit.errors import SlmError
from slmkit.ggml.blocks import dequantize, pack
from slmkit.ggml.rtn import quantize
from slmkit.ggml.types import grid_type
from slmkit.layouts.gguf import save as export_gguf
from slmkit.modules.ggml_linear import GgmlLinear
from slmkit.steps import StepContext
from tests.ggml_ref import ggml_quantize


def context():
    return StepContext(tokenizer=tiny_tokenizer(), nsamples=4, seqlen=32, calibration_source="pydoc")


def k_model(**shape):
    """Rows of 256 (hidden) and 512 (intermediate): every decoder Linear fits the K super-blocks. Tied embeddings."""
    return tiny_model("llama", seed=11, **{"hidden_size": 256, "intermediate_size": 512, "tie_word_embeddings": True,
                                           **shape})


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", ["Q4_K", "Q5_K", "Q6_K"])
def test_rtn_bytes_equal_llama_cpp_on_random_matrices(name, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(32, 768, generator=g) * torch.rand(32, 1, generator=g) ** 2 * (0.02, 1.0, 0.3)[seed]
    imp = torch.rand(768, generator=g) ** 3 + 1e-4
    t = grid_type(name)
    for importance in (None, imp):
        theirs = ggml_quantize(w.numpy(), t.ggml_id, t.block_bytes, t.block, None if importance is None else imp.numpy())
        assert np.array_equal(pack(quantize(w, t, importance)).numpy(), theirs), importance is not None


@pytest.mark.parametrize("name", ["Q4_K", "Q5_K", "Q6_K"])
@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_on_k_grids_beats_rtn(name, act_order):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1024, 512, generator=g) @ (torch.randn(512, 512, generator=g) * 0.1 + torch.eye(512))
    w = torch.randn(48, 512, generator=g)
    t = grid_type(name)
    q = gptq_codes(w, x.T @ x / len(x), t, act_order=act_order)
    err = lambda w_hat: float((x @ (w - w_hat).T).pow(2).sum())  # noqa: E731
    assert err(dequantize(q)) < 0.8 * err(dequantize(quantize(w, t)))


@pytest.mark.parametrize("gguf_type", ["Q4_0", "Q4_1", "Q5_0", "Q8_0", "Q4_K"])
def test_gptq_gguf_decodes_bit_exact_and_llama_cpp_logits_match(tmp_path, gguf_type):
    llama_cpp = pytest.importorskip("llama_cpp")
    model = gptq_quantize(k_model(), tiny_tokenizer(), GPTQOptions(gguf_type=gguf_type), context())
    linears = decoder_linears(model)
    assert all(isinstance(m, GgmlLinear) and m.gguf_type == gguf_type for m in linears.values())
    path = export_gguf(model, tiny_tokenizer(), tmp_path / "m.gguf")
    tensors = {t.name: t for t in gguf.GGUFReader(path).tensors}
    assert {tensors[f"blk.0.{n}.weight"].tensor_type.name for n in ("attn_q", "ffn_down")} == {gguf_type}
    for p, module in linears.items():
        assert torch.equal(file_weight(tensors, p, model.config).view(torch.int32),
                           module.dequantized_weight().view(torch.int32)), p
    embed = tensors["token_embd.weight"]  # llama-quantize's type for it (Q6_K here): give slmkit the same floats
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(torch.from_numpy(
            gguf.quants.dequantize(embed.data, embed.tensor_type).reshape(model.config.vocab_size, -1).copy()))
    ids = list(range(5, 45))
    llm = llama_cpp.Llama(str(path), logits_all=True, n_ctx=64, n_threads=1, verbose=False)
    llm.eval(ids)
    theirs = np.array(llm.scores[: len(ids)])
    with torch.no_grad():
        mine = model(torch.tensor([ids])).logits[0].numpy()
    # ggml rounds the activations to 8 bits for its quantized matmuls: close, not bit-equal.
    assert np.abs(theirs - mine).max() < 0.02 * np.abs(mine).max()
    assert (theirs.argmax(-1) == mine.argmax(-1)).mean() > 0.9


@pytest.mark.parametrize("method", ["gptq", "rtn-importance"])
def test_file_type_mix_quantizes_each_layer_on_llama_quantize_type(tmp_path, method):
    """--gguf-type Q4_K_M: attn_v/ffn_down of use_more_bits layers on Q6_K, 96-wide rows on Q5_0, all written raw."""
    model = tiny_model("llama", seed=12, hidden_size=96, intermediate_size=256, num_hidden_layers=8)
    base = export_gguf(model, tiny_tokenizer(), tmp_path / "f32.gguf", "F32")
    theirs = {t.name: t.tensor_type.name for t in gguf.GGUFReader(llama_quantize(base, tmp_path / "q.gguf", "Q4_K_M")).tensors}
    if method == "gptq":
        model = gptq_quantize(model, tiny_tokenizer(), GPTQOptions(gguf_type="Q4_K_M"), context())
    else:
        model = rtn_quantize(model, tiny_tokenizer(), RTNOptions(gguf_type="Q4_K_M", importance=True), context())
    path = export_gguf(model, tiny_tokenizer(), tmp_path / "m.gguf")  # the file type is inferred from the layers
    reader = gguf.GGUFReader(path)
    assert int(reader.fields["general.file_type"].parts[-1][0]) == gguf.LlamaFileType.MOSTLY_Q4_K_M
    tensors = {t.name: t for t in reader.tensors}
    assert {k: t.tensor_type.name for k, t in tensors.items()} == theirs
    assert {"Q4_K", "Q6_K", "Q5_0"} <= set(theirs.values())
    for p, module in decoder_linears(model).items():
        assert torch.equal(file_weight(tensors, p, model.config), module.dequantized_weight()), p


def test_k_errors_before_work():
    with pytest.raises(SlmError, match="rows of 96 values, not a multiple of 256"):
        rtn_quantize(tiny_model("llama", hidden_size=96, intermediate_size=256), None, RTNOptions(gguf_type="Q4_K"))
    with pytest.raises(SlmError, match="cannot store pruned weights"):
        gptq_quantize(k_model(), tiny_tokenizer(), GPTQOptions(gguf_type="Q4_K_M", sparsity=0.5), context())
    with pytest.raises(SlmError, match="Q5_1, whose importance-weighted rounding is not built"):
        rtn_quantize(tiny_model("llama", hidden_size=96, intermediate_size=256), tiny_tokenizer(),
                     RTNOptions(gguf_type="Q5_K_M", importance=True), context())
    with pytest.raises(ValueError, match="gguf_type must be one of"):
        GPTQOptions(gguf_type="Q3_K_M")
