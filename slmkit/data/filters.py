"""Data-quality filtering: exact and near-duplicate removal, Gopher quality heuristics and a
reference-model perplexity filter, with a report of what each rule removed.

Rules run cheapest first (heuristics, exact dedup, MinHash LSH near-dup, perplexity); a
document is counted under the first rule that removes it. The heuristics and thresholds follow
the Gopher paper (Rae et al. 2021, appendix A.1.1).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator

from slmkit.data.records import read_records, read_text
from slmkit.errors import SlmError
from slmkit.outputs import atomic_file

BULLETS = ("•", "*", "-", "‣", "◦", "●")
TOP_NGRAM_MAX = {2: 0.20, 3: 0.18, 4: 0.16}  # max char share of the most frequent n-gram
DUP_NGRAM_MAX = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}  # max char share in repeated n-grams


class FilterOptions(BaseModel):
    """What `slm data filter` removes; defaults are the Gopher paper's thresholds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text_field: str = Field("text", description="field of a JSON/JSONL record holding its text")
    dedup: bool = Field(True, description="exact dedup of normalized text")
    near_dedup: bool = Field(True, description="MinHash LSH near-duplicate removal")
    near_threshold: float = Field(0.8, gt=0, le=1, description="estimated Jaccard similarity of word shingles "
                                  "counted as a near duplicate")
    num_perm: PositiveInt = Field(128, description="MinHash permutations")
    shingle: PositiveInt = Field(5, description="words per shingle")
    heuristics: bool = Field(True, description="Gopher quality rules")
    min_words: NonNegativeInt = Field(50, description="fewest words a document may have")
    max_words: PositiveInt = Field(100_000, description="most words a document may have")
    min_mean_word_length: float = Field(3.0, ge=0, description="shortest mean word length")
    max_mean_word_length: float = Field(10.0, gt=0, description="longest mean word length")
    max_symbol_ratio: float = Field(0.1, ge=0, description="most '#' and ellipses per word")
    min_alpha_words: float = Field(0.8, ge=0, le=1, description="least share of words with a letter")
    max_bullet_lines: float = Field(0.9, ge=0, le=1, description="most share of lines starting with a bullet")
    max_ellipsis_lines: float = Field(0.3, ge=0, le=1, description="most share of lines ending with an ellipsis")
    max_duplicate_lines: float = Field(0.3, ge=0, le=1, description="most share of repeated lines")
    max_duplicate_line_chars: float = Field(0.2, ge=0, le=1, description="most share of characters in repeated lines")
    ppl_model: Optional[str] = Field(None, description="reference model for the perplexity filter")
    max_perplexity: Optional[float] = Field(None, gt=0, description="drop documents above this perplexity (with ppl_model)")
    ppl_tokens: PositiveInt = Field(512, description="tokens of each document the perplexity filter scores")
    seed: int = Field(1, description="MinHash seed")

    @model_validator(mode="after")
    def _consistent(self):
        if self.min_words > self.max_words:
            raise ValueError(f"min_words {self.min_words} is above max_words {self.max_words}")
        if self.min_mean_word_length > self.max_mean_word_length:
            raise ValueError("min_mean_word_length is above max_mean_word_length")
        if (self.ppl_model is None) != (self.max_perplexity is None):
            raise ValueError("the perplexity filter needs both ppl_model and max_perplexity")
        return self


@dataclass
class FilterReport:
    total: int = 0
    kept: int = 0
    removed: dict = field(default_factory=dict)  # rule -> count
    examples: dict = field(default_factory=dict)  # rule -> first removed document (truncated)

    def remove(self, rule: str, text: str) -> None:
        self.removed[rule] = self.removed.get(rule, 0) + 1
        self.examples.setdefault(rule, text[:200])

    def to_dict(self) -> dict:
        return asdict(self)


def normalize(text: str) -> str:
    """Case-, accent-, punctuation- and whitespace-insensitive form used for exact dedup."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def text_hash(text: str) -> str:
    return hashlib.sha1(normalize(text).encode()).hexdigest()


def gopher_rule(text: str, cfg: FilterOptions) -> str | None:
    """The first Gopher quality rule `text` fails, or None."""
    words = text.split()
    n = len(words)
    if not cfg.min_words <= n <= cfg.max_words:
        return "gopher_word_count"
    mean_len = sum(len(w) for w in words) / n
    if not cfg.min_mean_word_length <= mean_len <= cfg.max_mean_word_length:
        return "gopher_mean_word_length"
    if (text.count("#") + text.count("...") + text.count("…")) / n > cfg.max_symbol_ratio:
        return "gopher_symbol_ratio"
    if sum(any(c.isalpha() for c in w) for w in words) / n < cfg.min_alpha_words:
        return "gopher_alpha_words"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines:
        if sum(line.startswith(BULLETS) for line in lines) / len(lines) > cfg.max_bullet_lines:
            return "gopher_bullet_lines"
        if sum(line.endswith(("...", "…")) for line in lines) / len(lines) > cfg.max_ellipsis_lines:
            return "gopher_ellipsis_lines"
        counts = Counter(lines)
        repeated = [line for line in lines if counts[line] > 1]
        if len(repeated) / len(lines) > cfg.max_duplicate_lines:
            return "gopher_duplicate_lines"
        if sum(len(x) for x in repeated) / max(1, sum(len(x) for x in lines)) > cfg.max_duplicate_line_chars:
            return "gopher_duplicate_lines"
    total_chars = sum(len(w) for w in words)
    for k, limit in TOP_NGRAM_MAX.items():
        grams = Counter(tuple(words[i : i + k]) for i in range(n - k + 1))
        if grams:
            gram, count = grams.most_common(1)[0]
            if count > 1 and count * sum(len(w) for w in gram) / total_chars > limit:
                return "gopher_top_ngram"
    for k, limit in DUP_NGRAM_MAX.items():
        seen: dict = {}
        covered = [False] * n
        for i in range(n - k + 1):
            gram = tuple(words[i : i + k])
            if gram in seen:
                for j in list(range(seen[gram], seen[gram] + k)) + list(range(i, i + k)):
                    covered[j] = True
            else:
                seen[gram] = i
        if sum(len(w) for w, c in zip(words, covered) if c) / total_chars > limit:
            return "gopher_duplicate_ngrams"
    return None


def shingles(text: str, k: int) -> set[bytes]:
    words = normalize(text).split()
    return {" ".join(words[i : i + k]).encode() for i in range(max(1, len(words) - k + 1))}


def near_duplicates(texts: list[str], threshold: float, num_perm: int, k: int, seed: int = 1) -> list[bool]:
    """True for each document whose MinHash matches an earlier kept one in the LSH index."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    flags = []
    for i, text in enumerate(texts):
        m = MinHash(num_perm=num_perm, seed=seed)
        m.update_batch(list(shingles(text, k)))
        duplicate = bool(lsh.query(m))
        if not duplicate:
            lsh.insert(str(i), m)
        flags.append(duplicate)
    return flags


def document_perplexities(texts: list[str], model_spec: str, max_tokens: int, show_progress: bool = True) -> list[float]:
    """Per-document perplexity under a reference model (first `max_tokens` tokens)."""
    import math

    import torch

    from slmkit.models.loading import load
    from slmkit.progress import progress_bar

    model, tokenizer = load(model_spec)
    out = []
    with torch.no_grad(), progress_bar("perplexity filter", total=len(texts), enabled=show_progress) as advance:
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"][:, :max_tokens]
            out.append(math.exp(model(ids, labels=ids).loss.item()) if ids.size(1) > 1 else float("inf"))
            advance()
    return out


def filter_documents(texts: list[str], cfg: FilterOptions, perplexities: Callable | None = None,
                     show_progress: bool = True) -> tuple[list[bool], FilterReport]:
    """Which documents to keep, and the per-rule report."""
    report = FilterReport(total=len(texts))
    keep = [True] * len(texts)

    def drop(i: int, rule: str) -> None:
        keep[i] = False
        report.remove(rule, texts[i])

    if cfg.heuristics:
        for i, text in enumerate(texts):
            rule = gopher_rule(text, cfg)
            if rule:
                drop(i, rule)
    if cfg.dedup:
        seen = set()
        for i, text in enumerate(texts):
            if keep[i]:
                h = text_hash(text)
                if h in seen:
                    drop(i, "exact_duplicate")
                seen.add(h)
    if cfg.near_dedup:
        alive = [i for i in range(len(texts)) if keep[i]]
        flags = near_duplicates([texts[i] for i in alive], cfg.near_threshold, cfg.num_perm, cfg.shingle, cfg.seed)
        for i, flag in zip(alive, flags):
            if flag:
                drop(i, "near_duplicate")
    if cfg.ppl_model and cfg.max_perplexity:
        alive = [i for i in range(len(texts)) if keep[i]]
        scorer = perplexities or (lambda docs: document_perplexities(docs, cfg.ppl_model, cfg.ppl_tokens, show_progress))
        for i, ppl in zip(alive, scorer([texts[i] for i in alive])):
            if ppl > cfg.max_perplexity:
                drop(i, "perplexity")
    report.kept = sum(keep)
    return keep, report


def records_and_texts(path: Path, text_field: str = "text") -> tuple[list, list[str]]:
    """(records, texts): JSONL/JSON records with a text field, or a text file of blank-line-separated documents."""
    if path.suffix in (".jsonl", ".json"):
        records = read_records(path)
        texts = []
        for r in records:
            text = r if isinstance(r, str) else (r.get(text_field) if isinstance(r, dict) else None)
            if not isinstance(text, str):
                raise SlmError(f"{path}: a record has no text field '{text_field}' (use --text-field)")
            texts.append(text)
        return records, texts
    raw = read_text(path)
    docs = [d.strip("\n") for d in re.split(r"\n\s*\n", raw) if d.strip()]
    return docs, docs


def records_text(suffix: str, records: list) -> str:
    """Records in the layout their file's suffix names: JSONL, a JSON array, or blank-line separated text."""
    if suffix == ".jsonl":
        return "".join(json.dumps(r if not isinstance(r, str) else {"text": r}, ensure_ascii=False) + "\n" for r in records)
    if suffix == ".json":
        return json.dumps(records, ensure_ascii=False, indent=1)
    return "\n\n".join(r if isinstance(r, str) else r.get("text", "") for r in records) + "\n"


def filter_file(source: str | Path, out: str | Path, cfg: FilterOptions, show_progress: bool = True,
                overwrite: bool = False) -> FilterReport:
    """Filter a data file into `out` (same record format) and write `out`.report.json beside it, each atomically."""
    source, out = Path(source), Path(out)
    if out.resolve() == source.resolve():
        raise SlmError("--out must differ from the input file")
    records, texts = records_and_texts(source, cfg.text_field)
    keep, report = filter_documents(texts, cfg, show_progress=show_progress)
    summary = {"input": str(source), "config": cfg.model_dump(), **report.to_dict()}
    with atomic_file(out, overwrite) as tmp:
        tmp.write_text(records_text(out.suffix, [r for r, k in zip(records, keep) if k]))
    with atomic_file(f"{out}.report.json", overwrite) as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    return report
