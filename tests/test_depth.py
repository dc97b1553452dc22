"""Depth pruning: layer scores find redundant layers, and pruned models load in plain transformers."""

import json
import os
import subprocess
import sys

import pytest
import torch
from tiny import FAMILIES, save_tiny, tiny_model
from transformers import AutoModelForCausalLM

from slmkit.anatomy import anatomy_of, get_module
from slmkit.compress.structured.depth import (
    depth_prune,
    hidden_state_scores,
    layers_to_remove,
    remove_layers,
    skip_perplexity_scores,
)
from slmkit.compress.structured.options import DepthPruneOptions
from slmkit.evaluate.perplexity import perplexity_of_ids
from slmkit.steps import StepContext

IDS = torch.randint(1, 300, (2, 24), generator=torch.Generator().manual_seed(0))
CALIB = torch.randint(1, 300, (4, 32), generator=torch.Generator().manual_seed(1))


def logits(model, ids=IDS):
    with torch.no_grad():
        return model(ids).logits


def make_identity(model, index):
    """Zero the layer's residual-branch outputs (attention out, MLP down): the layer then returns its input."""
    anatomy = anatomy_of(model)
    layer = anatomy.layer_list(model)[index]
    for path in (anatomy.attn["o"], anatomy.mlp["down"]):
        module = get_module(layer, path)
        module.weight.data.zero_()
        if getattr(module, "bias", None) is not None:
            module.bias.data.zero_()


@pytest.mark.parametrize("family", FAMILIES)
def test_pruned_model_loads_in_plain_transformers(family, tmp_path):
    model = tiny_model(family, num_hidden_layers=4)
    pruned = remove_layers(model, [1, 2])
    assert pruned.config.num_hidden_layers == 2 and len(anatomy_of(pruned).layer_list(pruned)) == 2
    for name in ("layer_types",):
        if getattr(pruned.config, name, None) is not None:
            assert len(getattr(pruned.config, name)) == 2
    pruned.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert torch.allclose(logits(reloaded), logits(pruned), atol=1e-5)
    generated = reloaded.generate(IDS[:1, :5], max_new_tokens=4, do_sample=False)  # runs with a KV cache
    assert generated.shape == (1, 9)


def test_per_layer_config_lists_follow_the_kept_layers():
    model = tiny_model("gemma3_text", num_hidden_layers=6)
    types = list(model.config.layer_types)
    assert len(set(types)) == 2  # sliding and full attention layers
    pruned = remove_layers(model, [0, 5])
    assert pruned.config.layer_types == types[1:5]


@pytest.mark.parametrize("family", ["llama", "gemma3_text", "gpt2", "opt"])
def test_removing_an_identity_layer_leaves_logits_unchanged(family):
    model = tiny_model(family, num_hidden_layers=3)
    make_identity(model, 1)
    before = logits(model)
    pruned = remove_layers(model, [1])
    assert torch.allclose(logits(pruned), before, atol=1e-5)


@pytest.mark.parametrize("score", ["block_influence", "angular"])
def test_hidden_state_scores_find_the_identity_layer(score):
    model = tiny_model("llama", num_hidden_layers=4)
    make_identity(model, 2)
    assert layers_to_remove(model, DepthPruneOptions(layers=1, score=score), CALIB) == [2]


def test_perplexity_score_of_an_identity_layer_is_the_dense_perplexity():
    # (On a random model, skipping some other layer may even lower perplexity, so only equality is tested.)
    model = tiny_model("llama", num_hidden_layers=4)
    make_identity(model, 2)
    dense = perplexity_of_ids(model, CALIB.reshape(-1), CALIB.shape[1], show_progress=False).perplexity
    scores = skip_perplexity_scores(model, CALIB)
    assert scores[2] == pytest.approx(dense, rel=1e-5)
    assert (torch.cat([scores[:2], scores[3:]]) - dense).abs().min() > 1e-3


def test_scores_of_an_identity_layer_are_zero():
    model = tiny_model("llama", num_hidden_layers=4)
    make_identity(model, 1)
    scorer = hidden_state_scores(model, CALIB, span=2)
    assert scorer.block_influence[1].abs() < 1e-6 and scorer.block_influence.min() == scorer.block_influence[1]
    assert scorer.angular.shape == (3,) and not scorer.angular.isnan().any()


def test_contiguous_block_and_last_layers():
    model = tiny_model("llama", num_hidden_layers=5)
    make_identity(model, 2), make_identity(model, 3)
    for score in ("angular", "block_influence"):
        assert layers_to_remove(model, DepthPruneOptions(layers=2, score=score, contiguous=True), CALIB) == [2, 3]
    assert layers_to_remove(model, DepthPruneOptions(ratio=0.4, score="last")) == [3, 4]
    chosen = layers_to_remove(model, DepthPruneOptions(layers=2, score="ppl", contiguous=True), CALIB)
    assert len(chosen) == 2 and chosen[1] == chosen[0] + 1


def test_removing_no_layers_changes_nothing():
    model = tiny_model("llama")
    before = logits(model)
    out = depth_prune(model, None, DepthPruneOptions(ratio=0.0, score="last"), StepContext())
    assert out.config.num_hidden_layers == 2 and torch.equal(logits(out), before)


def test_step_uses_calibration_data(tokenizer):
    model = tiny_model("qwen2", num_hidden_layers=4)
    context = StepContext(tokenizer=tokenizer, nsamples=4, seqlen=32, calibration_source="pydoc")
    out = depth_prune(model, tokenizer, DepthPruneOptions(ratio=0.5), context)
    assert out.config.num_hidden_layers == 2 and "removed layers" in context.log[-1]


def test_bad_requests_are_one_line_errors():
    from slmkit.errors import SlmError

    model = tiny_model("llama")
    with pytest.raises(SlmError, match="at least one"):
        layers_to_remove(model, DepthPruneOptions(layers=2))
    with pytest.raises(SlmError, match="layers 0..1"):
        layers_to_remove(model, DepthPruneOptions(remove=[5]))


def test_cli_depth_prune(tmp_path):
    folder = save_tiny(tmp_path / "tiny", num_hidden_layers=4)
    env = dict(os.environ, SLMKIT_PROGRESS="0", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "slmkit.cli", "compress", str(folder), "--method", "depth_prune", "--ratio", "0.25",
           "--score", "angular", "--nsamples", "4", "--seqlen", "32", "--out", str(tmp_path / "out")]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["num_hidden_layers"] == 3
    AutoModelForCausalLM.from_pretrained(tmp_path / "out")
