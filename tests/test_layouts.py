"""The layout codecs: each one round-trips exactly, detection picks the right one, and every
loader shares the strict-load and tied-weight policy and refuses remote code."""

import json
import os
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny import save_tiny, tiny_model, tiny_tokenizer

from slmkit import layouts
from slmkit.errors import SlmError
from slmkit.layouts.common import unique_tensors
from slmkit.models.saving import save
from slmkit.steps import StepContext, get_step

IDS = torch.randint(0, 300, (1, 10), generator=torch.Generator().manual_seed(0))


def logits(model):
    with torch.no_grad():
        return model(IDS).logits


def compressed(method: str, **options):
    model, tokenizer = tiny_model("llama", seed=1), tiny_tokenizer()
    step = get_step(method)
    context = StepContext(tokenizer=tokenizer, nsamples=2, seqlen=16, calibration_source="pydoc")
    return step.function()(model, tokenizer, step.options(**options), context), tokenizer


@pytest.mark.parametrize("method, options, fmt, codec", [
    ("magnitude", {"sparsity": 0.5}, "hf", "hf"),
    ("magnitude", {"sparsity": 0.5}, "compressed-tensors", "sparse_bitmask"),
    ("rtn", {"bits": 4, "group_size": 32}, "compressed-tensors", "pack_quantized"),
    ("low_rank", {"rank_ratio": 0.5}, "hf", "low_rank"),
])
def test_each_codec_round_trips_to_the_same_logits(tmp_path, method, options, fmt, codec):
    model, tokenizer = compressed(method, **options)
    save(model, tokenizer, tmp_path / "out", format=fmt)
    assert layouts.detect(tmp_path / "out").NAME == codec
    reloaded, _ = layouts.load(tmp_path / "out")
    assert torch.equal(logits(reloaded), logits(model))


def test_tied_weights_are_written_once_and_tied_again(tmp_path):
    model = tiny_model("llama", tie_word_embeddings=True)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert "lm_head.weight" not in unique_tensors(model.state_dict())
    save(model, tiny_tokenizer(), tmp_path / "sparse", format="compressed-tensors")
    assert "lm_head.weight" not in load_file(tmp_path / "sparse" / "model.safetensors")
    reloaded, _ = layouts.load(tmp_path / "sparse")
    assert reloaded.lm_head.weight.data_ptr() == reloaded.model.embed_tokens.weight.data_ptr()


def test_a_missing_or_unexpected_tensor_is_an_error_naming_the_folder(tmp_path):
    model, tokenizer = compressed("rtn", bits=8, group_size=0)
    save(model, tokenizer, tmp_path / "q", format="compressed-tensors")
    weights = tmp_path / "q" / "model.safetensors"
    state = load_file(weights)
    norm = next(k for k in state if k.endswith("input_layernorm.weight"))
    save_file({k: v for k, v in state.items() if k != norm}, weights)
    with pytest.raises(SlmError, match=f"missing tensor {norm}") as err:
        layouts.load(tmp_path / "q")
    assert str(tmp_path / "q") in str(err.value)
    save_file({**state, "model.stray.weight": torch.zeros(2)}, weights)
    with pytest.raises(SlmError, match="unexpected tensor model.stray.weight"):
        layouts.load(tmp_path / "q")


def test_plain_folder_with_missing_weights_is_refused_not_randomly_initialised(tmp_path):
    folder = save_tiny(tmp_path / "m")
    state = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in state.items() if "layers.1.mlp.up_proj" not in k}, folder / "model.safetensors")
    with pytest.raises(SlmError, match="missing tensor model.layers.1.mlp.up_proj.weight"):
        layouts.load(folder)


def test_quantized_model_cannot_be_saved_as_a_plain_folder(tmp_path):
    model, tokenizer = compressed("rtn", bits=8, group_size=0)
    with pytest.raises(SlmError, match="save it as compressed-tensors"):
        save(model, tokenizer, tmp_path / "o", format="hf")
    assert not (tmp_path / "o").exists()


def test_corrupt_config_names_the_file(tmp_path):
    folder = save_tiny(tmp_path / "m")
    (folder / "config.json").write_text("{ not json")
    with pytest.raises(SlmError, match=f"cannot read {folder / 'config.json'}"):
        layouts.load(folder)


def remote_code_folder(tmp_path):
    folder = save_tiny(tmp_path / "custom")
    (folder / "evil.py").write_text("import pathlib; pathlib.Path(__file__).with_name('RAN').write_text('x')\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "evil.EvilModel", "AutoConfig": "evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_folder_that_needs_remote_code_is_refused(tmp_path):
    folder = remote_code_folder(tmp_path)
    with pytest.raises(SlmError, match="custom model code"):
        layouts.load(folder)
    assert not (folder / "RAN").exists()


def test_remote_code_is_not_enabled_by_a_keystroke(tmp_path):
    """A `y` on stdin (the answer to transformers' prompt) changes nothing: stdin is never read."""
    folder = remote_code_folder(tmp_path)
    result = subprocess.run([sys.executable, "-m", "slmkit.cli", "generate", str(folder), "hi", "-n", "1"],
                            input="y\n", capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "custom model code" in result.stderr
    assert not (folder / "RAN").exists()


def test_hub_id_fails_fast_when_the_hub_is_unreachable(tmp_path):
    """Not offline by setting, but no hub answers: one line within seconds, not a minute of retries."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"))
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "slmkit.cli", "generate", "some-org/not-cached", "hi"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0 and "cannot be reached" in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert time.perf_counter() - start < 30
