"""GridTensor: a matrix on a ggml grid as its codes and the per-block parameters the file stores."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from slmkit.ggml.types import GridType


@dataclass
class GridTensor:
    type: GridType
    codes: torch.Tensor  # int8 [rows, cols]: signed levels (symmetric types, Q6_K) or unsigned (_1 types, Q4_K, Q5_K)
    d: torch.Tensor  # float16 [rows, cols // block] (the super-block's d for K types)
    m: torch.Tensor | None = None  # float16 [rows, cols // block], only for _1 types; dmin for Q4_K/Q5_K
    scales: torch.Tensor | None = None  # K types: [rows, cols // sub] 6-bit scales (uint8) or Q6_K's int8 scales
    mins: torch.Tensor | None = None  # Q4_K/Q5_K: uint8 [rows, cols // 32] 6-bit mins

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.codes.shape)

    def map_rows(self, fn) -> GridTensor:
        """The same grid with `fn` applied to every per-row tensor (select or reorder rows)."""
        kept = {k: None if v is None else fn(v) for k, v in vars(self).items() if k != "type"}
        return GridTensor(self.type, **kept)
