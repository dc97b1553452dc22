"""llama.cpp as an evaluation backend: perplexity and zero-shot scores from llama.cpp's own logits.

Text is tokenized with the model's Hugging Face tokenizer and fed to llama.cpp as token ids, so
the perplexity windows and the (context, continuation) requests are exactly those of the
transformers path; only the forward pass differs. The model keeps the logits of every position
(`logits_all`), and a context shared by a question's choices is evaluated once (its KV cache is
kept and each continuation is appended to it).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from slmkit.errors import SlmError
from slmkit.evaluate.perplexity import PerplexityResult, window_count
from slmkit.evaluate.scorer import Score, continuation_score, encode_pair, truncate
from slmkit.progress import progress_bar

INSTALL_HINT = "the llama.cpp backend needs llama-cpp-python: make install (or pip install llama-cpp-python==0.3.36)"
TASK_CONTEXT = 2048  # the context llama.cpp is opened with for task scoring (requests are left-truncated to it)


def gguf_tokenizer(path: Path):
    """The Hugging Face tokenizer embedded in a GGUF file (the one the transformers path reads)."""
    from slmkit.layouts.common import auto_tokenizer

    return auto_tokenizer(path.parent, gguf_file=path.name)


def open_llama(path: Path, n_ctx: int, threads: int | None = None, logits_all: bool = True):
    """A llama.cpp context on a GGUF file; one-line errors for a missing package or an unreadable file."""
    try:
        from llama_cpp import Llama
    except ImportError:
        raise SlmError(INSTALL_HINT) from None
    try:
        return Llama(model_path=str(path), n_ctx=n_ctx, n_batch=min(n_ctx, 512), n_threads=threads,
                     logits_all=logits_all, verbose=False)
    except (ValueError, RuntimeError) as err:
        raise SlmError(f"llama.cpp cannot load {path}: {err}") from None


class LlamaCppModel:
    """A GGUF model in llama.cpp, read through its logits; `score_groups` is the scorer interface."""

    def __init__(self, path: Path, n_ctx: int = TASK_CONTEXT, threads: int | None = None):
        self.path = Path(path)
        self.llama = open_llama(self.path, n_ctx, threads)
        self.max_length = min(n_ctx, self.llama._model.n_ctx_train())

    def logits(self, ids: list[int], keep: int = 0) -> torch.Tensor:
        """[len(ids) - keep, vocab] logits of positions keep.. of `ids`; the first `keep` tokens must be
        the ones evaluated last (their KV cache is reused)."""
        if keep == 0:
            self.llama.reset()
        self.llama.n_tokens = keep
        self.llama.eval(ids[keep:])
        return torch.from_numpy(np.array(self.llama.scores[keep: len(ids)], dtype=np.float32))

    def score_groups(self, tokenizer, groups, show_progress: bool = True, description: str = "scoring") -> list[list[Score]]:
        """Scores of every request of every group, as `scorer.score_groups` computes them in transformers."""
        results = []
        with progress_bar(description, total=len(groups), enabled=show_progress) as advance:
            for group in groups:
                pairs = [encode_pair(tokenizer, c, k) for c, k in group]
                shared = all(c == pairs[0][0] for c, _ in pairs) and len(pairs[0][0]) > 0
                if shared and all(len(c) + len(k) <= self.max_length for c, k in pairs):
                    results.append(self.shared_prefix_scores(pairs[0][0], [k for _, k in pairs]))
                else:
                    results.append([self.pair_score(c, k) for c, k in pairs])
                advance()
        return results

    def shared_prefix_scores(self, ctx: list[int], conts: list[list[int]]) -> list[Score]:
        first = self.logits(ctx)[-1:]  # predicts every continuation's first token
        scores = []
        for cont in conts:
            rest = self.logits(ctx + cont[:-1], keep=len(ctx)) if len(cont) > 1 else first[:0]
            scores.append(continuation_score(torch.cat([first, rest]), cont))
        return scores

    def pair_score(self, ctx: list[int], cont: list[int]) -> Score:
        inp = truncate(ctx, cont, self.max_length)
        return continuation_score(self.logits(inp)[-len(cont):], cont)


def perplexity_llamacpp(path: Path, ids: torch.Tensor, seqlen: int = 2048, max_windows: int | None = None,
                        threads: int | None = None, show_progress: bool = True) -> PerplexityResult:
    """Paper-protocol perplexity (perplexity.py) of a GGUF file from llama.cpp's logits, on the same windows."""
    windows = window_count(ids, seqlen, max_windows)
    model = LlamaCppModel(path, n_ctx=seqlen, threads=threads)
    data = ids[: windows * seqlen].view(windows, seqlen)
    start, total_nll = time.perf_counter(), 0.0
    with progress_bar("perplexity (llama.cpp)", total=windows, enabled=show_progress) as advance:
        for window in data:
            logits = model.logits(window.tolist())[:-1]
            nll = torch.nn.functional.cross_entropy(logits, window[1:], reduction="mean")
            total_nll += float(nll)
            advance()
    mean_nll = total_nll / windows
    return PerplexityResult(perplexity=math.exp(mean_nll), nll=mean_nll, tokens=windows * seqlen, windows=windows,
                            seqlen=seqlen, seconds=time.perf_counter() - start)
