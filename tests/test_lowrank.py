"""Low-rank factorization: exact at full rank, activation-aware beats plain SVD, global rank allocation,
reload and merge round-trip."""

import json
import os
import subprocess
import sys

import pytest
import torch
from tiny import FAMILIES, save_tiny, tiny_model, tiny_tokenizer
from torch import nn
from transformers import AutoModelForCausalLM

from slmkit.anatomy import anatomy_of, decoder_linears, linear_weight
from slmkit.compress.layerwise import LinearStats
from slmkit.compress.structured.lowrank import (
    SpectrumProbe,
    allocate_ranks,
    factorize,
    low_rank,
    uniform_rank,
    visit_layers,
)
from slmkit.compress.structured.options import LowRankOptions
from slmkit.errors import SlmError
from slmkit.evaluate.profile import count_parameters
from slmkit.layouts.low_rank import merge as merge_low_rank
from slmkit.models.loading import load_folder
from slmkit.modules.factorized import FactorizedLinear
from slmkit.steps import StepContext

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
    dense = {name: linear_weight(m).clone() for name, m in decoder_linears(model).items()}
    low_rank(model, None, LowRankOptions(energy=0.6, activation_aware="none"), StepContext())
    factorized = {name: m for name, m in decoder_linears(model).items() if isinstance(m, FactorizedLinear)}
    assert factorized
    for name, module in factorized.items():  # each rank: the fewest singular values holding 60% of the energy
        energy = torch.linalg.svdvals(dense[name].double()).pow(2)
        share = energy.cumsum(0) / energy.sum()
        assert share[module.rank - 1] >= 0.6 and (module.rank == 1 or share[module.rank - 2] < 0.6), name
    assert len({m.rank for m in factorized.values()}) > 1


def test_gpt2_fused_attention_is_factorized():
    model = low_rank(tiny_model("gpt2"), None, LowRankOptions(activation_aware="none"), StepContext())
    assert all(isinstance(layer.attn.c_attn, FactorizedLinear) for layer in anatomy_of(model).layer_list(model))
    with pytest.raises(SlmError, match="gpt2 fuses q, k and v into one projection; name it qkv"):
        low_rank(tiny_model("gpt2"), None, LowRankOptions(targets=["q", "k", "v"], activation_aware="none"), StepContext())


def calibration():
    return StepContext(tokenizer=tiny_tokenizer(), nsamples=8, seqlen=32, calibration_source="pydoc")


def compressed(allocation, method="svd-llm", model=None):
    model = model or tiny_model("llama")
    options = LowRankOptions(rank_ratio=0.5, activation_aware=method, allocation=allocation)
    return low_rank(model, None, options, calibration())


def test_global_allocation_keeps_the_uniform_parameter_budget():
    model = tiny_model("llama")
    rank_step = max(m.in_features + m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    uniform, global_ = (count_parameters(compressed(a))[0] for a in ("uniform", "global"))
    assert uniform - rank_step < global_ <= uniform


def test_global_allocation_follows_the_spectra():
    model = tiny_model("llama")
    layers = anatomy_of(model).layer_list(model)
    for linear in layers[0].modules():
        if isinstance(linear, nn.Linear):  # layer 0 made exactly rank 2: more rank there keeps nothing
            linear.weight.data = linear.weight.data[:, :2] @ torch.randn(2, linear.in_features)
    allocated = compressed("global", "none", model).config.slmkit_low_rank
    ranks = {name.removeprefix("model.layers."): rank for name, (rank, *_) in allocated.items()}
    for path in ("self_attn.q_proj", "mlp.up_proj", "mlp.down_proj"):
        linear = layers[1].get_submodule(path)
        assert ranks[f"0.{path}"] <= 2  # layer 1 gets what layer 0 does not need: more rank, or stays dense
        assert ranks.get(f"1.{path}", float("inf")) > uniform_rank(0.5, linear.in_features, linear.out_features)


def test_global_allocation_lowers_whitened_and_output_error_at_the_same_budget():
    model, context = tiny_model("llama"), calibration()
    probe = SpectrumProbe(anatomy_of(model), LowRankOptions(rank_ratio=0.5))
    visit_layers(model, anatomy_of(model), probe, context, "spectra")
    allocated = allocate_ranks(probe.spectra, 0.5)

    def relative_error(rank, singular):  # ‖(W − W′)X‖² / ‖WX‖² of the SVD-LLM truncation; dense: 0
        energy = singular.double().pow(2)
        return 0.0 if rank is None else (energy[rank:].sum() / energy.sum()).item()

    global_error = sum(relative_error(allocated.get(key), s) for key, (s, *_) in probe.spectra.items())
    uniform_error = sum(relative_error(uniform_rank(0.5, n, m), s) for s, n, m in probe.spectra.values())
    assert global_error < uniform_error

    ids = context.calibration_ids()
    with torch.no_grad():
        dense = model(ids).logits
        uniform, global_ = ((compressed(a)(ids).logits - dense).pow(2).mean() for a in ("uniform", "global"))
    assert global_ < uniform


def test_energy_with_global_allocation_is_refused():
    with pytest.raises(ValueError, match="energy picks ranks per Linear"):
        LowRankOptions(energy=0.9, allocation="global")


@pytest.mark.parametrize("family, method", [(f, "svd-llm") for f in FAMILIES] + [("llama", "none"), ("gpt2", "none")])
def test_factorized_model_is_smaller_reloads_and_merges(family, method, tmp_path):
    model = tiny_model(family)
    dense_params, _ = count_parameters(model)
    context = StepContext(tokenizer=tiny_tokenizer(), nsamples=4, seqlen=32, calibration_source="pydoc")
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
           "--activation-aware", "asvd", "--allocation", "global", "--nsamples", "4", "--seqlen", "32",
           "--out", str(tmp_path / "lr")]
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

    model = low_rank(tiny_model("llama"), None, LowRankOptions(activation_aware="none"), StepContext())
    with pytest.raises(SlmError, match="prune before low_rank"):
        remove_layers(model, [0])
