"""Round-to-nearest onto a ggml grid, operation for operation as llama.cpp's quantizers.

`quantize(w, t)` follows quantize_row_*_ref of ggml-quants.c (plain llama-quantize);
`quantize(w, t, importance)` follows the imatrix path (quantize_row_q4_0_impl / q5_0_impl, which
search 18 scales around the block's max with weights importance · sqrt(sigma² + x²)). All
arithmetic is float32 in the same order as the C code, so the codes and fp16 scales match
llama.cpp's bytes. Q8_0 ignores importance, as llama.cpp does.
"""

from __future__ import annotations

import torch

from slmkit.errors import SlmError
from slmkit.ggml.blocks import GridTensor
from slmkit.ggml.types import GridType

F32 = torch.float32


def _signed_max(x: torch.Tensor) -> torch.Tensor:
    """Per block [B, n]: the first value of largest magnitude, with its sign (ggml's `max`)."""
    return x.gather(1, x.abs().argmax(1, keepdim=True))


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
        d = _signed_max(x) / -t.nmax
        u = torch.clamp((x * _inverse(d) + (t.nmax + 0.5)).trunc(), max=2 * t.nmax - 1)
        return u - t.nmax, d.half(), None
    lo, hi = x.amin(1, keepdim=True), x.amax(1, keepdim=True)
    d = (hi - lo) / t.nmax
    u = torch.clamp(((x - lo) * _inverse(d) + 0.5).trunc(), max=t.nmax)
    return u, d.half(), lo.half()


def _sums(x, w, iscale, nmax):
    """One candidate scale of make_qx_quants: levels and the sequential float32 sums Σw·x·l, Σw·l²."""
    lv = torch.clamp(torch.round(iscale * x), -nmax, nmax - 1)
    sumlx = torch.zeros(x.shape[0], dtype=F32)
    suml2 = torch.zeros(x.shape[0], dtype=F32)
    for i in range(x.shape[1]):  # C order of accumulation, so the float sums round the same way
        sumlx = sumlx + w[:, i] * x[:, i] * lv[:, i]
        suml2 = suml2 + w[:, i] * lv[:, i] * lv[:, i]
    return lv, sumlx, suml2


def _make_qx(x: torch.Tensor, w: torch.Tensor, nmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """make_qx_quants(n, nmax, x, L, rmse_type=1, w) on blocks [B, n]: (signed levels, float32 scale)."""
    mx = _signed_max(x)[:, 0]
    zero = x.abs().amax(1) < 1e-15
    safe = torch.where(zero, torch.ones_like(mx), mx)
    lv, sumlx, suml2 = _sums(x, w, (-nmax / safe)[:, None], nmax)
    scale = torch.where(suml2 != 0, sumlx / torch.where(suml2 != 0, suml2, torch.ones_like(suml2)), torch.zeros_like(suml2))
    best = scale * sumlx
    for s in range(-9, 10):
        if s == 0:
            continue
        iscale = -(nmax + torch.tensor(0.1, dtype=F32) * s) / safe
        cand, sumlx, suml2 = _sums(x, w, iscale[:, None], nmax)
        better = (suml2 > 0) & (sumlx * sumlx > best * suml2)
        lv = torch.where(better[:, None], cand, lv)
        scale = torch.where(better, sumlx / torch.where(suml2 > 0, suml2, torch.ones_like(suml2)), scale)
        best = torch.where(better, scale * sumlx, best)
    return torch.where(zero[:, None], torch.full_like(lv, -nmax), lv), torch.where(zero, torch.zeros_like(scale), scale)


def _importance(w: torch.Tensor, t: GridType, importance: torch.Tensor) -> GridTensor:
    """The imatrix path for one matrix w [rows, cols] (float32) with per-input-channel importance [cols]."""
    rows, cols = w.shape
    sum_x2 = torch.zeros(rows, dtype=F32)
    for j in range(cols):  # sequential, as the C loop
        sum_x2 = sum_x2 + w[:, j] * w[:, j]
    sigma2 = sum_x2 / torch.tensor(float(cols), dtype=F32)
    weight = importance.to(F32)[None, :] * torch.sqrt(sigma2[:, None] + w * w)
    lv, d = _make_qx(w.reshape(-1, t.block), weight.reshape(-1, t.block), t.nmax)
    nb = cols // t.block
    return GridTensor(t, lv.to(torch.int8).view(rows, cols), d.half().view(rows, nb))


def quantize(w: torch.Tensor, t: GridType, importance: torch.Tensor | None = None) -> GridTensor:
    """w [rows, cols] onto grid t, as llama.cpp rounds it (with an importance vector: as its imatrix path)."""
    w = w.detach().to(F32).contiguous()
    rows, cols = w.shape
    if cols % t.block:
        raise SlmError(f"rows of {cols} values do not split into {t.name} blocks of {t.block}")
    if importance is not None and t.bits != 8:
        if t.has_min:
            raise SlmError(f"importance-weighted rounding is not built for {t.name} (use Q4_0, Q5_0 or Q8_0)")
        return _importance(w, t, importance)
    lv, d, m = _ref(w.view(-1, t.block), t)
    nb = cols // t.block
    return GridTensor(t, lv.to(torch.int8).view(rows, cols), d.view(rows, nb), None if m is None else m.view(rows, nb))
