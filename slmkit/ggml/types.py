"""The ggml block types slmkit quantizes onto: block width, code range and whether a block has a min.

A weight decodes to d · q for the symmetric types (q signed) and d · q + m for the `_1` types
(q unsigned), with d and m stored as fp16, exactly as ggml-quants.c decodes them.
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

    @property
    def nmax(self) -> int:
        """Half the code range for symmetric types (codes in [-nmax, nmax - 1]), the top code otherwise."""
        return 2 ** (self.bits - 1) if not self.has_min else 2**self.bits - 1

    @property
    def block_bytes(self) -> int:
        return 2 + (2 if self.has_min else 0) + self.block * self.bits // 8


GRID_TYPES = {t.name: t for t in (
    GridType("Q4_0", 2, 4, False),
    GridType("Q4_1", 3, 4, True),
    GridType("Q5_0", 6, 5, False),
    GridType("Q5_1", 7, 5, True),
    GridType("Q8_0", 8, 8, False),
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
