import pytest
import torch
from tiny import save_tiny, tiny_model

import slmkit
from slmkit.errors import SlmError
from slmkit.models.source import resolve_model


def test_folder_loads_with_identical_logits(tmp_path):
    folder = save_tiny(tmp_path / "m", "qwen2", seed=3)
    model, tokenizer = slmkit.load(str(folder))
    ids = torch.randint(0, 300, (1, 12))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, tiny_model("qwen2", seed=3)(ids).logits)
    assert tokenizer.eos_token == "<eos>"


def test_bfloat16_option(tmp_path):
    model, _ = slmkit.load(str(save_tiny(tmp_path / "m")), dtype="bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16


@pytest.mark.parametrize(
    "spec_maker, message",
    [
        (lambda p: str(p / "missing-folder"), "model not found"),
        (lambda p: str(p / "missing.gguf"), "model file not found"),
        (lambda p: str(p), "no config.json"),
        (lambda p: "not a valid spec!", "model not found"),
    ],
)
def test_bad_specs_fail_in_one_line(tmp_path, spec_maker, message):
    with pytest.raises(SlmError, match=message) as err:
        resolve_model(spec_maker(tmp_path))
    assert "\n" not in str(err.value)


def test_corrupt_gguf_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SLMKIT_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(SlmError, match=r"broken\.gguf: GGUF version 0") as err:
        slmkit.load(str(bad))
    assert "\n" not in str(err.value)
    assert not any((tmp_path / "cache" / "models").glob("broken-*"))  # nothing half-converted is cached


def test_hub_id_offline_fails_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SlmError, match="model hub"):
        slmkit.load("some-org/some-model-that-is-not-cached")


def test_corrupt_checkpoint_in_folder_is_a_clear_error(tmp_path):
    folder = save_tiny(tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(SlmError, match="could not load model"):
        slmkit.load(str(folder))
