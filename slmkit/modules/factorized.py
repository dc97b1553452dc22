"""FactorizedLinear: a rank-r stand-in for a dense projection, W ≈ B A, as two Linears."""

from __future__ import annotations

import torch
from torch import nn


class FactorizedLinear(nn.Module):
    """y = expand(project(x)): a rank-r stand-in for a Linear (or GPT-2 Conv1D) of the same in/out."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool, conv1d: bool = False) -> None:
        super().__init__()
        self.in_features, self.out_features, self.rank, self.conv1d = in_features, out_features, rank, conv1d
        self.project = nn.Linear(in_features, rank, bias=False)
        self.expand = nn.Linear(rank, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.project(x))

    def merged(self) -> nn.Module:
        """The dense module (Linear, or Conv1D where the original was one) this factorization stands for."""
        weight = self.expand.weight.data @ self.project.weight.data
        bias = self.expand.bias is not None
        if self.conv1d:
            from transformers.pytorch_utils import Conv1D

            dense = Conv1D(self.out_features, self.in_features).to(weight.dtype)
            dense.weight.data = weight.t().contiguous()
            dense.bias.data = self.expand.bias.data.clone() if bias else torch.zeros_like(dense.bias)
            return dense
        dense = nn.Linear(self.in_features, self.out_features, bias=bias, dtype=weight.dtype, device=weight.device)
        dense.weight.data = weight
        if bias:
            dense.bias.data = self.expand.bias.data.clone()
        return dense
