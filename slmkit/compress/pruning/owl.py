"""OWL (Yin et al. 2024): layers with more activation outliers keep more of their weights.

A dense calibration pass measures each layer's outlier ratio D_l: the share of Wanda scores
|W_ij|·‖X_j‖₂ above M × the layer's mean score. Layer densities are D rescaled to span
2λ and shifted so their mean is 1 − target: the mean sparsity is exactly the target.
"""

from __future__ import annotations

import torch

from slmkit.anatomy import get_module, linear_weight
from slmkit.compress.layerwise import LinearStats, run_layerwise
from slmkit.errors import SlmError


def wanda_scores(weight: torch.Tensor, sqnorm: torch.Tensor) -> torch.Tensor:
    """|W_ij| · ‖X_j‖₂ for a weight [out, in] and the summed squared inputs [in]."""
    return weight.abs().float() * sqnorm.sqrt().float().unsqueeze(0)


class OutlierRatios:
    """A read-only engine client: records each layer's share of outlier Wanda scores."""

    stats, sequential = {"sqnorm"}, False

    def __init__(self, threshold: float) -> None:
        self.threshold, self.ratios = threshold, []

    @torch.no_grad()
    def apply(self, index: int, layer, stats: dict[str, LinearStats]) -> None:
        scores = torch.cat([wanda_scores(linear_weight(get_module(layer, p)), s.sqnorm).flatten() for p, s in stats.items()])
        self.ratios.append((scores > self.threshold * scores.mean()).double().mean().item())


def owl_sparsities(ratios: list[float], target: float, lam: float) -> list[float]:
    """Per-layer sparsities: 1 − density, densities ∝ outlier ratio within ±λ·2 span, mean sparsity = target."""
    d = torch.tensor(ratios, dtype=torch.float64)
    spread = d.max() - d.min()
    d = (d - d.min()) / spread * 2 * lam if spread > 0 else torch.zeros_like(d)
    density = d - d.mean() + (1 - target)
    sparsity = 1 - density
    if sparsity.min() < 0 or sparsity.max() >= 1:
        raise SlmError(f"owl_lambda {lam} gives layer sparsities outside [0, 1) around {target}; lower owl_lambda")
    return sparsity.tolist()


def layer_sparsities(model, calibration_ids: torch.Tensor, options, show_progress: bool = True, offload=None) -> list[float]:
    """The sparsity of each decoder layer: the target everywhere, or OWL's allocation."""
    from slmkit.anatomy import anatomy_of

    layers = len(anatomy_of(model).layer_list(model))
    if not options.owl:
        return [options.target_sparsity] * layers
    ratios = OutlierRatios(options.owl_m)
    run_layerwise(model, ratios, calibration_ids, options.batch_size, "OWL outliers", show_progress, offload=offload)
    return owl_sparsities(ratios.ratios, options.sparsity, options.owl_lambda)
