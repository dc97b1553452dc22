"""Typed options of the pruning steps (torch-free: imported when a recipe is validated)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from slmkit.steps import StepOptions, register_step


class MagnitudeOptions(StepOptions):
    """Zero the smallest-magnitude weights of every Linear inside the decoder layers."""

    sparsity: float = Field(0.5, ge=0.0, lt=1.0, description="fraction of weights set to zero")
    scope: Literal["row", "layer"] = Field("row", description="compare weights within each output row or the whole matrix")


register_step("magnitude", MagnitudeOptions, "slmkit.compress.pruning.magnitude:magnitude_prune",
              "unstructured magnitude pruning of decoder Linears")
