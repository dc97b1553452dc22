"""llama.cpp's own quantizer (libggml shipped by llama-cpp-python) called through ctypes, for byte comparisons."""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import numpy as np
import pytest


@functools.lru_cache(maxsize=1)
def libggml():
    """libggml-base from llama-cpp-python; the calling test is skipped where llama_cpp is not installed."""
    llama_cpp = pytest.importorskip("llama_cpp")
    lib = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    return lib


def ggml_quantize(w: np.ndarray, ggml_id: int, block_bytes: int, block: int, imatrix: np.ndarray | None = None) -> np.ndarray:
    """llama.cpp's bytes for float32 w [rows, cols] quantized to type ggml_id (imatrix: per-column importance)."""
    lib = libggml()
    w = np.ascontiguousarray(w, dtype=np.float32)
    rows, cols = w.shape
    out = np.zeros(rows * cols // block * block_bytes, dtype=np.uint8)
    imat = None if imatrix is None else np.ascontiguousarray(imatrix, dtype=np.float32)
    n = lib.ggml_quantize_chunk(ggml_id, w.ctypes.data, out.ctypes.data, 0, rows, cols,
                                None if imat is None else imat.ctypes.data)
    assert n == out.size
    return out.reshape(rows, -1)
