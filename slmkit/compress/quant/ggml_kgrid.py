"""GPTQ's column quantizer on a K grid (Q4_K, Q5_K, Q6_K): super-blocks of 256 with integer sub-block scales.

When the sweep reaches a super-block's first column, its parameters (fp16 d and dmin, the 6-bit
sub-block scales and mins, or Q6_K's int8 scales) are fixed by llama.cpp's reference rule from
the error-updated weights of its 256 columns (with act-order: once, from the starting weights).
Each column then rounds to the nearest level of that decoded grid, and the error feedback uses
(d · scale) · q − (dmin · min): exactly the floats the GGUF file decodes to.
"""

from __future__ import annotations

import torch

from slmkit.ggml.krtn import levels, params_q6, params_with_min, steps
from slmkit.ggml.tensor import GridTensor
from slmkit.ggml.types import GridType


class KColumnQuantizer:
    """obs_sweep's quantizer for a K grid: super-block parameters at each super-block start, codes in original order."""

    def __init__(self, t: GridType, weight: torch.Tensor, perm: torch.Tensor | None = None) -> None:
        rows, cols = weight.shape
        self.t, nb, nsub = t, cols // t.block, cols // t.sub
        self.perm = perm if perm is not None else torch.arange(cols)
        self.d = torch.zeros(rows, nb, dtype=torch.float16)
        self.m = torch.zeros(rows, nb, dtype=torch.float16) if t.has_min else None
        self.scales = torch.zeros(rows, nsub, dtype=torch.uint8 if t.has_min else torch.int8)
        self.mins = torch.zeros(rows, nsub, dtype=torch.uint8) if t.has_min else None
        self.step = torch.zeros(rows, nsub)
        self.offset = torch.zeros(rows, nsub) if t.has_min else None
        self.codes = torch.zeros(rows, cols, dtype=torch.int8)
        self.static = perm is not None  # act-order: contiguous super-blocks, parameters from the starting weights
        self.group_size = 0 if self.static else t.block
        if self.static:
            for b in range(nb):
                self._set(b, weight[:, b * t.block:(b + 1) * t.block])

    def _set(self, b: int, w: torch.Tensor) -> None:
        t, per = self.t, self.t.block // self.t.sub
        subs = slice(b * per, (b + 1) * per)
        w = w.float().contiguous()
        if t.has_min:
            d, dmin, ls, lm, _ = params_with_min(w, t)
            self.m[:, b], self.mins[:, subs] = dmin, lm
        else:
            d, ls, _ = params_q6(w)
            dmin = lm = None
        self.d[:, b], self.scales[:, subs] = d, ls
        step, offset = steps(d, ls, dmin, lm)
        self.step[:, subs] = step
        if offset is not None:
            self.offset[:, subs] = offset

    def prepare(self, column: int, weights: torch.Tensor) -> None:
        if not self.static:
            self._set(column // self.t.block, weights[:, :self.t.block])

    def quantize(self, column: int, w: torch.Tensor) -> torch.Tensor:
        original = int(self.perm[column])
        s = original // self.t.sub
        step = self.step[:, s]
        offset = None if self.offset is None else self.offset[:, s]
        q = torch.where(step != 0, levels(w, step, offset, self.t), torch.zeros_like(w))
        self.codes[:, original] = q.to(torch.int8)
        return step * q if offset is None else step * q - offset

    def result(self) -> GridTensor:
        return GridTensor(self.t, self.codes, self.d, self.m, self.scales, self.mins)
