import json

import pytest
import torch
from tiny import tiny_model

from slmkit.anatomy import decoder_linears
from slmkit.compress.pruning.options import WandaOptions
from slmkit.compress.pruning.wanda import wanda_prune
from slmkit.models.loading import load
from slmkit.models.saving import save
from slmkit.steps import StepContext


def pruned(family, pattern=None):
    model = tiny_model(family)
    ids = torch.randint(0, 300, (4, 32), generator=torch.Generator().manual_seed(0))
    return wanda_prune(model, None, WandaOptions(sparsity=0.5, pattern=pattern), StepContext(calibration=ids), show_progress=False)


@pytest.mark.parametrize("family, pattern", [("llama", None), ("llama", "2:4"), ("gpt2", None), ("qwen3", None)])
def test_hf_and_compressed_tensors_reload_to_identical_logits(tmp_path, tokenizer, family, pattern):
    model = pruned(family, pattern)
    ids = torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(ids).logits
    for fmt in ("hf", "compressed-tensors"):
        folder = save(model, tokenizer, tmp_path / fmt, format=fmt)
        reloaded, _ = load(str(folder))
        with torch.no_grad():
            assert torch.equal(reloaded(ids).logits, expected), fmt
        for (name, a), b in zip(decoder_linears(reloaded).items(), decoder_linears(model).values()):
            assert torch.equal(a.weight, b.weight), name
    config = json.loads((tmp_path / "compressed-tensors" / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "compressed-tensors" and config["sparsity_config"]["format"] == "sparse-bitmask"
    assert config["sparsity_config"]["sparsity_structure"] == (pattern or "unstructured")
    assert config["sparsity_config"]["global_sparsity"] == pytest.approx(0.5)


def test_compressed_tensors_folder_is_smaller_than_the_dense_one(tmp_path, tokenizer):
    model = pruned("llama")
    sizes = {}
    for fmt in ("hf", "compressed-tensors"):
        folder = save(model, tokenizer, tmp_path / fmt, format=fmt)
        sizes[fmt] = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    dense_linear_bytes = sum(m.weight.numel() * 4 for m in decoder_linears(model).values())
    # half the values plus one bit per weight instead of all the values: ~47% of the Linears' bytes saved,
    # less the per-tensor headers and row offsets, which weigh a lot on a tiny model
    assert sizes["hf"] - sizes["compressed-tensors"] > 0.3 * dense_linear_bytes


def test_cli_compresses_to_compressed_tensors_with_a_valid_pattern(tiny_folder, tmp_path):
    import os
    import subprocess
    import sys

    from slmkit.compress.mask import satisfies_nm

    env = dict(os.environ, SLMKIT_PROGRESS="0", HF_HUB_OFFLINE="1")
    args = ["compress", str(tiny_folder), "--method", "sparsegpt", "--pattern", "2:4", "--format", "compressed-tensors",
            "--nsamples", "4", "--seqlen", "32", "--out", str(tmp_path / "o")]
    result = subprocess.run([sys.executable, "-m", "slmkit.cli", *args], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "o" / "slmkit.json").read_text())
    assert manifest["format"] == "compressed-tensors" and manifest["steps"][0]["options"]["pattern"] == "2:4"
    model, _ = load(str(tmp_path / "o"))
    assert all(satisfies_nm(m.weight, 2, 4) for m in decoder_linears(model).values())
