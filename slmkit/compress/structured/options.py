"""Typed options of the structured-compression steps (torch-free: imported when a recipe is validated)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from slmkit.steps import StepOptions, register_step

ROLES = ("q", "k", "v", "qkv", "o", "gate", "up", "down")  # the anatomy's projection roles


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


class WidthPruneOptions(StepOptions):
    """Remove MLP channels, attention heads and hidden channels by activation-based importance."""

    mlp_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="fraction of MLP intermediate channels to remove")
    heads_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="fraction of attention (query) heads to remove")
    heads_mode: Literal["groups", "queries"] = Field(
        "queries", description="GQA: remove whole KV groups, or the same number of query heads within every group")
    hidden_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="fraction of hidden (embedding) channels to remove")
    multiple_of: int = Field(8, ge=1, description="round kept MLP/hidden widths down to a multiple of this")

    @model_validator(mode="after")
    def something_to_prune(self):
        if not (self.mlp_ratio or self.heads_ratio or self.hidden_ratio):
            raise ValueError("set at least one of mlp_ratio, heads_ratio, hidden_ratio above 0")
        return self


class LowRankOptions(StepOptions):
    """Factorize decoder Linears into two Linears of rank r by (activation-aware) truncated SVD."""

    rank_ratio: float = Field(0.5, gt=0.0, lt=1.0, description="rank as a fraction of the break-even rank "
                              "in*out/(in+out), i.e. the fraction of each Linear's parameters kept")
    energy: Optional[float] = Field(None, gt=0.0, le=1.0, description="instead of rank_ratio: per-Linear rank keeping "
                                    "this fraction of the (whitened) singular-value energy (per-layer ranks)")
    allocation: Literal["uniform", "global"] = Field(
        "uniform", description="uniform: every Linear keeps rank_ratio of its parameters; global: the same total "
        "parameters, ranks spread over all Linears by their (whitened) singular spectra")
    activation_aware: Literal["none", "asvd", "svd-llm"] = Field(
        "svd-llm", description="plain SVD, ASVD activation-magnitude scaling, or SVD-LLM Cholesky whitening")
    asvd_alpha: float = Field(0.5, gt=0.0, le=1.0, description="ASVD scaling exponent on mean |activation|")
    targets: list[Literal[ROLES]] = Field(list(ROLES), description="projection roles to factorize "
                                          "(qkv: the fused q/k/v projection of GPT-2)")

    @model_validator(mode="after")
    def one_rank_rule(self):
        if self.energy is not None and self.allocation == "global":
            raise ValueError("energy picks ranks per Linear; use rank_ratio with allocation global")
        return self


register_step("depth_prune", DepthPruneOptions, "slmkit.compress.structured.depth:depth_prune",
              "remove whole decoder layers (block influence, angular distance or perplexity score)")
register_step("width_prune", WidthPruneOptions, "slmkit.compress.structured.width:width_prune",
              "remove MLP channels, attention heads (GQA-aware) and hidden channels")
register_step("low_rank", LowRankOptions, "slmkit.compress.structured.lowrank:low_rank",
              "factorize Linears by truncated SVD (plain, ASVD or SVD-LLM)")
