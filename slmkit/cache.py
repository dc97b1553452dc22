"""Where slmkit keeps what it computes once and reuses: $SLMKIT_CACHE, else ~/.cache/slmkit."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """A folder under the cache root (not created here)."""
    return Path(os.environ.get("SLMKIT_CACHE", Path.home() / ".cache" / "slmkit")).joinpath(*parts)
