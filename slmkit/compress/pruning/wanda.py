"""Wanda (Sun et al. 2023): prune by |W_ij| · ‖X_j‖₂, compared within each output row."""

from __future__ import annotations

import torch

from slmkit.anatomy import get_module, linear_weight
from slmkit.compress.layerwise import LinearStats, run_layerwise
from slmkit.compress.mask import prune_mask
from slmkit.compress.pruning.options import WandaOptions
from slmkit.compress.pruning.owl import layer_sparsities, wanda_scores


class Wanda:
    """Engine client: one statistics pass per layer (inputs from the already-pruned layers before it)."""

    stats, sequential = {"sqnorm"}, False

    def __init__(self, sparsities: list[float], kept_of_m: tuple[int, int] | None) -> None:
        self.sparsities, self.kept_of_m = sparsities, kept_of_m

    @torch.no_grad()
    def apply(self, index: int, layer, stats: dict[str, LinearStats]) -> None:
        for path, s in stats.items():
            weight = linear_weight(get_module(layer, path))
            weight[prune_mask(wanda_scores(weight, s.sqnorm), self.sparsities[index], self.kept_of_m)] = 0


def wanda_prune(model, tokenizer, options: WandaOptions, context, show_progress: bool = True, offload=None):
    """Wanda on every decoder Linear (embeddings and LM head untouched), calibrated on `context`'s batch."""
    ids = context.calibration_ids()
    sparsities = layer_sparsities(model, ids, options, show_progress, offload)
    run_layerwise(model, Wanda(sparsities, options.kept_of_m), ids, options.batch_size, "wanda", show_progress, offload=offload)
    return model
