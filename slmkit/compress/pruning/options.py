"""Typed options of the pruning steps (torch-free: imported when a recipe is validated)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, ValidationInfo, field_validator, model_serializer

from slmkit.steps import StepOptions, register_step


def parse_pattern(pattern: str) -> tuple[int, int]:
    """'2:4' -> (2, 4): keep at most N non-zeros in every M consecutive inputs of a row."""
    n, sep, m = pattern.partition(":")
    if not (sep and n.isdigit() and m.isdigit() and 0 < int(n) < int(m)):
        raise ValueError(f"pattern '{pattern}' is not N:M with 0 < N < M (e.g. 2:4, 4:8)")
    return int(n), int(m)


SPARSITY = Field(0.5, ge=0.0, lt=1.0, description="fraction of weights set to zero (ignored with a pattern)")
PATTERN = Field(None, description="N:M semi-structured pattern, e.g. 2:4 (N non-zeros per M inputs)")
OFFLOAD = Field(False, description="layer offload: keep decoder layers on disk and load one at a time (safetensors folder source)")


class PruningOptions(StepOptions):
    """What every pruning step shares: how much to prune (`sparsity`) and in which N:M `pattern`."""

    @field_validator("pattern", check_fields=False)
    @classmethod
    def _valid_pattern(cls, value: Optional[str]) -> Optional[str]:
        if value is not None:
            parse_pattern(value)
        return value

    @model_serializer(mode="wrap")
    def _omit_unused(self, handler):
        """Manifests and logs record a pattern and layer offload only when used."""
        return {k: v for k, v in handler(self).items() if not ((k == "pattern" and v is None) or (k == "offload" and not v))}

    @property
    def kept_of_m(self) -> Optional[tuple[int, int]]:
        """(N, M) of an N:M pattern: N weights kept in every M consecutive inputs."""
        return parse_pattern(self.pattern) if self.pattern else None

    @property
    def pruned_of_m(self) -> Optional[tuple[int, int]]:
        """(M - N, M): the weights an N:M pattern prunes in every M inputs, as `obs_sweep` takes them."""
        return (self.kept_of_m[1] - self.kept_of_m[0], self.kept_of_m[1]) if self.pattern else None

    @property
    def target_sparsity(self) -> float:
        """The sparsity the pattern or `sparsity` asks for."""
        return 1 - self.kept_of_m[0] / self.kept_of_m[1] if self.pattern else self.sparsity


class MagnitudeOptions(PruningOptions):
    """Zero the smallest-magnitude weights of every Linear inside the decoder layers."""

    sparsity: float = SPARSITY
    scope: Literal["row", "layer"] = Field("row", description="compare weights within each output row or the whole matrix")
    pattern: Optional[str] = PATTERN
    offload: bool = OFFLOAD


class ActivationPruningOptions(PruningOptions):
    """Options of the calibration-based pruners: OWL allocation and the engine's batch size."""

    sparsity: float = SPARSITY
    pattern: Optional[str] = PATTERN
    owl: bool = Field(False, description="OWL: give layers with more activation outliers a lower sparsity")
    owl_m: float = Field(5.0, gt=0.0, description="OWL outlier threshold: score > M × the layer's mean score")
    owl_lambda: float = Field(0.08, ge=0.0, lt=0.5, description="OWL: layer sparsities span target ± lambda")
    batch_size: int = Field(8, ge=1, description="calibration windows per forward pass")
    offload: bool = OFFLOAD

    @field_validator("owl")
    @classmethod
    def _owl_needs_unstructured(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("pattern"):
            raise ValueError("owl allocates unstructured sparsity per layer; it cannot be combined with pattern")
        return value

    @field_validator("owl_lambda")
    @classmethod
    def _owl_range_fits(cls, value: float, info: ValidationInfo) -> float:
        sparsity = info.data.get("sparsity", 0.5)
        if info.data.get("owl") and not (0 <= sparsity - value and sparsity + value < 1):
            raise ValueError(f"owl_lambda {value} takes layer sparsities outside [0, 1) around sparsity {sparsity}")
        return value


class WandaOptions(ActivationPruningOptions):
    """Wanda: prune the lowest |W_ij| · ‖X_j‖₂ within each output row."""


class SparseGPTOptions(ActivationPruningOptions):
    """SparseGPT: OBS column sweep that updates the remaining weights to compensate each pruned one."""

    blocksize: int = Field(128, ge=1, description="columns per lazy-update block; the unstructured mask is chosen per block")
    damp: float = Field(0.01, gt=0.0, description="Hessian damping as a fraction of its mean diagonal")
    sequential: bool = Field(False, description="re-collect statistics after each group of Linears (q/k/v, o, gate/up, down)")

    @field_validator("blocksize")
    @classmethod
    def _blocks_hold_whole_groups(cls, value: int, info: ValidationInfo) -> int:
        pattern = info.data.get("pattern")
        if pattern and value % parse_pattern(pattern)[1]:
            raise ValueError(f"blocksize {value} must be a multiple of M={parse_pattern(pattern)[1]} for pattern {pattern}")
        return value


register_step("magnitude", MagnitudeOptions, "slmkit.compress.pruning.magnitude:magnitude_prune",
              "magnitude pruning of decoder Linears (unstructured or N:M)")
register_step("wanda", WandaOptions, "slmkit.compress.pruning.wanda:wanda_prune",
              "Wanda pruning: |weight| x input norm, unstructured or N:M, optional OWL")
register_step("sparsegpt", SparseGPTOptions, "slmkit.compress.pruning.sparsegpt:sparsegpt_prune",
              "SparseGPT pruning with OBS weight updates, unstructured or N:M, optional OWL")
