"""The integer grid of weight quantization: scales, zero points and codes per output row and group.

Codes are unsigned, u in [0, 2^bits - 1]; a weight dequantizes to (u - zero) · scale. Symmetric
grids have zero = 2^(bits-1); the inverse, `dequantize`, lives beside the kernels in
slmkit/modules/quant_linear.py. Scales are rounded to bfloat16 so that the CPU kernels, which take
bfloat16 scales, compute exactly what was chosen here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from slmkit.errors import SlmError


@dataclass(frozen=True)
class QuantSpec:
    bits: int = 4
    group_size: int = 64  # 0 = one scale per output row (per channel)
    symmetric: bool = True

    @property
    def maxq(self) -> int:
        return 2**self.bits - 1

    def group_of(self, in_features: int) -> int:
        return self.group_size or in_features


def grid_params(w: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, zero) for each row of w [rows, n]: the range of the row mapped onto the integer grid."""
    w = w.float()
    if spec.symmetric:
        scale = w.abs().amax(1) / (spec.maxq / 2)
        zero = torch.full_like(scale, 2 ** (spec.bits - 1))
    else:
        lo, hi = w.amin(1).clamp(max=0), w.amax(1).clamp(min=0)
        scale = (hi - lo) / spec.maxq
    scale = scale.clamp(min=1e-8).to(torch.bfloat16).float()
    if not spec.symmetric:
        zero = torch.round(-lo / scale).clamp(0, spec.maxq)
    return scale, zero


def to_codes(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, maxq: int) -> torch.Tensor:
    """Codes of a column or block: w [rows, ...] with per-row scale/zero [rows] broadcast."""
    shape = (-1,) + (1,) * (w.dim() - 1)
    return torch.clamp(torch.round(w / scale.view(shape)) + zero.view(shape), 0, maxq)


def quantize_rtn(w: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Round-to-nearest: (codes uint8 [out, in], scale [out, groups], zero [out, groups])."""
    rows, cols = w.shape
    g = spec.group_of(cols)
    groups = w.float().reshape(rows, cols // g, g)
    scale, zero = grid_params(groups.reshape(-1, g), spec)
    scale, zero = scale.view(rows, -1), zero.view(rows, -1)
    codes = torch.clamp(torch.round(groups / scale[..., None]) + zero[..., None], 0, spec.maxq)
    return codes.reshape(rows, cols).to(torch.uint8), scale, zero.to(torch.uint8)


def check_group_size(model, group_size: int) -> None:
    """A group size must divide every quantized Linear's input width; say which ones would."""
    from slmkit.anatomy import decoder_linears
    from slmkit.compress.layerwise import in_features

    if not group_size:
        return
    widths = {in_features(m) for m in decoder_linears(model).values()}
    bad = sorted(w for w in widths if w % group_size)
    if bad:
        fits = [g for g in (16, 32, 64, 96, 128, 192, 256) if all(w % g == 0 for w in widths)]
        raise SlmError(f"--group-size {group_size} does not divide the input width {bad[0]} of this model's Linears "
                       f"(choose one of: {', '.join(map(str, fits)) or 'none'}, or 0 for per-channel)")
