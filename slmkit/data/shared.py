"""Where the public evaluation data lives: $SLMKIT_SHARED_DATA, else ../shared/data beside the checkout.

Tests, benchmarks and the trust evaluations read the data from there and never copy it in.
"""

from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]


def shared_data_dir(override: str | Path | None = None) -> Path:
    """The data folder: `override` if given, else $SLMKIT_SHARED_DATA, else ../shared/data beside the checkout."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("SLMKIT_SHARED_DATA"):
        return Path(os.environ["SLMKIT_SHARED_DATA"]).expanduser()
    return CHECKOUT.parent / "shared" / "data"
