"""The K super-blocks (block_q4_K, block_q5_K, block_q6_K of ggml-common.h) as GridTensors and bytes.

A super-block holds 256 weights: Q4_K/Q5_K as fp16 d and dmin, twelve bytes of 6-bit scales and
mins for eight sub-blocks of 32, the low nibbles (and, for Q5_K, a plane of fifth bits); Q6_K as
low nibbles, a plane of 2-bit high parts, sixteen int8 scales (sub-blocks of 16) and fp16 d last.
Decoding computes (d · scale) · q − (dmin · min) in float32, as ggml and `gguf.quants` do.
"""

from __future__ import annotations

import torch

from slmkit.ggml.tensor import GridTensor
from slmkit.ggml.types import GridType

U8 = torch.uint8


def dequantize(t: GridTensor) -> torch.Tensor:
    """float32 [rows, cols] of a K-type grid tensor."""
    rows, cols = t.shape
    g = t.type
    q = t.codes.float().view(rows, -1, g.sub)
    per_sub = g.block // g.sub
    step = (t.d.float()[..., None] * t.scales.float().view(rows, -1, per_sub)).view(rows, -1, 1)
    if not g.has_min:
        return (step * q).view(rows, cols)
    offset = (t.m.float()[..., None] * t.mins.float().view(rows, -1, per_sub)).view(rows, -1, 1)
    return (step * q - offset).view(rows, cols)


def _pack_scales(ls: torch.Tensor, lm: torch.Tensor) -> torch.Tensor:
    """[B, 8] 6-bit scales and mins -> ggml's 12 bytes: low 6 bits of 0-3 in bytes 0-7, the rest split by nibble."""
    lo_s, hi_s, lo_m, hi_m = ls[:, :4], ls[:, 4:], lm[:, :4], lm[:, 4:]
    return torch.cat([lo_s | ((hi_s >> 4) << 6), lo_m | ((hi_m >> 4) << 6), (hi_s & 0x0F) | ((hi_m & 0x0F) << 4)], 1)


def _unpack_scales(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of `_pack_scales`: [B, 12] bytes -> ([B, 8] scales, [B, 8] mins)."""
    s, m, sm = b[:, 0:4], b[:, 4:8], b[:, 8:12]
    ls = torch.cat([s & 0x3F, (sm & 0x0F) | ((s >> 6) << 4)], 1)
    lm = torch.cat([m & 0x3F, (sm >> 4) | ((m >> 6) << 4)], 1)
    return ls, lm


def _bit_plane(u: torch.Tensor, shift: int, width: int) -> torch.Tensor:
    """[B, k, 32] values -> [B, 32] bytes: field j (width bits) of byte l holds value j's bits from `shift` up."""
    k = u.shape[1]
    fields = (u >> shift) & (2**width - 1)
    return (fields << (torch.arange(k, dtype=U8) * width)[None, :, None]).sum(1, dtype=U8)


def _from_plane(plane: torch.Tensor, k: int, width: int) -> torch.Tensor:
    """The inverse of `_bit_plane`: [B, 32] bytes -> [B, k, 32] fields."""
    return (plane[:, None, :] >> (torch.arange(k, dtype=U8) * width)[None, :, None]) & (2**width - 1)


def pack(t: GridTensor) -> torch.Tensor:
    """uint8 [super-blocks, block_bytes] in ggml's struct layout."""
    g = t.type
    halves = lambda x: x.reshape(-1, 1).view(U8)  # noqa: E731
    if not g.has_min:  # Q6_K: L = q + 32 in 0..63
        u = (t.codes.to(torch.int16) + 32).to(U8).view(-1, 2, 4, 32)
        ql = (u[:, :, :2] & 0x0F) | ((u[:, :, 2:] & 0x0F) << 4)
        qh = torch.stack([_bit_plane(u[:, h], 4, 2) for h in range(2)], 1)
        return torch.cat([ql.reshape(-1, 128), qh.reshape(-1, 64), t.scales.reshape(-1, 16).view(U8), halves(t.d)], 1)
    u = t.codes.to(U8).view(-1, 8, 32)
    pairs = u.view(-1, 4, 2, 32)
    qs = ((pairs[:, :, 0] & 0x0F) | ((pairs[:, :, 1] & 0x0F) << 4)).reshape(-1, 128)
    parts = [halves(t.d), halves(t.m), _pack_scales(t.scales.reshape(-1, 8), t.mins.reshape(-1, 8))]
    if g.bits == 5:
        parts.append(_bit_plane(u, 4, 1))
    return torch.cat([*parts, qs], 1)


def unpack(raw: torch.Tensor, g: GridType, cols: int) -> GridTensor:
    """The inverse of `pack`: uint8 [rows, row_bytes] (or flat) of K type g with rows of `cols` values."""
    b = raw.reshape(-1, g.block_bytes)
    rows, nb = b.shape[0] * g.block // cols, cols // g.block
    if not g.has_min:
        ql, qh = b[:, :128].reshape(-1, 2, 2, 32), b[:, 128:192].reshape(-1, 2, 32)
        low = torch.cat([ql & 0x0F, ql >> 4], 2)  # [B, 2, 4, 32]: quarters 0, 1 from low nibbles, 2, 3 from high
        high = torch.stack([_from_plane(qh[:, h], 4, 2) for h in range(2)], 1)
        q = (low | (high << 4)).to(torch.int16) - 32
        scales = b[:, 192:208].contiguous().view(torch.int8)
        d = b[:, 208:210].contiguous().view(torch.float16)
        return GridTensor(g, q.to(torch.int8).reshape(rows, cols), d.reshape(rows, nb), scales=scales.reshape(rows, -1))
    d, m = b[:, 0:2].contiguous().view(torch.float16), b[:, 2:4].contiguous().view(torch.float16)
    ls, lm = _unpack_scales(b[:, 4:16])
    at = 16
    qs = b[:, -128:].reshape(-1, 4, 32)
    u = torch.stack([qs & 0x0F, qs >> 4], 2).reshape(-1, 8, 32)
    if g.bits == 5:
        u = u | (_from_plane(b[:, at:at + 32], 8, 1) << 4)
    return GridTensor(g, u.to(torch.int8).reshape(rows, cols), d.reshape(rows, nb), m.reshape(rows, nb),
                      scales=ls.reshape(rows, -1), mins=lm.reshape(rows, -1))
