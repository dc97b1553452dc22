"""A span tagger for names, organisations, addresses and places on the SLM's frozen hidden states.

The SLM reads the text once; a small bidirectional LSTM over one of its middle layers predicts
BIO tags per token (the LSTM gives the causal model's features right-hand context), and tags
become character spans of whole words through the tokenizer's offsets. Trained on presidio-style
records ({"full_text", "spans": [{"entity_type", "start_position", "end_position"}], "template_id"}).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from slmkit.collab.privacy import Span
from slmkit.errors import SlmError
from slmkit.outputs import atomic_file

LEARNED_TYPES = ("PERSON", "ORGANIZATION", "STREET_ADDRESS", "GPE")
TAGS = ["O"] + [f"{p}-{t}" for t in LEARNED_TYPES for p in "BI"]
DEFAULT_LOW, DEFAULT_HIGH = 0.15, 0.9


def split_by_template(records: list[dict], test_fraction: float = 0.2, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Hold out whole templates, so a sentence pattern seen in training never appears in the test split."""
    templates = sorted({r["template_id"] for r in records})
    random.Random(seed).shuffle(templates)
    test_ids = set(templates[: max(1, round(len(templates) * test_fraction))])
    return [r for r in records if r["template_id"] not in test_ids], [r for r in records if r["template_id"] in test_ids]


@torch.inference_mode()
def token_features(model, tokenizer, text: str, layer: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """[T, hidden] features from one hidden layer and each token's character offsets."""
    enc = tokenizer(text, return_offsets_mapping=True)
    ids = torch.tensor([enc["input_ids"]])
    hidden = model(ids, output_hidden_states=True, logits_to_keep=1).hidden_states[layer][0].float()
    return hidden, [tuple(o) for o in enc["offset_mapping"]]


def bio_tags(offsets: list[tuple[int, int]], spans: list[dict]) -> list[int]:
    tags = [0] * len(offsets)
    for span in spans:
        if span["entity_type"] not in LEARNED_TYPES:
            continue
        inside = [i for i, (a, b) in enumerate(offsets) if a < span["end_position"] and span["start_position"] < b and b > a]
        for n, i in enumerate(inside):
            tags[i] = TAGS.index(f"{'B' if n == 0 else 'I'}-{span['entity_type']}")
    return tags


def words_of(text: str, offsets: list[tuple[int, int]]) -> list[list[int]]:
    """Token indices grouped into words: a token continues a word when it touches it letter to letter."""
    words: list[list[int]] = []
    for i, (a, b) in enumerate(offsets):
        if b <= a:  # a special token with no text
            continue
        if words and offsets[words[-1][-1]][1] == a and 0 < a < len(text) and text[a - 1].isalnum() and text[a].isalnum():
            words[-1].append(i)
        else:
            words.append([i])
    return words


@dataclass(frozen=True)
class WordScore:
    """One word as the tagger sees it: its most likely entity type, the probability that it is any entity
    (1 - P(O), the largest over its tokens), and whether it more likely begins a span than continues one."""

    start: int
    end: int
    label: str
    p: float
    begins: bool


def word_scores(text: str, offsets: list[tuple[int, int]], probs: torch.Tensor) -> list[WordScore]:
    """Per-word scores from per-token tag probabilities ([T, len(TAGS)])."""
    out = []
    for word in words_of(text, offsets):
        start, end = offsets[word[0]][0], offsets[word[-1]][1]
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end <= start:
            continue
        p = probs[word]
        kind = int((p[:, 1::2] + p[:, 2::2]).sum(0).argmax())  # B- and I- of each type
        first = p[0]
        out.append(WordScore(start, end, LEARNED_TYPES[kind], float((1 - p[:, 0]).max()),
                             bool(first[1 + 2 * kind] >= first[2 + 2 * kind])))
    return out


def spans_from_words(words: list[WordScore], threshold: float) -> list[Span]:
    """Words at or above `threshold` as spans: a word joins the span before it when it has the same type, follows
    it directly and does not begin a new span."""
    spans: list[list] = []
    previous = None
    for w in words:
        if w.p < threshold:
            previous = None
            continue
        if previous is not None and spans[-1][2] == w.label and not w.begins:
            spans[-1][1] = w.end
        else:
            spans.append([w.start, w.end, w.label])
        previous = w
    return [Span(a, b, kind) for a, b, kind in spans]


class TaggerHead(nn.Module):
    def __init__(self, hidden: int, width: int = 128):
        super().__init__()
        self.lstm = nn.LSTM(hidden, width, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * width, len(TAGS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.lstm(x)[0])


class SpanTagger:
    """The frozen SLM + a trained head; the privacy proxy calls `words` and `spans_of`.

    A word whose entity probability is at least `low` is redacted; `high` is the probability above which the
    tagger is sure. In between it is guessing (towards redaction), which `--privacy-strict` refuses instead."""

    def __init__(self, model, tokenizer, head: TaggerHead, layer: int, low: float = DEFAULT_LOW,
                 high: float = DEFAULT_HIGH):
        self.model, self.tokenizer, self.head, self.layer = model, tokenizer, head.eval(), layer
        self.low, self.high = low, high

    @torch.inference_mode()
    def words(self, text: str) -> list[WordScore]:
        if not text.strip():
            return []
        features, offsets = token_features(self.model, self.tokenizer, text, self.layer)
        return word_scores(text, offsets, torch.softmax(self.head(features[None])[0], -1))

    def spans_of(self, text: str, words: list[WordScore]) -> list[Span]:
        return spans_from_words(words, self.low)

    def spans(self, text: str) -> list[Span]:
        return self.spans_of(text, self.words(text))

    def unsure(self, word: WordScore) -> bool:
        return self.low <= word.p < self.high

    def save(self, path: str | Path, overwrite: bool = False) -> None:
        with atomic_file(path, overwrite) as tmp:
            torch.save({"layer": self.layer, "hidden": self.head.lstm.input_size, "width": self.head.lstm.hidden_size,
                        "low": self.low, "high": self.high, "state": self.head.state_dict()}, tmp)

    @classmethod
    def load(cls, path: str | Path, model, tokenizer) -> "SpanTagger":
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise SlmError(f"PII tagger file {path} not found (make one with `slm route pii-train`)") from None
        except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one line
            raise SlmError(f"PII tagger file {path} could not be read: {err}") from None
        if blob.get("hidden") != model.config.hidden_size:
            raise SlmError(f"PII tagger {path} was trained on a model with hidden size {blob.get('hidden')}, "
                           f"not {model.config.hidden_size}")
        head = TaggerHead(blob["hidden"], blob["width"])
        head.load_state_dict(blob["state"])
        return cls(model, tokenizer, head, blob["layer"], blob.get("low", DEFAULT_LOW), blob.get("high", DEFAULT_HIGH))


def train_tagger(model, tokenizer, records: list[dict], epochs: int = 12, layer: int | None = None, lr: float = 3e-3,
                 batch_size: int = 16, width: int = 128, entity_weight: float = 3.0, seed: int = 0,
                 progress=None) -> SpanTagger:
    """Fit the head on records' features (the SLM is run once per record and stays frozen).

    Entity tags weigh `entity_weight` times an O tag in the loss: most tokens are O, and a missed name leaks."""
    torch.manual_seed(seed)
    layer = layer if layer is not None else (model.config.num_hidden_layers * 2) // 3
    data = []
    for r in records:
        feats, offsets = token_features(model, tokenizer, r["full_text"], layer)
        data.append((feats, torch.tensor(bio_tags(offsets, r["spans"]))))
        if progress:
            progress()
    head = TaggerHead(model.config.hidden_size, width)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr)
    weight = torch.full((len(TAGS),), entity_weight)
    weight[0] = 1.0
    rng = random.Random(seed)
    for _ in range(epochs):
        rng.shuffle(data)
        for i in range(0, len(data), batch_size):
            batch = data[i:i + batch_size]
            x = nn.utils.rnn.pad_sequence([f for f, _ in batch], batch_first=True)
            y = nn.utils.rnn.pad_sequence([t for _, t in batch], batch_first=True, padding_value=-100)
            loss = nn.functional.cross_entropy(head(x).flatten(0, 1), y.flatten(), weight=weight, ignore_index=-100)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return SpanTagger(model, tokenizer, head, layer)


BUILTIN = "builtin"
BUILTIN_RECORDS = 2000  # synthetic sentences the built-in tagger learns from


def model_fingerprint(model) -> str:
    """A short hash of a model's config and a strided sample of every weight: a different model gets another key."""
    digest = hashlib.sha256(model.config.to_json_string().encode())
    with torch.no_grad():
        for name, param in model.named_parameters():
            flat = param.detach().flatten()
            digest.update(name.encode() + flat[:: max(1, flat.numel() // 64)][:64].float().numpy().tobytes())
    return digest.hexdigest()[:16]


def builtin_tagger(model, tokenizer, records: int | None = None) -> SpanTagger:
    """A tagger trained on slmkit's own synthetic sentences (slmkit.collab.pii_synth), no user data: trained once
    per model on first use and cached under $SLMKIT_CACHE/pii."""
    from slmkit.cache import cache_dir
    from slmkit.collab.pii_synth import SYNTH_VERSION, synthetic_records
    from slmkit.progress import progress_bar

    count = records or BUILTIN_RECORDS
    path = cache_dir("pii") / f"builtin-v{SYNTH_VERSION}-{count}-{model_fingerprint(model)}.pt"
    if path.is_file():
        return SpanTagger.load(path, model, tokenizer)
    data = synthetic_records(count)
    with progress_bar("training the built-in PII tagger (once per model)", total=len(data)) as advance:
        tagger = train_tagger(model, tokenizer, data, progress=advance)
    tagger.save(path, overwrite=True)  # a cache entry: whatever stood at its name is replaced
    return tagger


def evaluate_detector(detect, records: list[dict], aliases: dict[str, str] | None = None) -> dict[str, dict]:
    """Per-type precision/recall: a gold span is found when a predicted span of the same type overlaps it."""
    aliases = aliases or {"DOMAIN_NAME": "URL"}
    counts: dict[str, dict[str, int]] = {}
    for r in records:
        text = r["full_text"]
        gold = [(s["start_position"], s["end_position"], aliases.get(s["entity_type"], s["entity_type"])) for s in r["spans"]]
        pred = detect(text)
        for a, b, kind in gold:
            c = counts.setdefault(kind, {"gold": 0, "found": 0, "pred": 0, "correct": 0})
            c["gold"] += 1
            c["found"] += any(p.label == kind and p.start < b and a < p.end for p in pred)
        for p in pred:
            c = counts.setdefault(p.label, {"gold": 0, "found": 0, "pred": 0, "correct": 0})
            c["pred"] += 1
            c["correct"] += any(kind == p.label and p.start < b and a < p.end for a, b, kind in gold)
    return {kind: {"support": c["gold"], "recall": c["found"] / c["gold"] if c["gold"] else float("nan"),
                   "precision": c["correct"] / c["pred"] if c["pred"] else float("nan")} for kind, c in sorted(counts.items())}
