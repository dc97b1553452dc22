"""Checks that run before any work, torch-free and in milliseconds: option values against the
model's limits (read from its config or GGUF header, never its weights) and input files
(output locations: `slmkit.outputs.check_target`). Each failure is one line naming the option or
file and what is allowed.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from slmkit.errors import SlmError
from slmkit.models.source import resolve_model

DTYPE_NAMES = ("float32", "bfloat16", "float16")
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


def context_length(spec: str) -> int | None:
    """The longest sequence a model takes, from its config.json or GGUF header; None when unknown (a hub id)."""
    source = resolve_model(spec)
    if source.kind == "folder":
        try:
            config = json.loads((Path(source.ref) / "config.json").read_text())
        except (OSError, ValueError) as err:
            raise SlmError(f"{source.ref}/config.json: cannot read ({err})") from None
        for section in (config, config.get("text_config") or {}):
            for key in CONTEXT_KEYS:
                if isinstance(section.get(key), int):
                    return section[key]
        return None
    if source.kind in ("gguf", "embedded"):
        from slmkit.models.embedded import EMBEDDED

        path = EMBEDDED[source.ref].path() if source.kind == "embedded" else Path(source.ref)
        return gguf_context_length(path)
    return None


GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
GGUF_STRING, GGUF_ARRAY = 8, 9


def gguf_context_length(path: Path) -> int | None:
    """`<arch>.context_length` from a GGUF file's metadata, reading only the header up to that key."""
    with open(path, "rb") as f:
        def read(fmt: str):
            size = struct.calcsize("<" + fmt)
            return struct.unpack("<" + fmt, f.read(size))[0]

        def skip(kind: int) -> None:
            if kind == GGUF_STRING:
                f.seek(read("Q"), 1)
            elif kind == GGUF_ARRAY:
                inner, count = read("I"), read("Q")
                if inner in GGUF_SCALARS:
                    f.seek(count * struct.calcsize(GGUF_SCALARS[inner]), 1)
                else:
                    for _ in range(count):
                        skip(inner)
            else:
                f.seek(struct.calcsize(GGUF_SCALARS[kind]), 1)

        if f.read(4) != b"GGUF":
            raise SlmError(f"{path}: not a GGUF file")
        _version, _tensors, pairs = read("I"), read("Q"), read("Q")
        for _ in range(pairs):
            key = f.read(read("Q")).decode("utf-8", "replace")
            kind = read("I")
            if key.endswith(".context_length") and kind in GGUF_SCALARS:
                return int(read(GGUF_SCALARS[kind]))
            skip(kind)
    return None


def check_model(option: str, spec: str) -> str:
    """A model spec that names something (as `resolve_model`), the error naming the option."""
    try:
        resolve_model(spec)
    except SlmError as err:
        raise SlmError(f"{option}: {err}") from None
    return spec


def check_tokens(option: str, tokens: int | None, spec: str, what: str = "tokens") -> None:
    """At least one token, and no more than the model's context length."""
    if tokens is None:
        return
    if tokens < 1:
        raise SlmError(f"{option}: {tokens} {what} is not allowed (must be at least 1)")
    limit = context_length(spec)
    if limit is not None and tokens > limit:
        raise SlmError(f"{option}: {tokens} {what} exceed the context length of {spec} ({limit} tokens)")
