"""The public Python API: the same functions the `slm` command uses."""

from __future__ import annotations

from slmkit.models.loading import load
from slmkit.models.saving import save
from slmkit.runner import run

__all__ = ["load", "save", "run"]
