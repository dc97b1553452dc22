import json
import os
import subprocess
import sys

import gguf
import numpy as np
import pytest
import torch
from tiny import tiny_model
from transformers import AutoModelForCausalLM

from slmkit.errors import SlmError
from slmkit.layouts import pack_quantized
from slmkit.layouts.gguf import save as export_gguf
from slmkit.models.loading import load, load_folder
from slmkit.models.saving import save
from slmkit.modules.quant_linear import QuantLinear
from slmkit.steps import StepContext, get_step

ENV = dict(os.environ, SLMKIT_PROGRESS="0", HF_HUB_OFFLINE="1")
IDS = torch.randint(1, 300, (2, 24), generator=torch.Generator().manual_seed(0))


def quantized(method, options, tokenizer, family="llama"):
    step = get_step(method)
    context = StepContext(tokenizer=tokenizer, nsamples=4, seqlen=32, calibration_source="pydoc")
    return step.function()(tiny_model(family), tokenizer, step.options.model_validate(options), context)


@pytest.mark.parametrize("method, options", [
    ("rtn", {"bits": 4, "group_size": 32}),
    ("rtn", {"bits": 4, "group_size": 32, "symmetric": False}),
    ("gptq", {"bits": 8}),
    ("rtn", {"bits": 3, "group_size": 16}),
    ("smoothquant", {}),
])
def test_compressed_tensors_reload_gives_identical_logits(tmp_path, tokenizer, method, options):
    model = quantized(method, options, tokenizer)
    with torch.no_grad():
        reference = model(IDS).logits
    save(model, tokenizer, tmp_path / "q", format="compressed-tensors")
    config = json.loads((tmp_path / "q" / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "compressed-tensors" and config["quantization_status"] == "compressed"
    reloaded, _ = load_folder(str(tmp_path / "q"))
    layers = [m for m in reloaded.modules() if isinstance(m, QuantLinear)]
    assert len(layers) == 14 and layers[0].layout == next(m for m in model.modules() if isinstance(m, QuantLinear)).layout
    with torch.no_grad():
        assert torch.equal(reloaded(IDS).logits, reference)


@pytest.mark.parametrize("options", [{"bits": 4, "group_size": 32}, {"bits": 8}])
def test_plain_transformers_loads_the_compressed_tensors_folder(tmp_path, tokenizer, options):
    model = quantized("rtn", options, tokenizer)
    save(model, tokenizer, tmp_path / "q", format="compressed-tensors")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "q")  # dequantizes through the compressed-tensors library
    with torch.no_grad():
        ours, theirs = model(IDS).logits, plain(IDS).logits
    assert float((ours - theirs).norm() / ours.norm()) < 0.01  # ours runs bf16 activations through the kernels


def test_the_quantized_saver_refuses_a_float_model(tmp_path, tokenizer):

    with pytest.raises(SlmError, match="no quantized layers"):
        pack_quantized.save(tiny_model("llama"), tokenizer, tmp_path)


TOLERANCE = {"F16": 1e-3, "Q8_0": 1 / 100, "Q4_0": 1 / 6}  # of each 32-block's absmax


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("qtype", ["F16", "Q8_0", "Q4_0"])
def test_gguf_export_round_trips(tmp_path, tokenizer, family, qtype):
    model = tiny_model(family)
    path = export_gguf(model, tokenizer, tmp_path / "m.gguf", qtype)
    reader = gguf.GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    tied = model.config.tie_word_embeddings
    assert len(tensors) == len([k for k in model.state_dict() if not (tied and k == "lm_head.weight")])
    source = model.model.layers[0].mlp.down_proj.weight.detach().numpy()
    tensor = tensors["blk.0.ffn_down.weight"]
    assert tensor.tensor_type.name == qtype
    back = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(source.shape)
    blocks_max = np.abs(source).reshape(-1, 32).max(1, keepdims=True)
    assert np.all(np.abs(back - source).reshape(-1, 32) <= TOLERANCE[qtype] * blocks_max + 1e-6)
    # transformers reads it back (tokenizer included) and computes nearly the same logits
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf")
    with torch.no_grad():
        ours, theirs = model(IDS).logits, loaded(IDS).logits
    assert float((ours - theirs).norm() / ours.norm()) < {"F16": 1e-3, "Q8_0": 0.02, "Q4_0": 0.3}[qtype]


def test_gguf_export_of_a_quantized_model_and_an_unsupported_family(tmp_path, tokenizer):
    model = quantized("rtn", {"bits": 8}, tokenizer)
    reader = gguf.GGUFReader(export_gguf(model, tokenizer, tmp_path / "q.gguf", "F16"))
    assert any(t.name == "blk.1.attn_q.weight" for t in reader.tensors)
    with pytest.raises(SlmError, match="does not support 'gpt2'"):
        export_gguf(tiny_model("gpt2"), tokenizer, tmp_path / "g.gguf")


def test_slm_export_both_formats(tmp_path, tiny_folder):
    def slm(*args):
        return subprocess.run([sys.executable, "-m", "slmkit.cli", *args], capture_output=True, text=True, env=ENV)

    result = slm("export", str(tiny_folder), "--format", "gguf", "--type", "q4_0", "--out", str(tmp_path / "m.gguf"))
    assert result.returncode == 0, result.stderr
    assert gguf.GGUFReader(tmp_path / "m.gguf").tensors
    result = slm("export", str(tiny_folder), "--format", "compressed-tensors", "--bits", "4", "--group-size", "32",
                 "--out", str(tmp_path / "ct"))
    assert result.returncode == 0, result.stderr
    model, _ = load(str(tmp_path / "ct"))
    assert sum(isinstance(m, QuantLinear) for m in model.modules()) == 14
    result = slm("export", str(tiny_folder), "--format", "onnx", "--out", str(tmp_path / "x"))
    assert result.returncode != 0 and "unknown export format 'onnx'" in result.stderr


def test_slm_compress_saves_quantized_methods_as_compressed_tensors(tmp_path, tiny_folder):
    args = [sys.executable, "-m", "slmkit.cli", "compress", str(tiny_folder), "--method", "gptq", "--bits", "4",
            "--group-size", "32", "--act-order", "--nsamples", "4", "--seqlen", "32", "--out", str(tmp_path / "q")]
    result = subprocess.run(args, capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "q" / "slmkit.json").read_text())["format"] == "compressed-tensors"
    model, _ = load(str(tmp_path / "q"))
    assert sum(isinstance(m, QuantLinear) for m in model.modules()) == 14
