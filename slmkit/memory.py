"""Returning freed heap memory to the operating system."""

from __future__ import annotations

import ctypes
import os

_MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None) if os.name == "posix" else None  # glibc only


def return_freed_memory() -> None:
    """Hand freed heap pages back to the OS: glibc keeps them for reuse, so a process that frees
    large tensors in a loop (layer offload, a server between bursts) would otherwise keep its peak."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
