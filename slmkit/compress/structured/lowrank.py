"""Low-rank factorization: replace a Linear W [out, in] by two Linears of rank r, W ≈ B A.

The factors come from a truncated SVD of W, optionally activation-aware:
  none     SVD of W itself (best in ‖W - W'‖_F)
  asvd     SVD of W S with S = diag(mean|x_j|^alpha), then A ← A S⁻¹ (ASVD, Yuan et al.)
  svd-llm  SVD of W L with L the Cholesky factor of E[x xᵀ], then A ← A L⁻¹: truncation then
           minimizes the output error ‖(W - W') X‖ exactly (SVD-LLM, Wang et al.)
Statistics come from the layer-wise engine, one group of Linears at a time, so each group is
calibrated on the outputs of the already-factorized ones. A Linear is factorized only where
r (in + out) < in · out, so the result is really smaller and faster.

Ranks: a uniform fraction of every Linear's break-even rank, a per-Linear energy threshold, or a
global allocation of the uniform ratio's parameter budget (`allocate_ranks`). Global allocation
must see every spectrum before it factorizes anything, while the engine changes one layer at a
time; so it takes two passes, as SVD-LLM v2 and ASVD also rank their matrices on the dense
model first: a read-only pass records each Linear's (whitened) singular values, computed from
the dense model's statistics and then dropped (only the spectra are kept, not the XᵀX), then
the usual sequential pass factorizes at the allocated ranks, with fresh statistics.

The factorized model records its ranks in its config (`slmkit_low_rank`) and a layout marker
(`slmkit_layout: low_rank`), so `slmkit.load` rebuilds it from any saved folder (slmkit/layouts/low_rank.py,
which also multiplies the factors back for a dense folder that plain transformers loads).
"""

from __future__ import annotations

import heapq

import torch
from torch import nn

from slmkit.anatomy import anatomy_of, get_module, is_conv1d, linear_weight, set_module
from slmkit.compress.layerwise import run_layerwise
from slmkit.compress.structured.options import LowRankOptions
from slmkit.errors import SlmError
from slmkit.modules.factorized import FactorizedLinear

LAYOUT = "low_rank"


def break_even_rank(in_features: int, out_features: int) -> float:
    return in_features * out_features / (in_features + out_features)


def largest_saving_rank(in_features: int, out_features: int) -> int:
    """The largest r with r (in + out) < in · out: beyond it the factors are no smaller than the Linear."""
    return (in_features * out_features - 1) // (in_features + out_features)


def uniform_rank(rank_ratio: float, in_features: int, out_features: int) -> int:
    return max(1, int(rank_ratio * break_even_rank(in_features, out_features)))


def choose_rank(singular: torch.Tensor, in_features: int, out_features: int, options: LowRankOptions) -> int:
    """The rank of one Linear: a fraction of the break-even rank, or the smallest keeping `energy` of Σσ²."""
    if options.energy is not None:
        energy = singular.double().pow(2).cumsum(0)
        return int((energy < options.energy * energy[-1]).sum()) + 1
    return uniform_rank(options.rank_ratio, in_features, out_features)


def whitening(stats, method: str, alpha: float, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, T⁻¹) with W T the matrix to truncate: identity, ASVD's diagonal scaling, or SVD-LLM's Cholesky factor."""
    eye = torch.eye(size, dtype=torch.float64)
    if method == "none" or stats is None:
        return eye, eye
    if method == "asvd":
        scale = stats.absmean.clamp_min(1e-6).pow(alpha)
        return torch.diag(scale), torch.diag(1 / scale)
    gram = stats.gram
    damp = 1e-6 * gram.diagonal().mean().clamp_min(1e-12)
    for _ in range(8):  # a rank-deficient XᵀX (few tokens, dead channels) needs a little damping
        factor, info = torch.linalg.cholesky_ex(gram + damp * eye)
        if info == 0:
            break
        damp *= 10
    inverse = torch.linalg.solve_triangular(factor, eye, upper=False)
    return factor, inverse


def whitened(module: nn.Module, options: LowRankOptions, stats=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(W T, T⁻¹) in float64: the matrix whose truncated SVD is taken, and the map from its factors back to W."""
    weight = linear_weight(module).double()
    t, t_inv = whitening(stats, options.activation_aware, options.asvd_alpha, weight.shape[1])
    return weight @ t, t_inv


@torch.no_grad()
def factorize(module: nn.Module, options: LowRankOptions, stats=None, rank: int | None = None) -> nn.Module:
    """A FactorizedLinear approximating `module`, or `module` itself where factors would not be smaller
    (`rank` forces a rank, smaller or not)."""
    target, t_inv = whitened(module, options, stats)
    out_features, in_features = target.shape
    u, s, vh = torch.linalg.svd(target, full_matrices=False)
    if rank is None:
        rank = choose_rank(s, in_features, out_features, options)
        if rank > largest_saving_rank(in_features, out_features):
            return module
    root = s[:rank].sqrt()
    bias = getattr(module, "bias", None)
    dtype = module.weight.dtype
    new = FactorizedLinear(in_features, out_features, rank, bias is not None, is_conv1d(module))
    new.to(device=module.weight.device, dtype=dtype)
    new.expand.weight.data = (u[:, :rank] * root).to(dtype)
    new.project.weight.data = (root[:, None] * vh[:rank] @ t_inv).to(dtype)
    if bias is not None:
        new.expand.bias.data = bias.data.clone()
    return new


class LowRankFactorizer:
    """Layer-wise engine client: factorize each group of target Linears from its input statistics.

    `ranks` ({(layer index, path): rank}, from `allocate_ranks`) fixes the ranks; targets it lacks stay dense."""

    sequential = True

    def __init__(self, anatomy, options: LowRankOptions, ranks: dict[tuple[int, str], int] | None = None) -> None:
        self.options, self.ranks = options, ranks
        self.stats = {"asvd": {"absmean"}, "svd-llm": {"gram"}}.get(options.activation_aware, set())
        roles = {**anatomy.attn, **anatomy.mlp}
        if "qkv" in roles and "qkv" not in options.targets and {"q", "k", "v"} & set(options.targets):
            raise SlmError(f"low_rank targets: {anatomy.family} fuses q, k and v into one projection; name it qkv")
        self.targets = {roles[r] for r in options.targets if r in roles}

    def apply(self, index, layer, stats) -> None:
        for path, linear_stats in stats.items():
            if path not in self.targets or (self.ranks is not None and (index, path) not in self.ranks):
                continue
            rank = None if self.ranks is None else self.ranks[(index, path)]
            set_module(layer, path, factorize(get_module(layer, path), self.options, linear_stats, rank))


class SpectrumProbe(LowRankFactorizer):
    """Engine client that changes nothing: records each target's (whitened) singular values, in and out."""

    sequential = False

    def __init__(self, anatomy, options: LowRankOptions) -> None:
        super().__init__(anatomy, options)
        self.spectra: dict[tuple[int, str], tuple[torch.Tensor, int, int]] = {}

    @torch.no_grad()
    def apply(self, index, layer, stats) -> None:
        for path, linear_stats in stats.items():
            if path in self.targets:
                target, _ = whitened(get_module(layer, path), self.options, linear_stats)
                self.spectra[(index, path)] = (torch.linalg.svdvals(target), target.shape[1], target.shape[0])


def allocate_ranks(spectra: dict, rank_ratio: float) -> dict:
    """Ranks for all Linears at once ({key: rank}; dense ones left out), within the parameters that
    uniform `rank_ratio` ranks keep. `spectra` maps a key to (singular values, in, out).

    Greedy, the knapsack rule for diminishing returns: every Linear starts at rank 1; then, while the
    budget allows, buy the step that keeps the most normalized energy σ²/Σσ² (for SVD-LLM: relative
    output error) per parameter: one more rank for in + out parameters, or, at the largest rank that
    still saves parameters, the dense Linear with all its remaining energy."""
    energy, ranks, heap, budget, spent = {}, {}, [], 0, 0

    def push(order: int, key) -> None:
        _, n, m = spectra[key]
        rank, cost = ranks[key], n + m
        gain = energy[key][rank]
        if rank == largest_saving_rank(n, m):
            gain, cost = sum(energy[key][rank:]), n * m - rank * (n + m)
        heapq.heappush(heap, (-gain / cost, order, cost, key))

    for order, (key, (singular, n, m)) in enumerate(spectra.items()):
        if largest_saving_rank(n, m) < 1:
            continue  # no rank saves parameters: dense under any allocation
        sq = singular.double().pow(2)
        energy[key] = (sq / sq.sum().clamp_min(1e-300)).tolist()
        budget += uniform_rank(rank_ratio, n, m) * (n + m)
        ranks[key], spent = 1, spent + n + m
        push(order, key)
    while heap:
        _, order, cost, key = heapq.heappop(heap)
        if spent + cost > budget:
            continue  # this Linear's next step no longer fits; it keeps its rank
        spent += cost
        if ranks[key] == largest_saving_rank(*spectra[key][1:]):
            del ranks[key]  # bought back dense
        else:
            ranks[key] += 1
            push(order, key)
    return ranks


def visit_layers(model, anatomy, client: LowRankFactorizer, context, description: str) -> None:
    """Run a client on every decoder layer: through the calibration engine, or directly when it needs no statistics."""
    if client.stats:
        run_layerwise(model, client, context.calibration_ids(), description=description)
        return
    for index, layer in enumerate(anatomy.layer_list(model)):
        client.apply(index, layer, dict.fromkeys(client.targets))


def low_rank(model, tokenizer, options: LowRankOptions, context=None):
    """Recipe step: factorize the target Linears of every decoder layer; record ranks in the config."""
    anatomy = anatomy_of(model)
    allocated = None
    if options.allocation == "global":
        probe = SpectrumProbe(anatomy, options)
        visit_layers(model, anatomy, probe, context, "measuring spectra")
        allocated = allocate_ranks(probe.spectra, options.rank_ratio)
    visit_layers(model, anatomy, LowRankFactorizer(anatomy, options, allocated), context, "factorizing")
    ranks = factorized_ranks(model)
    model.config.slmkit_layout = LAYOUT
    model.config.slmkit_low_rank = ranks
    if context is not None:
        context.log.append(f"low_rank: factorized {len(ranks)} Linears")
    return model


def factorized_ranks(model) -> dict[str, list[int]]:
    """{module name: [rank, in, out, conv1d]} of every FactorizedLinear."""
    return {name: [m.rank, m.in_features, m.out_features, int(m.conv1d)]
            for name, m in model.named_modules() if isinstance(m, FactorizedLinear)}
