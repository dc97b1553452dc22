"""The layer-wise calibration engine shared by every activation-aware algorithm.

Calibration tokens run through the embeddings into decoder layer 0, whose inputs (hidden
states and the keyword arguments the family passes: masks, position embeddings) are
captured. Then, one layer at a time: hooks accumulate the statistics the algorithm asks
for on each of the layer's Linears, the algorithm changes the layer, and the *changed*
layer is run to produce the next layer's inputs. Only one layer's activations and
statistics are alive at once.

An algorithm is any object with:
    stats: set[str]                       which statistics to collect (see LinearStats)
    sequential: bool                      True: one calibration pass per group of Linears
                                          that share an input (q/k/v, o, gate/up, down),
                                          so later groups see earlier groups' changes
    apply(index, layer, stats) -> None    change the layer in place, given
                                          {path in layer: LinearStats} for the group
and optionally:
    after_layer(index, layer, inputs, outputs) -> None   sees each layer's input/output hidden states

Linears that read the same tensor (q/k/v; gate/up) share one LinearStats object, so each
statistic is accumulated once per input. With `offload` (compress/offload.py) the decoder
layers live on disk: each is loaded just before it is processed and written back and freed
right after, so peak memory grows with one layer instead of the whole model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from slmkit.anatomy import Anatomy, anatomy_of, get_module, is_conv1d
from slmkit.progress import progress_bar

STATS = ("sqnorm", "gram", "absmax", "absmean", "inputs")


class LinearStats:
    """Running statistics of one Linear's inputs over calibration tokens.

    sqnorm  sum over tokens of x_j^2 (so sqrt gives Wanda's ‖X_j‖₂)        [in]  float64
    gram    mean over tokens of x xᵀ (GPTQ/SparseGPT Hessian up to 2/n)   [in, in] float64
    absmax  max over tokens of |x_j| (SmoothQuant)                        [in]
    absmean mean over tokens of |x_j| (AWQ, ASVD)                         [in]  float64
    inputs  up to `max_inputs` input rows sampled evenly (AWQ's search)  [n, in]
    """

    def __init__(self, in_features: int, want: set[str], max_inputs: int = 4096) -> None:
        unknown = set(want) - set(STATS)
        if unknown:
            raise ValueError(f"unknown statistics {sorted(unknown)} (valid: {', '.join(STATS)})")
        self.want, self.tokens, self.max_inputs = set(want), 0, max_inputs
        f64 = dict(dtype=torch.float64)
        self.sqnorm = torch.zeros(in_features, **f64) if "sqnorm" in want else None
        self.gram = torch.zeros(in_features, in_features, **f64) if "gram" in want else None
        self.absmax = torch.zeros(in_features) if "absmax" in want else None
        self.absmean = torch.zeros(in_features, **f64) if "absmean" in want else None
        self._inputs: list[torch.Tensor] = []

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).detach().float()
        total = self.tokens + x.shape[0]
        # Each chunk is reduced in float32 (fast GEMM, as the reference implementations do);
        # the running sums across chunks are kept in float64.
        if self.sqnorm is not None:
            self.sqnorm += x.pow(2).sum(0).double()
        if self.gram is not None:
            self.gram.mul_(self.tokens / total).add_((x.T @ x).double(), alpha=1.0 / total)
        if self.absmean is not None:
            self.absmean.mul_(self.tokens / total).add_(x.abs().sum(0).double(), alpha=1.0 / total)
        if self.absmax is not None:
            torch.maximum(self.absmax, x.abs().amax(0).cpu(), out=self.absmax)
        if "inputs" in self.want:
            self._inputs.append(x.cpu())
        self.tokens = total

    def inputs(self) -> torch.Tensor:
        """The sampled input rows (evenly strided, deterministic)."""
        x = torch.cat(self._inputs) if self._inputs else torch.empty(0)
        if x.shape[0] > self.max_inputs:
            x = x[torch.linspace(0, x.shape[0] - 1, self.max_inputs).long()]
        return x


class LayerwiseAlgorithm(Protocol):
    stats: set[str]
    sequential: bool

    def apply(self, index: int, layer: nn.Module, stats: dict[str, LinearStats]) -> None: ...


class StopForward(Exception):
    """Raised by the capture hook once layer 0's inputs are recorded."""


@dataclass
class LayerInputs:
    """The inputs of the current decoder layer: one hidden-state chunk per calibration batch."""

    hidden: list[torch.Tensor]
    args: list[tuple] = field(default_factory=list)  # positional args after hidden states
    kwargs: list[dict[str, Any]] = field(default_factory=list)


@torch.no_grad()
def capture_first_layer_inputs(model: nn.Module, anatomy: Anatomy, ids: torch.Tensor, batch_size: int) -> LayerInputs:
    """Run the embeddings on calibration ids and record what decoder layer 0 receives."""
    first = anatomy.layer_list(model)[0]
    captured = LayerInputs(hidden=[])

    def hook(module, args, kwargs):
        hidden = args[0] if args else kwargs.pop("hidden_states")
        captured.hidden.append(hidden.detach())
        captured.args.append(tuple(args[1:]))
        captured.kwargs.append(dict(kwargs))
        raise StopForward

    handle = first.register_forward_pre_hook(hook, with_kwargs=True)
    device = next(model.parameters()).device
    try:
        for start in range(0, ids.shape[0], batch_size):
            try:
                model(ids[start : start + batch_size].to(device), use_cache=False)
            except StopForward:
                pass
    finally:
        handle.remove()
    return captured


def run_layer(layer: nn.Module, inputs: LayerInputs) -> list[torch.Tensor]:
    outputs = []
    for hidden, args, kwargs in zip(inputs.hidden, inputs.args, inputs.kwargs):
        out = layer(hidden, *args, **kwargs)
        outputs.append(out[0] if isinstance(out, tuple) else out)
    return outputs


def linear_groups(anatomy: Anatomy) -> list[list[str]]:
    """Linears grouped by shared input, in execution order: attention in, attention out, MLP in, MLP out."""
    attn_in = [p for role, p in anatomy.attn.items() if role != "o"]
    mlp_in = [p for role, p in anatomy.mlp.items() if role != "down"]
    return [attn_in, [anatomy.attn["o"]], mlp_in, [anatomy.mlp["down"]]]


def paths_by_input(stats: dict[str, LinearStats]) -> list[list[str]]:
    """The paths of `stats` grouped by shared statistics object (Linears reading the same input)."""
    groups: dict[int, list[str]] = {}
    for path, stat in stats.items():
        groups.setdefault(id(stat), []).append(path)
    return list(groups.values())


def in_features(module: nn.Module) -> int:
    return module.weight.shape[0] if is_conv1d(module) else module.in_features


@torch.no_grad()
def collect_stats(
    layer: nn.Module, paths: list[str], inputs: LayerInputs, want: set[str], shared: list[list[str]] | None = None
) -> dict[str, LinearStats]:
    """One calibration pass through `layer`, accumulating statistics on the Linears at `paths`.

    Paths listed together in `shared` receive the same input tensor, so they get one LinearStats.
    Each chunk's forward stops as soon as every watched Linear has seen its input: the rest of
    the layer would only compute outputs nobody reads (for q/k/v that is almost the whole layer)."""
    stats, watched = {}, []
    leader = {p: group[0] for group in (shared or []) for p in group if group[0] in paths}
    for path in paths:
        first = leader.get(path, path)
        if first in stats:
            stats[path] = stats[first]
            continue
        stats[path] = LinearStats(in_features(get_module(layer, path)), want)
        watched.append(path)
    seen: set[str] = set()

    def record(path: str, args) -> None:
        stats[path].update(args[0])
        seen.add(path)
        if len(seen) == len(watched):
            raise StopForward

    handles = [get_module(layer, p).register_forward_pre_hook(lambda m, args, p=p: record(p, args)) for p in watched]
    try:
        for hidden, args, kwargs in zip(inputs.hidden, inputs.args, inputs.kwargs):
            seen.clear()
            try:
                layer(hidden, *args, **kwargs)
            except StopForward:
                pass
    finally:
        for h in handles:
            h.remove()
    return stats


@torch.no_grad()
def run_layerwise(
    model: nn.Module,
    algorithm: LayerwiseAlgorithm,
    calibration_ids: torch.Tensor,
    batch_size: int = 8,
    description: str = "calibrating",
    show_progress: bool = True,
    offload: Any = None,
) -> None:
    """Apply a layer-wise algorithm to every decoder layer, feeding each the changed previous layer's outputs.

    `offload` (a compress.offload.LayerOffload) loads each layer from disk before it is processed
    and saves and frees it afterwards."""
    anatomy = anatomy_of(model)
    layers = anatomy.layer_list(model)
    inputs = capture_first_layer_inputs(model, anatomy, calibration_ids, batch_size)
    shared = linear_groups(anatomy)
    groups = shared if algorithm.sequential else [[p for g in shared for p in g]]
    after_layer = getattr(algorithm, "after_layer", None)
    with progress_bar(description, total=len(layers), enabled=show_progress) as advance:
        for index, layer in enumerate(layers):
            if offload is not None:
                offload.load(index, layer)
            if algorithm.stats:
                for paths in groups:
                    algorithm.apply(index, layer, collect_stats(layer, paths, inputs, algorithm.stats, shared))
            else:
                algorithm.apply(index, layer, {})
            outputs = run_layer(layer, inputs)
            if after_layer is not None:
                after_layer(index, layer, inputs.hidden, outputs)
            inputs.hidden = outputs
            if offload is not None:
                offload.release(index, layer)
            advance()
