"""Resolve a model spec (embedded name, folder, .gguf file or hub id) without loading anything.

Torch-free, so recipes can be validated in well under a second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from slmkit.errors import SlmError
from slmkit.models.embedded import EMBEDDED

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSource:
    kind: Literal["embedded", "folder", "gguf", "hub"]
    ref: str  # embedded name, absolute path, or hub id

    def __str__(self) -> str:
        return self.ref


def resolve_model(spec: str) -> ModelSource:
    """Decide what kind of model a spec names; fail with one line if it names nothing."""
    if spec in EMBEDDED:
        return ModelSource("embedded", spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise SlmError(f"model folder {spec} has no config.json: not a Hugging Face model folder")
        return ModelSource("folder", str(path.resolve()))
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise SlmError(f"model file not found: {spec}")
        return ModelSource("gguf", str(path.resolve()))
    if path.exists():
        raise SlmError(f"model {spec} is neither a model folder nor a .gguf file")
    if HUB_ID.match(spec) and not spec.startswith((".", "/", "~")):
        return ModelSource("hub", spec)
    choices = ", ".join(EMBEDDED)
    raise SlmError(
        f"model not found: {spec} (expected an embedded name [{choices}], a model folder, "
        "a .gguf file or a hub id like org/name)"
    )


def gguf_file(spec: str) -> tuple[Path, ModelSource]:
    """(GGUF file, source) of a spec naming one (an embedded model or a .gguf path), checked to be a
    file llama.cpp can load; a one-line error otherwise."""
    from slmkit.layouts.gguf_header import check_loadable

    source = resolve_model(spec)
    if source.kind not in ("embedded", "gguf"):
        raise SlmError(f"--backend llama.cpp runs a GGUF file (an embedded name or a .gguf path), not {spec!r}; "
                       "export one with `slm export MODEL --format gguf`")
    path = Path(EMBEDDED[source.ref].path()) if source.kind == "embedded" else Path(source.ref)
    check_loadable(path)
    return path, source
