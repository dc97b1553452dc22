"""Zero-shot tasks from local files (or hub datasets), turned into log-likelihood requests.

Layouts, recognised from the first record's keys:
  {"query", "choices", "gold"}                 multiple choice (llm-foundry files, converted HellaSwag)
  {"context_options", "continuation", "gold"}  partial scoring (WinoGrande style)
  {"goal", "sol1", "sol2"} + NAME-labels.lst   PIQA's original valid.jsonl with its labels file
  {"ctx_a", "ctx_b", "endings", "label"}       HellaSwag's original JSONL
  {"context", "continuation"}                  LAMBADA (the continuation is the last word)
Prompts follow lm-evaluation-harness: the continuation is the choice after a " " delimiter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from slmkit.data import records
from slmkit.errors import SlmError

DELIMITER = " "
LAYOUTS = "query/choices/gold, context_options/continuation/gold, goal/sol1/sol2 (PIQA), ctx_a/ctx_b/endings/label (HellaSwag), context/continuation (LAMBADA)"


@dataclass
class Example:
    requests: list[tuple[str, str]]  # one (context, continuation) per choice
    gold: int
    choices: list[str]  # what acc_norm divides by (the harness's doc_to_choice)


@dataclass
class Task:
    name: str
    kind: str  # "multiple_choice" or "lambada"
    layout: str
    examples: list[Example] = field(default_factory=list)


def multiple_choice(query: str, choices: list[str], gold: int) -> Example:
    return Example([(query, DELIMITER + c) for c in choices], int(gold), list(choices))


def partial_scoring(options: list[str], continuation: str, gold: int) -> Example:
    """Each choice is a context; all share one continuation (acc_norm, as in the harness, divides by the option's length)."""
    return Example([(o, DELIMITER + continuation) for o in options], int(gold), list(options))


def hellaswag_clean(text: str) -> str:
    """The harness's HellaSwag preprocessing."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def hellaswag(doc: dict) -> Example:
    ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    query = hellaswag_clean(doc["activity_label"] + ": " + ctx)
    return multiple_choice(query, [hellaswag_clean(e) for e in doc["endings"]], int(doc["label"]))


def piqa(doc: dict, label: int) -> Example:
    return multiple_choice(f"Question: {doc['goal']}\nAnswer:", [doc["sol1"], doc["sol2"]], label)


def read_records(path: str) -> list[dict]:
    """Records of a JSONL/JSON file, or of a hub dataset `hf:NAME[:CONFIG][@SPLIT]`."""
    if path.startswith("hf:"):
        return hub_records(path[3:])
    return records.read_records(path, what="task file")


def hub_records(spec: str) -> list[dict]:
    try:
        from datasets import load_dataset
    except ImportError:
        raise SlmError("hub tasks need the 'datasets' package (pip install datasets)") from None
    name, _, split = spec.partition("@")
    name, _, config = name.partition(":")
    try:
        return list(load_dataset(name, config or None, split=split or "validation"))
    except Exception as err:  # offline, unknown name, …
        raise SlmError(f"hf:{spec}: cannot load ({type(err).__name__}: {str(err).splitlines()[0]})") from None


def piqa_labels(path: str, records: list[dict]) -> list[int]:
    if all("label" in r for r in records):
        return [int(r["label"]) for r in records]
    file = Path(path)
    labels = file.with_name(file.stem + "-labels.lst")
    if not labels.is_file():
        raise SlmError(f"{path}: PIQA layout needs its labels file {labels.name} beside it")
    values = [int(x) for x in labels.read_text().split()]
    if len(values) != len(records):
        raise SlmError(f"{labels}: {len(values)} labels for {len(records)} records")
    return values


def load_task(name: str, path: str, limit: int | None = None) -> Task:
    """A task from a file (or hf: dataset); `limit` keeps the first N examples."""
    records = read_records(path)
    if not records:
        raise SlmError(f"{path}: no records")
    keys = set(records[0])
    if {"query", "choices", "gold"} <= keys:
        layout, examples = "query/choices/gold", [multiple_choice(r["query"], r["choices"], r["gold"]) for r in records]
    elif {"context_options", "continuation", "gold"} <= keys:
        layout = "partial"
        examples = [partial_scoring(r["context_options"], r["continuation"], r["gold"]) for r in records]
    elif {"goal", "sol1", "sol2"} <= keys:
        layout, labels = "piqa", piqa_labels(path, records)
        examples = [piqa(r, y) for r, y in zip(records, labels)]
    elif {"ctx_a", "ctx_b", "endings", "label"} <= keys:
        layout, examples = "hellaswag", [hellaswag(r) for r in records]
    elif {"context", "continuation"} <= keys:
        task = Task(name, "lambada", "lambada")
        task.examples = [Example([(r["context"], DELIMITER + r["continuation"].strip())], 0, []) for r in records[:limit]]
        return task
    else:
        raise SlmError(f"{path}: unknown task layout with keys {sorted(keys)} (valid: {LAYOUTS})")
    for i, ex in enumerate(examples):
        if not 0 <= ex.gold < len(ex.requests):
            raise SlmError(f"{path}: record {i}: gold {ex.gold} is not a choice index (0..{len(ex.requests) - 1})")
    return Task(name, "multiple_choice", layout, examples[:limit])


def parse_task_specs(spec: str) -> dict[str, str]:
    """'arc_easy=PATH,piqa=PATH' -> {name: path}."""
    tasks = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SlmError(f"--tasks: '{item}' is not NAME=PATH (e.g. arc_easy=data/arc_easy.jsonl)")
        tasks[name.strip()] = path.strip()
    return tasks
