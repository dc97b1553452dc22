"""Text sources: plain files, JSON/JSONL with a text field, hub datasets, and the offline `pydoc` corpus.

A source is a string: `pydoc`, a file path, or `hf:NAME[:CONFIG][@SPLIT]` for a Hugging Face
dataset (online only). `check_source` validates one without reading it (torch-free).
"""

from __future__ import annotations

import re
from pathlib import Path

from slmkit.data.records import check_text_file, read_records, read_text
from slmkit.errors import SlmError

BUILTIN = ("pydoc",)
HUB_PREFIX = "hf:"
WIKITEXT_RAW = re.compile(r"^wiki\.(test|valid|train)\.raw$")


def check_source(source: str, option: str | None = None) -> None:
    """Fail with one line (naming `option` if given) if a source can't be read: a missing, binary or
    malformed file, judged from its head only (milliseconds)."""
    if source in BUILTIN or source.startswith(HUB_PREFIX):
        return
    prefix = f"{option}: " if option else ""
    if not Path(source).expanduser().is_file():
        raise SlmError(f"{prefix}data file not found: {source} (or use 'pydoc', or hf:NAME for a hub dataset)")
    try:
        check_text_file(source)
    except SlmError as err:
        raise SlmError(f"{prefix}{err}") from None


def load_documents(source: str, text_field: str = "text") -> list[str]:
    """The documents of a source, in order."""
    check_source(source)
    if source == "pydoc":
        return pydoc_documents()
    if source.startswith(HUB_PREFIX):
        return hub_documents(source[len(HUB_PREFIX):], text_field)
    path = Path(source).expanduser()
    if path.suffix in (".jsonl", ".json"):
        return [record_text(r, text_field, path) for r in read_records(path)]
    text = read_text(path)
    if WIKITEXT_RAW.match(path.name):
        return wikitext_rows(text)
    return [text]


def corpus_text(source: str, text_field: str = "text") -> str:
    """One string for a whole source, joined as the perplexity protocol of GPTQ/SparseGPT/Wanda joins
    WikiText-2: documents separated by a blank line ("\\n\\n".join)."""
    return "\n\n".join(load_documents(source, text_field))


def wikitext_rows(text: str) -> list[str]:
    """The rows of the HF `wikitext-*-raw-v1` split from a raw file: one row per line, a blank line
    (a single space) becomes "", every other row keeps its trailing newline."""
    return ["" if line.strip() == "" else line for line in text.splitlines(keepends=True)]


def record_text(record, field: str, path: Path) -> str:
    if isinstance(record, str):
        return record
    if isinstance(record, dict) and isinstance(record.get(field), str):
        return record[field]
    keys = ", ".join(record) if isinstance(record, dict) else type(record).__name__
    raise SlmError(f"{path}: record has no text field '{field}' (fields: {keys})")


def pydoc_documents() -> list[str]:
    """CPython's own help topics (English prose about Python), present in every install."""
    from pydoc_data.topics import topics

    return [topics[k].strip() for k in sorted(topics)]


def hub_documents(spec: str, text_field: str) -> list[str]:
    """`NAME[:CONFIG][@SPLIT]` from the Hugging Face hub through `datasets`."""
    name, _, split = spec.partition("@")
    name, _, config = name.partition(":")
    try:
        from datasets import load_dataset

        dataset = load_dataset(name, config or None, split=split or "train")
    except Exception as err:  # offline, unknown name, missing split
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SlmError(f"could not load hub dataset {spec}: {msg}") from err
    if text_field not in dataset.column_names:
        raise SlmError(f"hub dataset {spec} has no column '{text_field}' (columns: {', '.join(dataset.column_names)})")
    return list(dataset[text_field])
