"""Speculative decoding (Leviathan et al., 2023): a cheap draft proposes k tokens, the target checks them in one forward.

Both models keep a KV cache; rejected positions are cropped away. Greedy verification keeps
the longest prefix the target would have produced itself, so the output is the target's own
greedy output. With sampling, token i is accepted with probability min(1, p(x)/q(x)) and the
first rejection is resampled from norm(max(0, p - q)): the output follows the target's
distribution exactly. k adapts to the recent acceptance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from transformers import DynamicCache

from slmkit.errors import SlmError
from slmkit.generation import SamplingParams, sampling_probs


@dataclass
class SpeculativeStats:
    """What happened during one generation: drafted vs accepted tokens and target forwards."""

    proposed: int = 0
    accepted: int = 0
    target_forwards: int = 0
    draft_forwards: int = 0
    tokens: int = 0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else 0.0


def accept_or_resample(p: torch.Tensor, q: torch.Tensor, token: int, generator: torch.Generator | None) -> int | None:
    """One step of the acceptance rule: None if the draft token is accepted, else the token drawn from the residual."""
    ratio = (p[token] / q[token].clamp_min(1e-20)).item()
    if torch.rand((), generator=generator).item() < min(1.0, ratio):
        return None
    residual = (p - q).clamp_min(0.0)
    total = residual.sum()
    residual = residual / total if total > 0 else p
    return int(torch.multinomial(residual, 1, generator=generator).item())


def check_pair(target, draft) -> None:
    if target.config.vocab_size != draft.config.vocab_size:
        raise SlmError(f"draft vocabulary ({draft.config.vocab_size}) differs from the target's "
                       f"({target.config.vocab_size}); the draft must be a compressed copy of the target (same tokenizer)")


def truncate(cache: DynamicCache, length: int) -> None:
    """Keep the first `length` positions of a KV cache (crop takes the number of tokens to remove)."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)


@torch.inference_mode()
def speculative_stream(target, draft, input_ids: torch.Tensor, params: SamplingParams, k: int = 4,
                       adaptive: bool = True, max_k: int = 8, stats: SpeculativeStats | None = None) -> Iterator[int]:
    """Yield new token ids for one prompt ([1, T] ids), drafted by `draft` and verified by `target`."""
    check_pair(target, draft)
    stats = stats if stats is not None else SpeculativeStats()
    generator = torch.Generator().manual_seed(params.seed) if params.seed is not None else None
    greedy = params.temperature <= 0
    device = next(target.parameters()).device
    seq = input_ids[0].tolist()
    target_cache, draft_cache = DynamicCache(config=target.config), DynamicCache(config=draft.config)
    # Invariant at the top of each round: the target cache holds every token but the last.
    if len(seq) > 1:
        target(torch.tensor([seq[:-1]], device=device), cache=target_cache, use_cache=True, logits_to_keep=1)
    emitted = 0
    while emitted < params.max_new_tokens:
        k_now = max(1, min(k, params.max_new_tokens - emitted))
        # Draft k tokens; the draft first catches up on whatever it has not seen yet.
        pending = seq[draft_cache.get_seq_length():]
        drafted, draft_probs = [], []
        for _ in range(k_now):
            logits = draft(torch.tensor([pending], device=device), cache=draft_cache, use_cache=True,
                           logits_to_keep=1).logits[0, -1]
            stats.draft_forwards += 1
            if greedy:
                token = int(logits.argmax())
            else:
                q = sampling_probs(logits, params)
                token = int(torch.multinomial(q, 1, generator=generator).item())
                draft_probs.append(q)
            drafted.append(token)
            pending = [token]
        # Verify all k in one target forward over [last, d1..dk]: k + 1 next-token distributions.
        logits = target(torch.tensor([[seq[-1]] + drafted], device=device), cache=target_cache,
                        use_cache=True).logits[0]
        stats.target_forwards += 1
        stats.proposed += len(drafted)
        accepted: list[int] = []
        extra = None
        for i, token in enumerate(drafted):
            if greedy:
                best = int(logits[i].argmax())
                if best != token:
                    extra = best
                    break
            else:
                extra = accept_or_resample(sampling_probs(logits[i], params), draft_probs[i], token, generator)
                if extra is not None:
                    break
            accepted.append(token)
        if extra is None:  # everything accepted: the last target position gives one more token for free
            extra = int(logits[-1].argmax()) if greedy else int(
                torch.multinomial(sampling_probs(logits[-1], params), 1, generator=generator).item())
        stats.accepted += len(accepted)
        base = len(seq)
        truncate(target_cache, base + len(accepted))  # drop the rejected drafts' keys/values
        truncate(draft_cache, base + len(accepted))
        for token in accepted + [extra]:
            seq.append(token)
            emitted += 1
            stats.tokens += 1
            yield token
            if token in params.stop_token_ids or emitted >= params.max_new_tokens:
                return
        if adaptive:  # grow k while the draft keeps up, shrink it when most drafts are thrown away
            if len(accepted) == k_now:
                k = min(max_k, k + 1)
            elif len(accepted) < k_now // 2:
                k = max(1, k - 1)


def speculative_generate(target, draft, input_ids: torch.Tensor, params: SamplingParams, k: int = 4,
                         adaptive: bool = True) -> tuple[list[int], SpeculativeStats]:
    stats = SpeculativeStats()
    return list(speculative_stream(target, draft, input_ids, params, k=k, adaptive=adaptive, stats=stats)), stats
