import pytest
import torch
from tiny import tiny_model

from slmkit.anatomy import anatomy_of, decoder_linears, get_module, linear_weight
from slmkit.compress.layerwise import LinearStats
from slmkit.compress.mask import lowest_k_mask, nm_mask, satisfies_nm
from slmkit.compress.obs import obs_sweep
from slmkit.compress.pruning.magnitude import magnitude_prune
from slmkit.compress.pruning.options import MagnitudeOptions, SparseGPTOptions, WandaOptions
from slmkit.compress.pruning.owl import owl_sparsities, wanda_scores
from slmkit.compress.pruning.sparsegpt import sparsegpt_prune
from slmkit.compress.pruning.wanda import wanda_prune
from slmkit.steps import StepContext

FAMILIES = ["llama", "gpt2", "qwen3"]


def context(seed=0):
    ids = torch.randint(0, 300, (4, 32), generator=torch.Generator().manual_seed(seed))
    return StepContext(seed=seed, calibration=ids)


def prune(method, model, **options):
    if method == "magnitude":
        return magnitude_prune(model, None, MagnitudeOptions(**options))
    if method == "wanda":
        return wanda_prune(model, None, WandaOptions(**options), context(), show_progress=False)
    return sparsegpt_prune(model, None, SparseGPTOptions(**options), context(), show_progress=False)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_unstructured_sparsity_is_exact_in_every_linear_and_head_untouched(family, method):
    model = tiny_model(family)
    anatomy = anatomy_of(model)
    embed = get_module(model, anatomy.embed).weight.clone()
    prune(method, model, sparsity=0.5)
    for name, module in decoder_linears(model).items():
        w = linear_weight(module)
        if method == "wanda":  # exactly half of every row
            assert torch.all((w == 0).sum(1) == w.shape[1] // 2), name
        else:  # exactly half of every block of columns (one block here: in_features <= 128)
            assert (w == 0).sum().item() == w.numel() // 2, name
    assert torch.equal(get_module(model, anatomy.embed).weight, embed)


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
@pytest.mark.parametrize("pattern", ["2:4", "4:8", "1:4"])
def test_n_of_m_patterns_hold_in_every_group(method, pattern):
    model = tiny_model("llama")
    prune(method, model, pattern=pattern)
    n, m = map(int, pattern.split(":"))
    for name, module in decoder_linears(model).items():
        w = linear_weight(module)
        assert satisfies_nm(w, n, m), name
        assert (w == 0).sum().item() == w.numel() * (m - n) // m, name


def test_nm_checker_rejects_a_crowded_group():
    w = torch.ones(2, 8)
    w[:, [1, 3, 5, 7]] = 0
    assert satisfies_nm(w, 2, 4)
    w[1, 1] = 5
    assert not satisfies_nm(w, 2, 4)
    assert not nm_mask(torch.randn(3, 8), 2, 4).view(3, 2, 4).sum(-1).ne(2).any()
    assert nm_mask(torch.randn(3, 8), kept=1, m=4).view(3, 2, 4).sum(-1).eq(3).all()  # 1 kept = 3 pruned per group


def test_pattern_fields_say_kept_and_pruned():
    from slmkit.compress.pruning.options import SparseGPTOptions

    options = SparseGPTOptions(pattern="1:4")
    assert (options.kept_of_m, options.pruned_of_m, options.target_sparsity) == ((1, 4), (3, 4), 0.75)


@pytest.mark.parametrize("scope", ["row", "layer"])
def test_equal_scores_are_pruned_lowest_index_first(scope):
    """Wanda's reference ranks scores with a stable sort; exact float ties (common: |w| has few
    distinct values) must be broken the same way, not by whatever the top-k kernel picks."""
    scores = torch.randint(0, 4, (32, 96), generator=torch.Generator().manual_seed(0)).float()
    mask = lowest_k_mask(scores, 0.5, scope)
    rows = scores if scope == "row" else scores.view(1, -1)
    pruned, index = mask.view_as(rows), torch.arange(rows.shape[1]).expand_as(rows)
    order = rows * rows.shape[1] + index  # score first, then position
    assert torch.all(order.masked_fill(~pruned, -1).amax(1) < order.masked_fill(pruned, float("inf")).amin(1))


def correlated_inputs(n=4096, d=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) / d**0.5 + torch.eye(d)
    scale = torch.rand(d, generator=g) * 4 + 0.1  # unequal channel norms: Wanda's signal
    return (torch.randn(n, d, generator=g) @ mix) * scale


@pytest.mark.parametrize("pattern", [None, "2:4"])
def test_reconstruction_error_sparsegpt_below_wanda_below_magnitude(pattern):
    x = correlated_inputs()
    w = torch.randn(64, 128, generator=torch.Generator().manual_seed(1))
    stats = LinearStats(128, {"sqnorm", "gram"})
    stats.update(x)
    sparsity, pruned_of_m = 0.5, ((2, 4) if pattern else None)

    def masked(scores):
        mask = nm_mask(scores, 2, 4) if pattern else lowest_k_mask(scores, sparsity)
        return w.masked_fill(mask, 0)

    magnitude = masked(w.abs())
    wanda = masked(wanda_scores(w, stats.sqnorm))
    sparsegpt, _ = obs_sweep(w, stats.gram, sparsity, pruned_of_m)
    errors = [(x @ (w - new).T).norm().item() for new in (sparsegpt, wanda, magnitude)]
    assert errors[0] < errors[1] < errors[2], errors
    assert all((new == 0).sum() == w.numel() // 2 for new in (sparsegpt, wanda, magnitude))


def test_owl_keeps_the_mean_sparsity_exactly_and_favours_outlier_layers():
    ratios = [0.01, 0.05, 0.02, 0.09, 0.03]
    sparsities = owl_sparsities(ratios, 0.6, 0.08)
    assert sum(sparsities) / len(sparsities) == pytest.approx(0.6, abs=1e-12)
    assert max(sparsities) - min(sparsities) == pytest.approx(0.16)
    assert sparsities.index(min(sparsities)) == ratios.index(max(ratios))


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_owl_prunes_layers_unevenly_around_the_target(method):
    model = tiny_model("llama", num_hidden_layers=3)
    prune(method, model, sparsity=0.5, owl=True, owl_lambda=0.1, owl_m=3.0)
    total = zeros = 0
    per_layer = []
    for layer in anatomy_of(model).layer_list(model):
        ws = [linear_weight(m) for m in anatomy_of(model).linears(layer).values()]
        z, n = sum((w == 0).sum().item() for w in ws), sum(w.numel() for w in ws)
        per_layer.append(z / n)
        zeros, total = zeros + z, total + n
    assert max(per_layer) - min(per_layer) > 0.05
    assert zeros / total == pytest.approx(0.5, abs=0.01)  # equal-sized layers: rounding per row/block only


def test_pruning_is_deterministic():
    a, b = tiny_model("llama"), tiny_model("llama")
    prune("sparsegpt", a, sparsity=0.5)
    prune("sparsegpt", b, sparsity=0.5)
    for (name, ma), mb in zip(decoder_linears(a).items(), decoder_linears(b).values()):
        assert torch.equal(ma.weight, mb.weight), name


@pytest.mark.parametrize("options, problem", [
    (dict(pattern="4:2"), "pattern"),
    (dict(pattern="2-4"), "pattern"),
    (dict(sparsity=1.5), "sparsity"),
    (dict(pattern="2:4", owl=True), "owl"),
    (dict(owl=True, owl_lambda=0.3, sparsity=0.9), "owl_lambda"),
    (dict(pattern="2:4", blocksize=30), "blocksize"),
    (dict(sparsty=0.5), "sparsty"),
])
def test_recipe_steps_validate_options_with_one_line_errors(options, problem):
    from slmkit.errors import SlmError
    from slmkit.recipe import parse_recipe

    with pytest.raises(SlmError) as err:
        parse_recipe({"model": "x", "steps": [{"sparsegpt": options}]})
    message = str(err.value)
    assert "\n" not in message and problem in message, message
