"""GgmlLinear: a Linear whose weight lies on a llama.cpp grid, kept as the file's codes and scales.

The transformers path multiplies by exactly the floats the GGUF file decodes to
(slmkit/ggml/blocks.py), so evaluating the model in slmkit measures the weights llama.cpp runs.
GGUF export writes the blocks as they are, never rounding them again.
"""

from __future__ import annotations

import torch
from torch import nn

from slmkit.anatomy import get_module, set_module
from slmkit.ggml.blocks import GridTensor, dequantize
from slmkit.ggml.types import GRID_TYPES


class GgmlLinear(nn.Module):
    def __init__(self, grid: GridTensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.out_features, self.in_features = grid.shape
        self.gguf_type = grid.type.name
        self.register_buffer("codes", grid.codes.contiguous())
        self.register_buffer("d", grid.d.contiguous())
        self.register_buffer("m", None if grid.m is None else grid.m.contiguous())
        self.register_buffer("scales", None if grid.scales is None else grid.scales.contiguous())  # K types' sub-blocks
        self.register_buffer("mins", None if grid.mins is None else grid.mins.contiguous())
        self.register_buffer("bias", bias)

    def grid(self) -> GridTensor:
        return GridTensor(GRID_TYPES[self.gguf_type], self.codes, self.d, self.m, self.scales, self.mins)

    def dequantized_weight(self) -> torch.Tensor:
        return dequantize(self.grid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.dequantized_weight().to(x.dtype)
        return nn.functional.linear(x, w, None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, type={self.gguf_type}"


def replace_with_ggml(root: nn.Module, path: str, grid: GridTensor) -> GgmlLinear:
    """Swap the Linear at `path` for a GgmlLinear holding `grid` (its bias kept)."""
    old = get_module(root, path)
    bias = getattr(old, "bias", None)
    new = GgmlLinear(grid, None if bias is None else bias.detach().float().clone())
    set_module(root, path, new)
    return new
