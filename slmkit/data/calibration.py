"""Seeded calibration batches: N windows of L tokens from the tokenized, concatenated corpus.

Documents are tokenized one by one and joined with the EOS token, so a corpus of short
documents (C4 snippets, help topics) still yields full-length windows. The model-written
sources (`mixed`, the default, and `generated`; see slmkit/data/generated.py) need the model too.
"""

from __future__ import annotations

import torch

from slmkit.data.corpus import load_documents
from slmkit.data.generated import GENERATED_SHARE, MODEL_SOURCES, generated_sequences
from slmkit.errors import SlmError

DEFAULT_SOURCE = "mixed"


def token_stream(tokenizer, source: str, max_tokens: int | None = None) -> torch.Tensor:
    """All documents of a source tokenized and concatenated (EOS between documents)."""
    sep = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    ids: list[int] = []
    for doc in load_documents(source):
        if not doc.strip():
            continue
        ids.extend(tokenizer(doc, add_special_tokens=False)["input_ids"])
        ids.extend(sep)
        if max_tokens is not None and len(ids) >= max_tokens:
            break
    return torch.tensor(ids, dtype=torch.long)


def corpus_windows(tokenizer, source: str, nsamples: int, seqlen: int, seed: int = 0) -> torch.Tensor:
    """`nsamples` windows of `seqlen` tokens of a text source at seeded random offsets: [nsamples, seqlen]."""
    stream = token_stream(tokenizer, source)
    if len(stream) < seqlen + 1:
        raise SlmError(f"calibration data {source} has {len(stream)} tokens, fewer than one window of {seqlen}")
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(stream) - seqlen, (nsamples,), generator=generator)
    return torch.stack([stream[s : s + seqlen] for s in starts.tolist()])


def calibration_batch(tokenizer, source: str, nsamples: int, seqlen: int, seed: int = 0, model=None) -> torch.Tensor:
    """The calibration batch [nsamples, seqlen] of a source; `mixed` and `generated` sample the model's own text,
    `mixed` interleaving it with pydoc windows."""
    if source not in MODEL_SOURCES:
        return corpus_windows(tokenizer, source, nsamples, seqlen, seed)
    if model is None:
        raise SlmError(f"calibration data {source} is written by the model, and no model was given")
    written = max(1, round(nsamples * GENERATED_SHARE[source]))
    own = generated_sequences(model, tokenizer, written, seqlen, seed)
    if written == nsamples:
        return own
    corpus = corpus_windows(tokenizer, "pydoc", nsamples - written, seqlen, seed)
    order = torch.randperm(nsamples, generator=torch.Generator().manual_seed(seed))
    return torch.cat([own, corpus])[order]
