"""SparseGPT (Frantar & Alistarh 2023): prune column by column, updating the remaining weights.

Each Linear's Hessian XᵀX comes from the layer-wise engine; the sweep itself is
`compress.obs.obs_sweep` (shared with GPTQ): per-block OBS mask, damping, dead inputs.
"""

from __future__ import annotations

import torch

from slmkit.anatomy import get_module, linear_weight
from slmkit.compress.layerwise import LinearStats, paths_by_input, run_layerwise
from slmkit.compress.obs import obs_sweep
from slmkit.compress.pruning.options import SparseGPTOptions
from slmkit.compress.pruning.owl import layer_sparsities
from slmkit.errors import SlmError


class SparseGPT:
    """Engine client: OBS sweep of each Linear against its input Hessian."""

    stats = {"gram"}

    def __init__(self, sparsities: list[float], options: SparseGPTOptions) -> None:
        self.sparsities, self.options = sparsities, options
        self.sequential = options.sequential

    @torch.no_grad()
    def apply(self, index: int, layer, stats: dict[str, LinearStats]) -> None:
        o = self.options
        pruned_of_m = o.pruned_of_m
        for paths in paths_by_input(stats):  # q/k/v and gate/up: one stacked sweep, masks budgeted per Linear
            weights = [linear_weight(get_module(layer, p)) for p in paths]
            if pruned_of_m and weights[0].shape[1] % pruned_of_m[1]:
                raise SlmError(f"pattern {o.pattern} needs in_features divisible by {pruned_of_m[1]}; "
                               f"{paths[0]} has {weights[0].shape[1]}")
            sizes = [w.shape[0] for w in weights]
            new, _ = obs_sweep(torch.cat([w.detach().float() for w in weights]), stats[paths[0]].gram,
                               self.sparsities[index], pruned_of_m, None, o.blocksize, o.damp, segments=sizes)
            for weight, rows in zip(weights, new.split(sizes)):
                weight.copy_(rows.to(weight.dtype))


def sparsegpt_prune(model, tokenizer, options: SparseGPTOptions, context, show_progress: bool = True, offload=None):
    """SparseGPT on every decoder Linear (embeddings and LM head untouched), calibrated on `context`'s batch."""
    ids = context.calibration_ids()
    sparsities = layer_sparsities(model, ids, options, show_progress, offload)
    run_layerwise(model, SparseGPT(sparsities, options), ids, options.batch_size, "sparsegpt", show_progress, offload=offload)
    return model
