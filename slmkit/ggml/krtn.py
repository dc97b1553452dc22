"""Round-to-nearest onto the K grids (Q4_K, Q5_K, Q6_K), operation for operation as llama.cpp.

Without importance this follows quantize_row_q*_K_ref (make_qkx2_quants per sub-block, the
sub-block scales and mins rounded onto 6 bits of the largest; Q6_K: make_qx_quants and int8 scales);
with importance, quantize_row_q*_K_impl (make_qkx3_quants with weights importance · sqrt(σ² + x²),
the 6-bit scales and mins chosen by make_qp_quants). Every block is a row of a tensor; the C loops
over candidate steps stay loops over steps, and sums run in the C order in float32 so that the
codes and fp16 scales match llama.cpp's bytes.
"""

from __future__ import annotations

import torch

from slmkit.ggml.blocks import GridTensor
from slmkit.ggml.qx import in_order as _seq
from slmkit.ggml.qx import make_qx, sqrtf
from slmkit.ggml.types import GridType

F32 = torch.float32
# (nmax-relative start, step, steps) of make_qkx2_quants in the reference path, per bit width
REF_SEARCH = {4: (-1.0, 0.1, 20), 5: (-0.5, 0.1, 15)}
IMPL_SEARCH = (-0.9, 0.05, 36)  # make_qkx3_quants in the importance path, both widths


def f32(v: float) -> torch.Tensor:
    """A C float constant (0.1f, 63.f) as a float32 tensor. It also keeps `c / tensor` exact: torch computes a
    Python number over a tensor as reciprocal(tensor) · c, rounding twice."""
    return torch.tensor(v, dtype=F32)


def _safe(v: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    return torch.where(ok, v, torch.ones_like(v))


def _make_qkx(x, w, nmax: int, rmin: float, rdelta: float, nstep: int):
    """make_qkx2/3_quants on sub-blocks x [S, n] with weights w: (levels, scale, the_min) with x ≈ scale · L − the_min."""
    lo, hi = x.amin(1).clamp(max=0), x.amax(1)
    flat = hi <= lo
    span = _safe(hi - lo, ~flat)[:, None]
    sum_w, sum_x = _seq(w), _seq(w * x)
    iscale = f32(nmax) / span
    scale = (f32(1) / iscale)[:, 0]
    L = torch.clamp(torch.round(iscale * (x - lo[:, None])), 0, nmax)
    best = _seq(w * (scale[:, None] * L + lo[:, None] - x).square())
    low = lo.clone()
    for s in range(nstep + 1):  # as in C, each candidate is taken relative to the best min found so far
        width = _safe(hi - low, ~flat)[:, None]
        cand = torch.clamp(torch.round(((f32(rmin) + f32(rdelta) * s) + nmax) / width * (x - low[:, None])), 0, nmax)
        wl = w * cand
        sum_l, sum_l2, sum_xl = _seq(wl), _seq(wl * cand), _seq(wl * x)
        D = sum_w * sum_l2 - sum_l * sum_l
        ok = D > 0
        this_scale = (sum_w * sum_xl - sum_x * sum_l) / _safe(D, ok)
        this_min = (sum_l2 * sum_x - sum_l * sum_xl) / _safe(D, ok)
        positive = this_min > 0
        this_scale = torch.where(positive, sum_xl / _safe(sum_l2, sum_l2 != 0), this_scale)
        this_min = torch.where(positive, torch.zeros_like(this_min), this_min)
        err = _seq(w * (this_scale[:, None] * cand + this_min[:, None] - x).square())
        better = ok & (err < best) & ~flat
        L = torch.where(better[:, None], cand, L)
        best, scale, low = (torch.where(better, a, b) for a, b in ((err, best), (this_scale, scale), (this_min, low)))
    zero = torch.zeros_like(scale)
    return torch.where(flat[:, None], torch.zeros_like(L), L), torch.where(flat, zero, scale), -low


def _qp_search(x, w, nmax: int, safe):
    """make_qp_quants' scale search: the inverse scale among nmax/max and (nmax ± 0.1 k)/max with least weighted error."""
    iscale = f32(nmax) / safe
    L = torch.round(iscale * x)
    diff = x - (f32(1) / iscale) * L
    best = _seq(w * diff * diff)
    for s in (-4, -3, -2, -1, 1, 2, 3, 4):
        cand = (f32(0.1) * s + nmax) / safe
        diff = x - (f32(1) / cand) * torch.clamp(torch.round(cand * x), max=nmax)
        mse = _seq(w * diff * diff)
        better = mse < best
        best, iscale = torch.where(better, mse, best), torch.where(better[:, None], cand, iscale)
    return iscale


def _make_qp(x: torch.Tensor, w: torch.Tensor, nmax: int = 63) -> tuple[torch.Tensor, torch.Tensor]:
    """make_qp_quants on rows x [B, n] ≥ 0 with weights w: (levels 0..nmax, scale), then its coordinate descent."""
    mx = x.amax(1).clamp(min=0)
    zero = mx < 1e-15
    iscale = _qp_search(x, w, nmax, _safe(mx, ~zero)[:, None])
    L = torch.clamp(torch.round(iscale * x), max=nmax)
    sumlx, suml2 = _seq(w * x * L), _seq(w * L * L)
    for _ in range(5):  # a pass that changes nothing leaves the state as it was, so C's early exit needs no mask
        for i in range(x.shape[1]):
            wi, xi, li = w[:, i], x[:, i], L[:, i]
            slx, sl2 = sumlx - wi * xi * li, suml2 - wi * li * li
            ok = (slx > 0) & (sl2 > 0)
            new = torch.clamp(torch.round(xi * sl2 / _safe(slx, ok)), max=nmax)
            slx, sl2 = slx + wi * xi * new, sl2 + wi * new * new
            take = ok & (new != li) & (slx * slx * suml2 > sumlx * sumlx * sl2)
            L[:, i] = torch.where(take, new, li)
            sumlx, suml2 = torch.where(take, slx, sumlx), torch.where(take, sl2, suml2)
    scale = torch.where(suml2 > 0, sumlx / _safe(suml2, suml2 > 0), torch.zeros_like(suml2))
    return torch.where(zero[:, None], torch.zeros_like(L), L), torch.where(zero, torch.zeros_like(scale), scale)


def _six_bits(v: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """MIN(63, (uint8_t) nearest_int(inverse · v)): sub-block values onto 6 bits of the super-block's step."""
    return (torch.round(inverse[:, None] * v).to(torch.int32) & 0xFF).clamp(max=63).to(torch.uint8)


def _ref_scales(scales, mins):
    """The reference path: 6-bit scales and mins relative to the largest of each, d = max/63 in fp16."""
    top_s, top_m = (torch.where(v > 0, v, torch.zeros_like(v)) for v in (scales.amax(1), mins.amax(1)))  # +0, never -0
    inv_s = torch.where(top_s > 0, f32(63) / _safe(top_s, top_s > 0), torch.zeros_like(top_s))
    inv_m = torch.where(top_m > 0, f32(63) / _safe(top_m, top_m > 0), torch.zeros_like(top_m))
    return (top_s / 63).half(), (top_m / 63).half(), _six_bits(scales, inv_s), _six_bits(mins, inv_m)


def _impl_weights(x: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
    """quant_weights · sqrt(σ² + x²) per value of super-blocks x [B, 256], σ² = 2 Σx² / 256."""
    sigma2 = 2 * _seq(x * x) / x.shape[1]
    return importance * sqrtf(sigma2[:, None] + x * x)


def _sub_weights(x: torch.Tensor) -> torch.Tensor:
    """The reference path's weights per sub-block x [S, 32]: sqrt(Σx²/32) + |x|."""
    return sqrtf(_seq(x * x) / x.shape[1])[:, None] + x.abs()


def params_with_min(x: torch.Tensor, t: GridType, importance: torch.Tensor | None = None):
    """Q4_K/Q5_K parameters of super-blocks x [B, 256]: (fp16 d, fp16 dmin, 6-bit scales [B, 8], mins [B, 8],
    the sub-block search's own levels [B, 256], used where a sub-block's step is zero)."""
    B, nmax = x.shape[0], t.nmax
    sub = x.reshape(-1, 32)
    if importance is None:
        L, scales, mins = _make_qkx(sub, _sub_weights(sub), nmax, *REF_SEARCH[t.bits])
        d, dmin, ls, lm = _ref_scales(scales.view(B, 8), mins.view(B, 8))
        return d, dmin, ls, lm, L.view(B, -1)
    w = _impl_weights(x, importance).reshape(-1, 32)
    L, scales, mins = _make_qkx(sub, w, nmax, *IMPL_SEARCH)
    sw = _seq(w).view(B, 8)
    Ls, d = _make_qp(scales.view(B, 8), sw)
    Lm, dmin = _make_qp(mins.view(B, 8), sw)
    six = lambda v: (v.to(torch.int32) & 0xFF).clamp(max=63).to(torch.uint8)  # noqa: E731
    return d.half(), dmin.half(), six(Ls), six(Lm), L.view(B, -1)


def params_q6(x: torch.Tensor, importance: torch.Tensor | None = None):
    """Q6_K parameters of super-blocks x [B, 256]: (fp16 d, int8 scales [B, 16], make_qx_quants' levels [B, 256])."""
    B = x.shape[0]
    sub = x.reshape(-1, 16)
    w = sub * sub if importance is None else importance.reshape(-1, 16)
    L, scales = make_qx(sub, w, 32)
    scales = scales.view(B, 16)
    top = scales.gather(1, scales.abs().argmax(1, keepdim=True))[:, 0]
    zero = top.abs() < 1e-15
    iscale = f32(-128) / _safe(top, ~zero)
    sc = torch.clamp(torch.round(iscale[:, None] * scales), -128, 127)
    d = torch.where(zero, torch.zeros_like(top), f32(1) / iscale).half()
    sc = torch.where(zero[:, None], torch.zeros_like(sc), sc).to(torch.int8)
    return d, sc, torch.where(zero[:, None], torch.full_like(L.view(B, -1), -32), L.view(B, -1))


def steps(d: torch.Tensor, scales: torch.Tensor, dmin: torch.Tensor | None, mins: torch.Tensor | None):
    """Per sub-block float32 (step, offset) of super-block parameters: d · scale and dmin · min, as ggml widens them."""
    step = d.float()[..., None] * scales.float()
    return step, None if dmin is None else dmin.float()[..., None] * mins.float()


def levels(x: torch.Tensor, step: torch.Tensor, offset: torch.Tensor | None, t: GridType) -> torch.Tensor:
    """Nearest level of the decoded sub-block grid: round((x + offset) / step) (Q6_K: x / step), clamped to the codes."""
    safe = _safe(step, step != 0)
    if offset is None:
        return torch.clamp(torch.round(x / safe), -32, 31)
    return torch.clamp(torch.round((x + offset) / safe), 0, t.nmax)


def quantize_k(w: torch.Tensor, t: GridType, importance: torch.Tensor | None = None) -> GridTensor:
    """w [rows, cols] (float32, cols a multiple of 256) onto K grid t as llama.cpp rounds it."""
    rows, cols = w.shape
    x = w.reshape(-1, t.block)
    imp = None if importance is None else importance.to(F32).expand(rows, cols).reshape(-1, t.block)
    nsub = t.block // t.sub
    if t.has_min:
        d, dmin, ls, lm, L = params_with_min(x, t, imp)
        step, offset = steps(d, ls, dmin, lm)
    else:
        d, ls, L = params_q6(x, imp)
        (step, offset), dmin, lm = steps(d, ls, None, None), None, None
    sub = x.reshape(-1, nsub, t.sub)
    q = levels(sub, step[..., None], None if offset is None else offset[..., None], t)
    q = torch.where((step != 0)[..., None], q, L.view(-1, nsub, t.sub))
    per_row = lambda v: None if v is None else v.reshape(rows, -1)  # noqa: E731
    return GridTensor(t, q.to(torch.int8).view(rows, cols), per_row(d), per_row(dmin), per_row(ls), per_row(lm))
