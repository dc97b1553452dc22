"""Typed options of the structured-compression steps (torch-free: imported when a recipe is validated)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from slmkit.steps import StepOptions, register_step


class DepthPruneOptions(StepOptions):
    """Remove whole decoder layers chosen by an importance score on calibration data."""

    ratio: float = Field(0.25, ge=0.0, lt=1.0, description="fraction of decoder layers to remove (rounded to a count)")
    layers: Optional[int] = Field(None, ge=0, description="number of layers to remove (overrides ratio)")
    score: Literal["block_influence", "angular", "ppl", "last"] = Field(
        "block_influence", description="layer importance: ShortGPT block influence, angular distance, "
        "perplexity increase when dropped, or simply the last layers")
    contiguous: bool = Field(False, description="remove one contiguous block instead of the k least important layers")
    ppl_samples: int = Field(4, ge=1, description="calibration windows used by the perplexity score (one pass per candidate)")
    remove: Optional[list[int]] = Field(None, description="explicit layer indices to remove (no scoring)")


register_step("depth_prune", DepthPruneOptions, "slmkit.compress.structured.depth:depth_prune",
              "remove whole decoder layers (block influence, angular distance or perplexity score)", uses_calibration=True)
