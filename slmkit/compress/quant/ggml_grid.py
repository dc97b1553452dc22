"""Quantizing onto llama.cpp's grids inside the compression steps: RTN and GPTQ's column quantizer.

Block parameters follow llama.cpp's reference rule (Q4_0/Q5_0: the block's signed max maps to
the lowest level; _1 types: min and range; Q8_0: absmax / 127) and are rounded to fp16 at once.
Given importance (GPTQ passes its Hessian diagonal, the calibration's mean squared inputs), a
Q4_0/Q5_0 block's scale is searched instead, as llama.cpp's imatrix path does (make_qx_quants:
candidate scales around the max, each refit by weighted least squares), on the error-updated
weights GPTQ is about to round. GPTQ then rounds each column to the nearest level of that decoded
grid, and its error feedback uses d16 · q (+ m16): exactly the floats the GGUF file decodes to.
"""

from __future__ import annotations

import torch

from slmkit.anatomy import decoder_linears
from slmkit.compress.layerwise import in_features
from slmkit.ggml.blocks import GridTensor
from slmkit.ggml.qx import make_qx
from slmkit.ggml.types import GridType, check_rows, grid_type


def check_model_rows(model, name: str) -> GridType:
    """The grid type `name`, after checking every decoder Linear's rows hold whole blocks of it."""
    t = grid_type(name)
    for path, module in decoder_linears(model).items():
        check_rows(path, in_features(module), t)
    return t


def searches_scale(t: GridType) -> bool:
    """True for the grids whose scale block_params searches given importance (those llama.cpp's imatrix path searches)."""
    return t.bits != 8 and not t.has_min


def block_params(w: torch.Tensor, t: GridType, weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """fp16-rounded (d, m) per row of one block w [rows, 32], as widened float32; with per-value `weight`
    [rows, 32] a Q4_0/Q5_0 scale is the weighted search's, else the reference rule's."""
    w = w.float()
    if t.bits == 8:
        return (w.abs().amax(1) / 127).half().float(), None
    if not t.has_min:
        if weight is not None:
            return make_qx(w.contiguous(), weight.float().contiguous(), t.nmax)[1].half().float(), None
        return (w.gather(1, w.abs().argmax(1, keepdim=True))[:, 0] / -t.nmax).half().float(), None
    lo, hi = w.amin(1), w.amax(1)
    return ((hi - lo) / t.nmax).half().float(), lo.half().float()


def levels(w: torch.Tensor, d: torch.Tensor, m: torch.Tensor | None, t: GridType) -> torch.Tensor:
    """Nearest level of the decoded grid for w [rows, ...] with per-row d, m."""
    shape = (-1,) + (1,) * (w.dim() - 1)
    safe = torch.where(d == 0, torch.ones_like(d), d).view(shape)
    if t.has_min:
        return torch.clamp(torch.round((w - m.view(shape)) / safe), 0, t.nmax)
    lo, hi = (-127, 127) if t.bits == 8 else (-t.nmax, t.nmax - 1)
    return torch.clamp(torch.round(w / safe), lo, hi)


class GgmlColumnQuantizer:
    """obs_sweep's quantizer for a ggml grid: block parameters at each block start, codes in original column order."""

    def __init__(self, t: GridType, weight: torch.Tensor, perm: torch.Tensor | None = None,
                 importance: torch.Tensor | None = None) -> None:
        rows, cols = weight.shape
        self.t, nb = t, cols // t.block
        # imatrix's per-value weights: importance · sqrt(σ² + w²), σ² the row's mean square (of the starting weights)
        self.importance = importance.float() if importance is not None and searches_scale(t) else None
        self.sigma2 = weight.float().pow(2).mean(1, keepdim=True)
        self.perm = perm if perm is not None else torch.arange(cols)
        self.d = torch.zeros(rows, nb)
        self.m = torch.zeros(rows, nb) if t.has_min else None
        self.codes = torch.zeros(rows, cols, dtype=torch.int8)
        self.static = perm is not None  # act-order: contiguous blocks, parameters fixed from the starting weights
        self.group_size = 0 if self.static else t.block
        if self.static:
            for b in range(nb):
                self._set(b, weight[:, b * t.block:(b + 1) * t.block])

    def _set(self, b: int, w: torch.Tensor) -> None:
        weight = None
        if self.importance is not None:
            weight = self.importance[b * self.t.block:(b + 1) * self.t.block] * torch.sqrt(self.sigma2 + w.float() ** 2)
        d, m = block_params(w, self.t, weight)
        self.d[:, b] = d
        if m is not None:
            self.m[:, b] = m

    def prepare(self, column: int, weights: torch.Tensor) -> None:
        if not self.static:
            self._set(column // self.t.block, weights[:, :self.t.block])

    def quantize(self, column: int, w: torch.Tensor) -> torch.Tensor:
        original = int(self.perm[column])
        b = original // self.t.block
        m = None if self.m is None else self.m[:, b]
        q = levels(w, self.d[:, b], m, self.t)
        self.codes[:, original] = q.to(torch.int8)
        return self.d[:, b] * q + (0 if m is None else m)

    def result(self) -> GridTensor:
        return GridTensor(self.t, self.codes, self.d.half(), None if self.m is None else self.m.half())

