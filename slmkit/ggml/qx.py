"""The pieces of ggml-quants.c that several quantizers share, in float32 exactly as the C code computes them:
make_qx_quants' scale search, sums accumulated in C order, and a correctly rounded sqrtf.
"""

from __future__ import annotations

import torch

F32 = torch.float32


def signed_max(x: torch.Tensor) -> torch.Tensor:
    """Per block [B, n]: the first value of largest magnitude, with its sign (ggml's `max`)."""
    return x.gather(1, x.abs().argmax(1, keepdim=True))


def sqrtf(v: torch.Tensor) -> torch.Tensor:
    """Correctly rounded float32 sqrt, as C's sqrtf (torch's vectorised float32 sqrt can be off by an ulp)."""
    return torch.sqrt(v.double()).float()


def _sums(x, w, iscale, nmax):
    """One candidate scale of make_qx_quants: levels and the sequential float32 sums Σw·x·l, Σw·l²."""
    lv = torch.clamp(torch.round(iscale * x), -nmax, nmax - 1)
    return lv, in_order(w * x * lv), in_order(w * lv * lv)


def in_order(v: torch.Tensor) -> torch.Tensor:
    """Σ over dim 1 in C order of accumulation (left to right, float32), so the sums round the same way."""
    columns = v.t().contiguous()
    acc = columns[0]
    for column in columns[1:]:
        acc = acc + column
    return acc


def make_qx(x: torch.Tensor, w: torch.Tensor, nmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """make_qx_quants(n, nmax, x, L, rmse_type=1, w) on blocks [B, n]: (signed levels, float32 scale)."""
    mx = signed_max(x)[:, 0]
    zero = x.abs().amax(1) < 1e-15
    safe = torch.where(zero, torch.ones_like(mx), mx)
    lv, sumlx, suml2 = _sums(x, w, (torch.tensor(-nmax, dtype=F32) / safe)[:, None], nmax)  # tensor / tensor: exact
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
