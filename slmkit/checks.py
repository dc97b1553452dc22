"""Checks that run before any work, torch-free and in milliseconds: option values against the
model's limits (read from its config or GGUF header, never its weights) and input files
(output locations: `slmkit.outputs.check_target`). Each failure is one line naming the option or
file and what is allowed.
"""

from __future__ import annotations

import json
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


def gguf_context_length(path: Path) -> int | None:
    """`<arch>.context_length` from a GGUF file's metadata (header only)."""
    from slmkit.layouts.gguf_header import read_header

    metadata = read_header(path).metadata
    value = metadata.get(f"{metadata.get('general.architecture')}.context_length")
    return int(value) if isinstance(value, int) else None


def check_model(option: str, spec: str) -> str:
    """A model spec that names something (as `resolve_model`; a GGUF file whole and loadable), the error naming the option."""
    from slmkit.layouts.gguf_header import check_loadable

    try:
        if resolve_model(spec).kind == "gguf":
            check_loadable(Path(spec).expanduser())
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
