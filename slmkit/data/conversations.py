"""Instruction data as chat conversations (torch-free): Alpaca-style records (instruction, input,
output) or chat records with a `messages` list of {role, content}, from JSON or JSONL files."""

from __future__ import annotations

from pathlib import Path

from slmkit.data.records import check_text_file, read_records
from slmkit.errors import SlmError

FULL_CHECK_BYTES = 16 << 20  # files up to this size are parsed whole when checked before work


def load_conversations(path: str | Path) -> list[list[dict]]:
    """Each record as a list of chat messages."""
    path = Path(path)
    return [as_messages(r, path) for r in read_records(path)]


def as_messages(record, path) -> list[dict]:
    if isinstance(record, dict) and isinstance(record.get("messages"), list):
        return [{"role": m["role"], "content": m["content"]} for m in record["messages"]]
    if isinstance(record, dict) and "instruction" in record and "output" in record:
        prompt = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]
    keys = ", ".join(record) if isinstance(record, dict) else type(record).__name__
    raise SlmError(f"{path}: each record needs 'messages' or 'instruction'+'output' (got: {keys})")


def check_conversations(path: str | Path) -> Path:
    """Fail fast on an instruction file that is missing, binary, malformed or empty (parsed whole
    when under 16 MiB, else judged from its head)."""
    path = check_text_file(path, "data file")
    if path.stat().st_size <= FULL_CHECK_BYTES and not load_conversations(path):
        raise SlmError(f"{path}: no records")
    return path
