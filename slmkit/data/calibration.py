"""Seeded calibration batches: N windows of L tokens from the tokenized, concatenated corpus.

Documents are tokenized one by one and joined with the EOS token, so a corpus of short
documents (C4 snippets, help topics) still yields full-length windows.
"""

from __future__ import annotations

import torch

from slmkit.data.corpus import load_documents
from slmkit.errors import SlmError


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


def calibration_batch(tokenizer, source: str, nsamples: int, seqlen: int, seed: int = 0) -> torch.Tensor:
    """`nsamples` windows of `seqlen` tokens at seeded random offsets: a LongTensor [nsamples, seqlen]."""
    stream = token_stream(tokenizer, source)
    if len(stream) < seqlen + 1:
        raise SlmError(f"calibration data {source} has {len(stream)} tokens, fewer than one window of {seqlen}")
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(stream) - seqlen, (nsamples,), generator=generator)
    return torch.stack([stream[s : s + seqlen] for s in starts.tolist()])
