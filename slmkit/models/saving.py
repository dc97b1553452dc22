"""Saving a model as a standard folder: weights + config + tokenizer + `slmkit.json` manifest.

Every output is written into a temporary sibling folder and renamed into place only when
complete, so a failed run never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from slmkit.errors import SlmError

MANIFEST = "slmkit.json"


def save_hf(model, tokenizer, folder: Path) -> None:
    """Plain Hugging Face layout: loads with `AutoModelForCausalLM.from_pretrained`."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def check_output_dir(out: str | Path) -> Path:
    """An output path we may (re)place: absent, empty, or an earlier slmkit output."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file())):
        raise SlmError(f"output {out} exists and is not an slmkit output folder; choose another --out")
    return out


@contextmanager
def atomic_output_dir(out: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `out`; on success it replaces `out`, on failure it is removed."""
    out = check_output_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def versions() -> dict[str, str]:
    import torch
    import transformers

    import slmkit

    return {
        "slmkit": slmkit.__version__,
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


def save(model, tokenizer, out: str | Path, format: str = "hf", manifest: dict | None = None) -> Path:
    """Save a model atomically in a named format, with its manifest."""
    from slmkit.formats import SAVE_FORMATS, saver

    if format not in SAVE_FORMATS:
        raise SlmError(f"unknown format '{format}' (valid: {', '.join(SAVE_FORMATS)})")
    with atomic_output_dir(out) as tmp:
        saver(format)(model, tokenizer, tmp)
        write_manifest(tmp, {"format": format, **(manifest or {})})
    return Path(out)
