"""Perplexity under the paper protocol of GPTQ, SparseGPT and Wanda.

The whole text is tokenized once, cut into non-overlapping windows of `seqlen` tokens (the
trailing partial window is dropped), and perplexity is exp of the mean token NLL over all
windows, each window predicting its tokens 2..seqlen from the ones before.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from slmkit.data.corpus import corpus_text
from slmkit.errors import SlmError
from slmkit.progress import progress_bar

LOGITS_BUDGET_BYTES = 1 << 29  # batch windows while their fp32 logits fit in 512 MiB


@dataclass
class PerplexityResult:
    perplexity: float
    nll: float  # mean token negative log-likelihood (nats)
    tokens: int  # tokens scored (windows x seqlen)
    windows: int
    seqlen: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def tokenize_corpus(tokenizer, source: str) -> torch.Tensor:
    """The whole corpus tokenized once, as the protocol does (tokenizer's default special tokens)."""
    return tokenizer(corpus_text(source), return_tensors="pt")["input_ids"][0]


def corpus_ids(tokenizer, source: str, seqlen: int, max_windows: int | None, from_end: bool = False) -> torch.Tensor:
    """The protocol's tokens; with `from_end`, only the last `max_windows` windows (the tail a pretrain step holds out)."""
    ids = tokenize_corpus(tokenizer, source)
    return ids[-max_windows * seqlen:] if from_end and max_windows and len(ids) > max_windows * seqlen else ids


@torch.no_grad()
def perplexity(
    model,
    tokenizer,
    source: str,
    seqlen: int = 2048,
    max_windows: int | None = None,
    batch_size: int | None = None,
    show_progress: bool = True,
) -> PerplexityResult:
    """Perplexity of `model` on a text source (see the module docstring for the protocol)."""
    return perplexity_of_ids(model, tokenize_corpus(tokenizer, source), seqlen, max_windows, batch_size, show_progress)


def window_count(ids: torch.Tensor, seqlen: int, max_windows: int | None) -> int:
    """Full windows of `seqlen` tokens scored (at most `max_windows`); every backend scores the same ones."""
    windows = ids.numel() // seqlen
    if max_windows is not None:
        windows = min(windows, max_windows)
    if windows == 0:
        raise SlmError(f"text has {ids.numel()} tokens, fewer than one window of {seqlen}")
    return windows


@torch.no_grad()
def perplexity_of_ids(
    model,
    ids: torch.Tensor,
    seqlen: int = 2048,
    max_windows: int | None = None,
    batch_size: int | None = None,
    show_progress: bool = True,
) -> PerplexityResult:
    windows = window_count(ids, seqlen, max_windows)
    if batch_size is None:
        batch_size = max(1, LOGITS_BUDGET_BYTES // (seqlen * model.config.vocab_size * 4))
    data = ids[: windows * seqlen].view(windows, seqlen)
    device = next(model.parameters()).device
    start = time.perf_counter()
    total_nll = 0.0
    with progress_bar("perplexity", total=windows, enabled=show_progress) as advance:
        for i in range(0, windows, batch_size):
            batch = data[i : i + batch_size].to(device)
            logits = model(batch, use_cache=False).logits[:, :-1].float()
            nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1), reduction="none")
            # Each window's mean NLL counts once, as in the reference code (mean loss x seqlen / seqlen).
            total_nll += nll.view(batch.size(0), -1).mean(dim=1).double().sum().item()
            advance(batch.size(0))
    mean_nll = total_nll / windows
    return PerplexityResult(
        perplexity=math.exp(mean_nll),
        nll=mean_nll,
        tokens=windows * seqlen,
        windows=windows,
        seqlen=seqlen,
        seconds=time.perf_counter() - start,
    )
