"""Typed options of the quantization steps (torch-free: imported when a recipe is validated).

Quantized models are saved in the compressed-tensors format unless a recipe says otherwise:
`default_format` is read by `slm compress` when no --format is given.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Optional

from pydantic import Field, field_validator, model_validator

from slmkit.steps import StepOptions, register_step


class WeightQuantOptions(StepOptions):
    """Weight-only quantization of every Linear inside the decoder layers (embeddings and LM head kept)."""

    default_format: ClassVar[str] = "compressed-tensors"
    bits: int = Field(4, description="bits per weight: 2, 3, 4 or 8")
    group_size: Optional[int] = Field(None, ge=0, description="inputs sharing one scale; 0 = per channel "
                                      "(default: 64 for < 8 bits, per channel for 8 bits)")
    symmetric: bool = Field(True, description="symmetric grid (zero point fixed at the middle)")
    gguf_type: Optional[str] = Field(None, description="round onto this llama.cpp grid instead (Q4_0, Q4_1, Q5_0, "
                                     "Q5_1, Q8_0: blocks of 32 with fp16 scales; Q4_K, Q5_K, Q6_K: super-blocks of 256), "
                                     "or each layer onto the type a K file type gives it (Q4_K_S, Q4_K_M, Q5_K_S, "
                                     "Q5_K_M); bits/group-size/symmetric are then the grid's, and the model exports "
                                     "to GGUF bit-exactly")

    @field_validator("gguf_type")
    @classmethod
    def _known_grid(cls, value: Optional[str]) -> Optional[str]:
        from slmkit.ggml.mix import K_MIXES
        from slmkit.ggml.types import GRID_TYPES

        if value is not None and value.upper() not in (*GRID_TYPES, *K_MIXES):
            raise ValueError(f"gguf_type must be one of {', '.join((*GRID_TYPES, *K_MIXES))} (got {value})")
        return None if value is None else value.upper()

    @field_validator("bits")
    @classmethod
    def _known_bits(cls, value: int) -> int:
        if value not in (2, 3, 4, 8):
            raise ValueError(f"bits must be 2, 3, 4 or 8 (got {value})")
        return value

    @model_validator(mode="after")
    def _default_group(self):
        if self.group_size is None:
            object.__setattr__(self, "group_size", 0 if self.bits == 8 else 64)
        return self


IMPORTANCE_TYPES = ("Q4_0", "Q5_0", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M")


class RTNOptions(WeightQuantOptions):
    """Round-to-nearest quantization: no calibration data (unless `importance`)."""

    importance: bool = Field(False, description="with --gguf-type Q4_0/Q5_0/Q8_0 or a K grid or mix: weight the "
                             "rounding by each input channel's mean squared activation on the calibration data, "
                             "as llama.cpp's imatrix does")

    @model_validator(mode="after")
    def _importance_needs_a_grid(self):
        if self.importance and self.gguf_type not in IMPORTANCE_TYPES:
            raise ValueError(f"importance needs gguf_type {', '.join(IMPORTANCE_TYPES)} (llama.cpp's imatrix rounding "
                             "of those grids)")
        return self


class GPTQOptions(WeightQuantOptions):
    """GPTQ: quantize column by column, pushing each column's error onto the remaining ones through H⁻¹."""

    act_order: bool = Field(True, description="process columns by decreasing Hessian diagonal (groups stay static); "
                            "off gives plain left-to-right GPTQ")
    damp: float = Field(0.01, gt=0, description="dampening, fraction of the mean Hessian diagonal")
    blocksize: int = Field(128, ge=1, description="lazy-batch block width")
    sparsity: float = Field(0.0, ge=0.0, lt=1.0, description="also prune this fraction in the same sweep (SparseGPT §3.5)")
    pattern: Optional[str] = Field(None, pattern=r"^\d+:\d+$", description="also prune N of every M inputs, e.g. 2:4")


class AWQOptions(WeightQuantOptions):
    """AWQ: scale salient input channels up (searched on calibration activations) before rounding."""

    grid: int = Field(20, ge=2, description="points of the scaling-exponent grid search in [0, 1)")
    search_tokens: int = Field(1024, ge=16, description="calibration tokens (evenly spread) scored in the search")
    quantizer: Literal["rtn", "gptq"] = Field("rtn", description="how the scaled weights are rounded: "
                                              "round-to-nearest, or GPTQ on the same calibration data")


class SmoothQuantOptions(StepOptions):
    """SmoothQuant W8A8: move activation outliers into the weights, then int8 weights and per-token int8 inputs."""

    default_format: ClassVar[str] = "compressed-tensors"
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="migration strength (0 = none, 1 = all into weights)")


register_step("rtn", RTNOptions, "slmkit.compress.quant.rtn:rtn_quantize",
              "round-to-nearest weight quantization (int2-8, per channel or group), packed")
register_step("gptq", GPTQOptions, "slmkit.compress.quant.gptq:gptq_quantize",
              "GPTQ weight quantization (optionally act-order, optionally joint with pruning), packed")
register_step("awq", AWQOptions, "slmkit.compress.quant.awq:awq_quantize",
              "activation-aware scaling then weight quantization, packed")
register_step("smoothquant", SmoothQuantOptions, "slmkit.compress.quant.smoothquant:smoothquant_quantize",
              "SmoothQuant W8A8 (int8 weights, dynamic per-token int8 activations)")
