"""Saving a model as an output folder: its layout (slmkit/layouts/) plus the `slmkit.json` manifest.

The folder is written into a temporary sibling and swapped into place only when complete
(slmkit/outputs.py), so a failed or killed run never leaves a half-written model behind, and
an earlier output is replaced only when slmkit wrote it (or `overwrite` is given).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from slmkit.errors import SlmError
from slmkit.failpoints import failpoint
from slmkit.formats import SAVE_FORMATS
from slmkit.outputs import MANIFEST, atomic_folder


def versions() -> dict[str, str]:
    import torch
    import transformers

    from slmkit.version import __version__

    return {
        "slmkit": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
    }


def write_manifest(folder: Path, manifest: dict) -> None:
    manifest = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "versions": versions(), **manifest}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def save(model, tokenizer, out: str | Path, format: str = "hf", manifest: dict | None = None,
         overwrite: bool = False) -> Path:
    """Save a model atomically in a named format, with its manifest."""
    from slmkit import layouts

    if format not in SAVE_FORMATS:
        raise SlmError(f"unknown format '{format}' (valid: {', '.join(SAVE_FORMATS)})")
    with atomic_folder(out, overwrite) as tmp:
        layouts.save(model, tokenizer, tmp, format)
        failpoint("save:layout")
        write_manifest(tmp, {"format": format, **(manifest or {})})
    return Path(out)
