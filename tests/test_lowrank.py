"""Low-rank factorization: exact at full rank, activation-aware beats plain SVD, reload and merge round-trip."""

import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM

from slmkit.compress.layerwise import LinearStats
from slmkit.compress.structured.lowrank import FactorizedLinear, factorize, low_rank, merge_low_rank
from slmkit.compress.structured.options import LowRankOptions
from slmkit.evaluate.profile import count_parameters
from slmkit.models.loading import load_folder
from slmkit.steps import StepContext
from tiny import FAMILIES, save_tiny, tiny_model, tiny_tokenizer

IDS = torch.randint(1, 300, (2, 24), generator=torch.Generator().manual_seed(0))


def logits(model):
    with torch.no_grad():
        return model(IDS).logits


def correlated_inputs(n=2048, d=64, seed=0):
    """Inputs with a few large, correlated directions and uneven channel scales, as real activations have."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) * torch.logspace(0, -2, d)[:, None]
    return (torch.randn(n, d, generator=g) @ mix) * torch.logspace(1, -1, d)


def stats_of(x, want):
    stats = LinearStats(x.shape[1], want)
    stats.update(x)
    return stats


@pytest.mark.parametrize("method, want", [("none", set()), ("asvd", {"absmean"}), ("svd-llm", {"gram"})])
def test_svd_at_full_rank_reproduces_the_linear(method, want):
    torch.manual_seed(0)
    linear = nn.Linear(48, 40)
    x = correlated_inputs(512, 48)
    options = LowRankOptions(activation_aware=method)
    assert factorize(linear, LowRankOptions(energy=1.0, activation_aware=method)) is linear  # not smaller: kept
    full = factorize(linear, options, stats_of(x, want) if want else None, rank=40)
    assert isinstance(full, FactorizedLinear)
    with torch.no_grad():
        assert torch.allclose(full(x), linear(x), rtol=1e-4, atol=1e-4 * linear(x).abs().max().item())


def test_factorized_linear_has_rank_r_and_matches_low_rank_weights():
    torch.manual_seed(0)
    linear = nn.Linear(64, 96)
    u, s, vh = torch.linalg.svd(torch.randn(96, 8) @ torch.randn(8, 64), full_matrices=False)
    linear.weight.data = (u[:, :8] * s[:8]) @ vh[:8]  # exactly rank 8
    fact = factorize(linear, LowRankOptions(rank_ratio=8 / (64 * 96 / 160) + 1e-3, activation_aware="none"))
    assert isinstance(fact, FactorizedLinear) and fact.rank == 8
    assert fact.project.weight.shape == (8, 64) and fact.expand.weight.shape == (96, 8)
    x = torch.randn(5, 64)
    assert torch.allclose(fact(x), linear(x), atol=1e-5)


def output_error(method, x, linear, rank_ratio=0.3):
    want = {"none": set(), "asvd": {"absmean"}, "svd-llm": {"gram"}}[method]
    fact = factorize(linear, LowRankOptions(rank_ratio=rank_ratio, activation_aware=method), stats_of(x, want) if want else None)
    with torch.no_grad():
        return (fact(x) - linear(x)).pow(2).mean().item()


def test_activation_aware_svd_has_lower_output_error_on_correlated_inputs():
    torch.manual_seed(0)
    linear = nn.Linear(64, 64)
    x = correlated_inputs()
    plain, asvd, svd_llm = (output_error(m, x, linear) for m in ("none", "asvd", "svd-llm"))
    assert svd_llm < asvd < plain
    assert svd_llm < 0.5 * plain


def test_energy_threshold_gives_per_layer_ranks(tmp_path):
    model = tiny_model("llama")
    low_rank(model, None, LowRankOptions(energy=0.6, activation_aware="none"), StepContext())
    ranks = {r for r, *_ in model.config.slmkit_low_rank.values()}
    assert len(ranks) > 1


@pytest.mark.parametrize("family, method", [(f, "svd-llm") for f in FAMILIES] + [("llama", "none"), ("gpt2", "none")])
def test_factorized_model_is_smaller_reloads_and_merges(family, method, tmp_path):
    model = tiny_model(family)
    dense_params, _ = count_parameters(model)
    context = StepContext(tokenizer=tiny_tokenizer(), nsamples=4, seqlen=32)
    model = low_rank(model, None, LowRankOptions(rank_ratio=0.5, activation_aware=method), context)
    assert count_parameters(model)[0] < dense_params
    assert any(isinstance(m, FactorizedLinear) for m in model.modules())
    before = logits(model)
    model.save_pretrained(tmp_path / "lr")
    tiny_tokenizer().save_pretrained(tmp_path / "lr")
    reloaded, _ = load_folder(str(tmp_path / "lr"))
    assert torch.equal(logits(reloaded), before)
    merge_low_rank(reloaded)
    assert not any(isinstance(m, FactorizedLinear) for m in reloaded.modules())
    reloaded.save_pretrained(tmp_path / "dense")
    dense = AutoModelForCausalLM.from_pretrained(tmp_path / "dense").eval()
    assert torch.allclose(logits(dense), before, atol=1e-4)


def test_cli_low_rank_then_merged_export(tmp_path):
    from slmkit.models.saving import save

    folder = save_tiny(tmp_path / "tiny")
    env = dict(os.environ, SLMKIT_PROGRESS="0", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "slmkit.cli", "compress", str(folder), "--method", "low_rank", "--rank-ratio", "0.5",
           "--activation-aware", "asvd", "--nsamples", "4", "--seqlen", "32", "--out", str(tmp_path / "lr")]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "lr" / "config.json").read_text())["slmkit_layout"] == "low_rank"
    factorized, tokenizer = load_folder(str(tmp_path / "lr"))
    assert any(isinstance(m, FactorizedLinear) for m in factorized.modules())
    save(factorized, tokenizer, tmp_path / "dense", format="hf_merged")
    assert "slmkit_layout" not in json.loads((tmp_path / "dense" / "config.json").read_text())
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "dense").eval()
    assert torch.allclose(logits(merged), logits(factorized), atol=1e-4)
    assert any(isinstance(m, FactorizedLinear) for m in factorized.modules())  # export leaves the model factorized


def test_pruning_a_factorized_model_is_a_one_line_error():
    from slmkit.compress.structured.depth import remove_layers
    from slmkit.errors import SlmError

    model = low_rank(tiny_model("llama"), None, LowRankOptions(activation_aware="none"), StepContext())
    with pytest.raises(SlmError, match="prune before low_rank"):
        remove_layers(model, [0])
