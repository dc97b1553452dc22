"""Grid-quantized tensors as codes plus fp16 block scales/mins, and their exact ggml byte layout.

`GridTensor` is what quantizers produce and what GGUF export writes: `pack` lays the blocks out
byte for byte as ggml's block_q4_0 / q4_1 / q5_0 / q5_1 / q8_0 structs (the K super-blocks in
slmkit/ggml/kblocks.py), `unpack` reads them back, and `dequantize` computes the floats ggml (and
`gguf.quants.dequantize`) decode them to.
"""

from __future__ import annotations

import torch

from slmkit.ggml import kblocks
from slmkit.ggml.tensor import GridTensor
from slmkit.ggml.types import GridType

__all__ = ["GridTensor", "dequantize", "pack", "unpack"]


def dequantize(t: GridTensor) -> torch.Tensor:
    """float32 [rows, cols], computed as ggml does: fp16 d (and m) widened to float32, d · q (+ m)."""
    if t.type.is_k:
        return kblocks.dequantize(t)
    rows, cols = t.shape
    q = t.codes.float().view(rows, -1, t.type.block)
    out = t.d.float()[..., None] * q
    if t.m is not None:
        out = out + t.m.float()[..., None]
    return out.view(rows, cols)


def _nibbles(u: torch.Tensor) -> torch.Tensor:
    """[B, 32] values 0..15 -> [B, 16] bytes: low nibble from element j, high nibble from element j + 16."""
    return (u[:, :16] & 0x0F) | ((u[:, 16:] & 0x0F) << 4)


def _high_bits(u: torch.Tensor) -> torch.Tensor:
    """[B, 32] 5-bit values -> [B, 4] bytes: bit j of a little-endian uint32 is bit 4 of element j."""
    bits = ((u >> 4) & 1).view(-1, 4, 8)
    return (bits << torch.arange(8, dtype=torch.uint8)).sum(-1, dtype=torch.uint8)


def pack(t: GridTensor) -> torch.Tensor:
    """uint8 [rows, row_bytes]: each block as ggml stores it (d, [m], [qh], qs)."""
    rows, cols = t.shape
    g = t.type
    if g.is_k:
        return kblocks.pack(t).view(rows, -1)
    q = t.codes.view(-1, g.block)
    u = (q.to(torch.int16) + (0 if g.has_min else g.nmax)).to(torch.uint8)
    parts = [t.d.reshape(-1, 1).view(torch.uint8)]
    if g.has_min:
        parts.append(t.m.reshape(-1, 1).view(torch.uint8))
    if g.bits == 8:
        parts.append(q.view(torch.uint8))
    else:
        if g.bits == 5:
            parts.append(_high_bits(u))
        parts.append(_nibbles(u))
    return torch.cat(parts, 1).view(rows, -1)


def unpack(raw: torch.Tensor, g: GridType, cols: int) -> GridTensor:
    """The inverse of `pack`: uint8 [rows, row_bytes] (or flat) of type g with rows of `cols` values."""
    if g.is_k:
        return kblocks.unpack(raw, g, cols)
    b = raw.reshape(-1, g.block_bytes)
    rows = b.shape[0] * g.block // cols
    d = b[:, 0:2].contiguous().view(torch.float16)
    at, m = 2, None
    if g.has_min:
        m, at = b[:, 2:4].contiguous().view(torch.float16), 4
    if g.bits == 8:
        q = b[:, at:].contiguous().view(torch.int8)
    else:
        qh = None
        if g.bits == 5:
            qh, at = b[:, at:at + 4], at + 4
        qs = b[:, at:]
        u = torch.cat([qs & 0x0F, qs >> 4], 1)
        if qh is not None:
            hb = (qh[:, :, None] >> torch.arange(8, dtype=torch.uint8)) & 1
            u = u | (hb.reshape(-1, 32) << 4)
        q = u.to(torch.int16) - (0 if g.has_min else g.nmax)
    nb = cols // g.block
    return GridTensor(g, q.to(torch.int8).reshape(rows, cols), d.reshape(rows, nb), None if m is None else m.reshape(rows, nb))
