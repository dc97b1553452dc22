"""JSON, JSONL and CSV record files: one reader for every data file, with errors naming the file and line.

A `.json` file holds a JSON array of records (or an object whose "data" is one); any other
suffix is read as JSONL, one JSON value per non-blank line. `check_text_file` looks at the
head of a file only, so commands can refuse a binary or malformed input in milliseconds,
before any model loads.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path

from slmkit.errors import SlmError

SNIFF_BYTES = 1 << 16


def read_text(path: str | Path, what: str = "data file") -> str:
    """A file's UTF-8 text; one-line errors for a missing, unreadable or binary file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SlmError(f"{what} not found: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise SlmError(f"{path}: not UTF-8 text (byte {err.start}); is it a binary file?") from None
    except OSError as err:
        raise SlmError(f"{path}: cannot read ({err.strerror})") from None


def read_records(path: str | Path, what: str = "data file") -> list:
    """The records of a JSON array file or a JSONL file."""
    path = Path(path).expanduser()
    text = read_text(path, what)
    if not text.strip():
        return []
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise SlmError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise SlmError(f"{path}: expected a JSON array of records")
        return data
    return [parse_line(line, path, number) for number, line in enumerate(text.splitlines(), 1) if line.strip()]


def read_csv(path: str | Path, what: str = "data file") -> list[dict]:
    """The rows of a CSV file with a header line, as dicts."""
    return list(csv.DictReader(io.StringIO(read_text(path, what), newline="")))


def parse_line(line: str, path: Path, number: int):
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise SlmError(f"{path}: line {number}: invalid JSON ({err.msg} at column {err.colno})") from None


def check_text_file(path: str | Path, what: str = "data file") -> Path:
    """Fail fast on a file that cannot be what we expect: missing, unreadable, not UTF-8, or (by its suffix)
    not JSON/JSONL. Reads at most the first 64 KiB, so the check costs milliseconds on any file size."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SlmError(f"{what} not found: {path}")
    try:
        with path.open("rb") as f:
            head = f.read(SNIFF_BYTES)
            complete = not f.read(1)
    except OSError as err:
        raise SlmError(f"{path}: cannot read ({err.strerror})") from None
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError as err:
        raise SlmError(f"{path}: not UTF-8 text (byte {err.start}); is it a binary file?") from None
    if "\x00" in text:
        raise SlmError(f"{path}: contains NUL bytes; is it a binary file?")
    if path.suffix == ".json":
        if complete:
            read_records(path, what)  # small enough to parse whole
        elif text.lstrip()[:1] not in ("[", "{"):
            raise SlmError(f"{path}: line 1: invalid JSON (expected an array of records)")
    elif path.suffix == ".jsonl":
        lines = text.splitlines()
        for number, line in enumerate(lines if complete else lines[:-1], 1):
            if line.strip():
                parse_line(line, path, number)
    return path
