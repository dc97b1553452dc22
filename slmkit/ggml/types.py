"""The ggml block types slmkit quantizes onto: block width, code range and whether a block has a min.

A weight decodes to d · q for the symmetric types (q signed) and d · q + m for the `_1` types
(q unsigned), with d and m stored as fp16, exactly as ggml-quants.c decodes them. The K types
(Q4_K, Q5_K, Q6_K) are super-blocks of 256: an fp16 d (and dmin) scales small integer sub-block
scales (6-bit scales and mins over 32 values for Q4_K/Q5_K, int8 scales over 16 for Q6_K), and a
weight decodes to (d · scale) · q − (dmin · min).
"""

from __future__ import annotations

from dataclasses import dataclass

from slmkit.errors import SlmError


@dataclass(frozen=True)
class GridType:
    name: str
    ggml_id: int  # the ggml_type / GGMLQuantizationType value
    bits: int
    has_min: bool
    block: int = 32
    sub: int = 32  # values per sub-block scale (the block itself for the 32-wide types)

    @property
    def nmax(self) -> int:
        """Half the code range for symmetric types (codes in [-nmax, nmax - 1]), the top code otherwise."""
        return 2 ** (self.bits - 1) if not self.has_min else 2**self.bits - 1

    @property
    def is_k(self) -> bool:
        """A K type: super-blocks of sub-blocks, each with its own small integer scale (and min)."""
        return self.sub < self.block

    @property
    def block_bytes(self) -> int:
        halves = 2 + (2 if self.has_min else 0)
        if self.is_k:  # 12 bytes of 6-bit scales and mins, or one int8 scale per sub-block
            return halves + (12 if self.has_min else self.block // self.sub) + self.block * self.bits // 8
        return halves + self.block * self.bits // 8


GRID_TYPES = {t.name: t for t in (
    GridType("Q4_0", 2, 4, False),
    GridType("Q4_1", 3, 4, True),
    GridType("Q5_0", 6, 5, False),
    GridType("Q5_1", 7, 5, True),
    GridType("Q8_0", 8, 8, False),
    GridType("Q4_K", 12, 4, True, block=256),
    GridType("Q5_K", 13, 5, True, block=256),
    GridType("Q6_K", 14, 6, False, block=256, sub=16),
)}


def grid_type(name: str) -> GridType:
    """The grid type called `name` (case-insensitive); a one-line error listing the known ones."""
    t = GRID_TYPES.get(name.upper())
    if t is None:
        raise SlmError(f"--gguf-type {name!r} is not a supported grid (choose one of: {', '.join(GRID_TYPES)})")
    return t


def check_rows(name: str, width: int, t: GridType) -> None:
    """A tensor's rows must hold whole blocks; name a type that fits when they do not."""
    if width % t.block:
        fits = [n for n, o in GRID_TYPES.items() if width % o.block == 0]
        raise SlmError(f"tensor {name} has rows of {width} values, not a multiple of {t.block}, so it cannot be {t.name} "
                       f"(types that fit: {', '.join(fits) or 'none; keep it F16'})")
