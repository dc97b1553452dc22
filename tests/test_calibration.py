"""The model-written default calibration (deterministic, cached), explicit sources, and GPTQ's searched grid scales."""

import torch
from tiny import tiny_model

from slmkit.compress.quant.ggml_grid import block_params, levels
from slmkit.data.calibration import calibration_batch, corpus_windows
from slmkit.ggml.types import grid_type
from slmkit.steps import StepContext


def test_default_source_is_deterministic_and_cached(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("SLMKIT_CACHE", str(tmp_path))
    model = tiny_model("llama").eval()
    a = calibration_batch(tokenizer, "mixed", 4, 48, seed=3, model=model)
    cached = list((tmp_path / "calibration").glob("generated-*.pt"))
    assert a.shape == (4, 48) and len(cached) == 1
    assert torch.equal(a, calibration_batch(tokenizer, "mixed", 4, 48, seed=3, model=model))
    assert not torch.equal(a, calibration_batch(tokenizer, "mixed", 4, 48, seed=4, model=model))
    assert StepContext().calibration_source == "mixed"


def test_explicit_source_is_unchanged(tokenizer):
    context = StepContext(tokenizer=tokenizer, nsamples=3, seqlen=32, seed=1, calibration_source="pydoc")
    assert torch.equal(context.calibration_ids(), corpus_windows(tokenizer, "pydoc", 3, 32, seed=1))


def test_searched_scales_lower_the_weighted_error():
    t = grid_type("Q4_0")
    generator = torch.Generator().manual_seed(0)
    w = torch.randn(512, t.block, generator=generator) * torch.rand(512, 1, generator=generator)
    weight = torch.rand(512, t.block, generator=generator) ** 4
    errors = []
    for given in (None, weight):
        d, _ = block_params(w, t, given)
        q = levels(w, d, None, t)
        errors.append((weight * (w - d[:, None] * q) ** 2).sum().item())
    assert errors[1] < errors[0]
