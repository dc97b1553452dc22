"""A GGUF file's header read without loading it (torch-free, milliseconds): the metadata scalars,
the tensor table and where the data starts, and the checks that tell whether llama.cpp can load
the file, so a broken or foreign file is a one-line error before any model work.

The layout is gguf's own (gguf-py `GGUFReader`, llama.cpp `gguf.cpp`): magic, version, tensor and
key counts, key/value pairs, tensor infos (name, dims, ggml type, offset), then the data, aligned
to `general.alignment` (default 32). Array values are skipped, not decoded.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from slmkit.errors import SlmError

MAGIC = b"GGUF"
SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
STRING, ARRAY = 8, 9
DEFAULT_ALIGNMENT = 32


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dims: tuple[int, ...]  # ggml order: the row width first
    ggml_type: int
    offset: int  # from the start of the data section


@dataclass(frozen=True)
class Header:
    version: int
    metadata: dict  # scalars and strings; arrays are recorded as their length
    tensors: list[TensorInfo]
    data_start: int


class _Reader:
    def __init__(self, f) -> None:
        self.f = f

    def scalar(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        raw = self.f.read(size)
        if len(raw) < size:
            raise EOFError("the header ends early")
        return struct.unpack("<" + fmt, raw)[0]

    def string(self) -> str:
        return self.f.read(self.scalar("Q")).decode("utf-8", "replace")

    def value(self, kind: int):
        if kind == STRING:
            return self.string()
        if kind == ARRAY:
            inner, count = self.scalar("I"), self.scalar("Q")
            if inner in SCALARS:
                self.f.seek(count * struct.calcsize(SCALARS[inner]), 1)
            else:
                for _ in range(count):
                    self.value(inner)
            return count
        if kind not in SCALARS:
            raise ValueError(f"unknown metadata value type {kind}")
        return self.scalar(SCALARS[kind])


def read_header(path: Path) -> Header:
    """The header of a GGUF file; a one-line error when it is not one or the header is cut short."""
    with open(path, "rb") as f:
        if f.read(4) != MAGIC:
            raise SlmError(f"{path}: not a GGUF file (it does not start with the GGUF magic bytes)")
        r = _Reader(f)
        try:
            version, n_tensors, n_pairs = r.scalar("I"), r.scalar("Q"), r.scalar("Q")
            metadata = {}
            for _ in range(n_pairs):
                key = r.string()
                metadata[key] = r.value(r.scalar("I"))
            tensors = []
            for _ in range(n_tensors):
                name = r.string()
                dims = tuple(r.scalar("Q") for _ in range(r.scalar("I")))
                tensors.append(TensorInfo(name, dims, r.scalar("I"), r.scalar("Q")))
        except (EOFError, ValueError, struct.error, OverflowError) as err:
            raise SlmError(f"{path}: a damaged GGUF header ({err})") from None
        align = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        return Header(version, metadata, tensors, -(-f.tell() // align) * align)


def tensor_bytes(info: TensorInfo) -> int:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType(info.ggml_type)]
    except ValueError:
        raise SlmError(f"tensor {info.name} has ggml type {info.ggml_type}, which llama.cpp does not know") from None
    count = 1
    for d in info.dims:
        count *= d
    return count // block * size


def check_loadable(path: Path) -> Header:
    """A GGUF file llama.cpp can load: a whole header, a known architecture and tensor types, and every
    tensor's data inside the file; otherwise a one-line error saying what is wrong."""
    from gguf import MODEL_ARCH_NAMES

    header = read_header(path)
    if header.version not in (2, 3):
        raise SlmError(f"{path}: GGUF version {header.version}, llama.cpp reads versions 2 and 3")
    arch = header.metadata.get("general.architecture")
    if arch not in set(MODEL_ARCH_NAMES.values()):
        raise SlmError(f"{path}: model architecture {arch!r} is not one llama.cpp knows")
    end = max((header.data_start + t.offset + tensor_bytes(t) for t in header.tensors), default=header.data_start)
    size = path.stat().st_size
    if end > size:
        raise SlmError(f"{path}: truncated: its tensors need {end:,} bytes, the file has {size:,} "
                       "(an interrupted copy or download?)")
    return header
