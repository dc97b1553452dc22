"""Round-to-nearest onto a ggml grid, operation for operation as llama.cpp's quantizers.

`quantize(w, t)` follows quantize_row_*_ref of ggml-quants.c (plain llama-quantize);
`quantize(w, t, importance)` follows the imatrix path (quantize_row_q4_0_impl / q5_0_impl, which
search 18 scales around the block's max with weights importance · sqrt(sigma² + x²)). All
arithmetic is float32 in the same order as the C code, so the codes and fp16 scales match
llama.cpp's bytes. Q8_0 ignores importance, as llama.cpp does. The K types live in krtn.py.
"""

from __future__ import annotations

import torch

from slmkit.errors import SlmError
from slmkit.ggml.blocks import GridTensor
from slmkit.ggml.qx import in_order, make_qx, signed_max, sqrtf
from slmkit.ggml.types import GridType

F32 = torch.float32


def _inverse(d: torch.Tensor) -> torch.Tensor:
    return torch.where(d == 0, torch.zeros_like(d), 1.0 / torch.where(d == 0, torch.ones_like(d), d))


def _roundf(v: torch.Tensor) -> torch.Tensor:
    """C roundf: halves away from zero (torch.round rounds halves to even)."""
    t = v.trunc()
    return t + torch.where((v - t).abs() >= 0.5, v.sign(), torch.zeros_like(v))


def _ref(x: torch.Tensor, t: GridType) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """quantize_row_*_ref on blocks x [B, 32]: (levels, fp16 d, fp16 m or None)."""
    if t.bits == 8:
        d = x.abs().amax(1, keepdim=True) / 127
        return _roundf(x * _inverse(d)), d.half(), None
    if not t.has_min:
        d = signed_max(x) / -t.nmax
        u = torch.clamp((x * _inverse(d) + (t.nmax + 0.5)).trunc(), max=2 * t.nmax - 1)
        return u - t.nmax, d.half(), None
    lo, hi = x.amin(1, keepdim=True), x.amax(1, keepdim=True)
    d = (hi - lo) / t.nmax
    u = torch.clamp(((x - lo) * _inverse(d) + 0.5).trunc(), max=t.nmax)
    return u, d.half(), lo.half()


def _importance(w: torch.Tensor, t: GridType, importance: torch.Tensor) -> GridTensor:
    """The imatrix path for one matrix w [rows, cols] (float32) with per-input-channel importance [cols]."""
    rows, cols = w.shape
    sigma2 = in_order(w * w) / torch.tensor(float(cols), dtype=F32)
    weight = importance.to(F32)[None, :] * sqrtf(sigma2[:, None] + w * w)
    lv, d = make_qx(w.reshape(-1, t.block), weight.reshape(-1, t.block), t.nmax)
    nb = cols // t.block
    return GridTensor(t, lv.to(torch.int8).view(rows, cols), d.half().view(rows, nb))


def quantize(w: torch.Tensor, t: GridType, importance: torch.Tensor | None = None) -> GridTensor:
    """w [rows, cols] onto grid t, as llama.cpp rounds it (with an importance vector: as its imatrix path)."""
    w = w.detach().to(F32).contiguous()
    rows, cols = w.shape
    if cols % t.block:
        raise SlmError(f"rows of {cols} values do not split into {t.name} blocks of {t.block}")
    if t.is_k:
        from slmkit.ggml.krtn import quantize_k

        return quantize_k(w, t, importance)
    if importance is not None and t.bits != 8:
        if t.has_min:
            raise SlmError(f"importance-weighted rounding is not built for {t.name} (use Q4_0, Q5_0 or Q8_0)")
        return _importance(w, t, importance)
    lv, d, m = _ref(w.view(-1, t.block), t)
    nb = cols // t.block
    return GridTensor(t, lv.to(torch.int8).view(rows, cols), d.view(rows, nb), None if m is None else m.view(rows, nb))
