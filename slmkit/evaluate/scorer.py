"""Log-likelihood of (context, continuation) pairs, tokenized exactly as lm-evaluation-harness does.

`score_groups` is the fast path: groups (the choices of one question) are sorted by length,
a group whose choices share one context runs that context once, keeps its KV cache and scores
all continuations in one batched forward, and logits are computed only where they are read.
`score_naive` scores every pair on its own with a full forward, as a reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from slmkit.progress import progress_bar

Request = tuple[str, str]  # (context, continuation); the continuation carries its leading delimiter


@dataclass
class Score:
    logprob: float  # sum of the continuation's token log-probs
    greedy: bool  # every continuation token is the argmax of its position
    tokens: int  # continuation tokens


def prefix_token_id(tokenizer) -> int:
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of context and continuation: trailing context spaces move to the continuation,
    context+continuation is encoded whole and the continuation is its tail past the context's tokens;
    an empty context becomes the BOS (or EOS) token."""
    if context == "":
        cont = tokenizer.encode(continuation, add_special_tokens=False)
        prefix = prefix_token_id(tokenizer)
        return ([prefix], cont) if cont[0] != prefix else (cont[:1], cont[1:])
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole = tokenizer.encode(context + continuation)
    ctx = tokenizer.encode(context)
    return ctx, whole[len(ctx):]


def max_length(model) -> int:
    config = model.config
    for key in ("max_position_embeddings", "n_positions", "seq_length"):
        if getattr(config, key, None):
            return int(getattr(config, key))
    return 2048


def truncate(ctx: list[int], cont: list[int], limit: int) -> list[int]:
    """Model input for a pair, left-truncated to `limit` tokens as the harness does."""
    return (ctx + cont)[-(limit + 1):][:-1]


def continuation_score(logits: torch.Tensor, cont: list[int]) -> Score:
    """Score from the logits that predict each continuation token ([len(cont), vocab])."""
    logprobs = F.log_softmax(logits.float(), dim=-1)
    target = torch.tensor(cont, device=logits.device)
    greedy = bool((logprobs.argmax(-1) == target).all())
    return Score(float(logprobs.gather(1, target[:, None]).sum()), greedy, len(cont))


@torch.no_grad()
def score_naive(model, tokenizer, requests: list[Request]) -> list[Score]:
    """One full forward per request, reading the continuation's logits from the full-sequence output."""
    device, limit = next(model.parameters()).device, max_length(model)
    scores = []
    for context, continuation in requests:
        ctx, cont = encode_pair(tokenizer, context, continuation)
        inp = torch.tensor([truncate(ctx, cont, limit)], device=device)
        logits = model(inp, use_cache=False).logits[0]
        scores.append(continuation_score(logits[-len(cont):], cont))
    return scores


@torch.no_grad()
def score_groups(model, tokenizer, groups: list[list[Request]], show_progress: bool = True,
                 description: str = "scoring") -> list[list[Score]]:
    """Scores for every request of every group, in the order given (see the module docstring)."""
    device, limit = next(model.parameters()).device, max_length(model)
    encoded = [[encode_pair(tokenizer, c, k) for c, k in group] for group in groups]
    order = sorted(range(len(groups)), key=lambda i: -max(len(c) + len(k) for c, k in encoded[i]))
    results: list[list[Score]] = [[] for _ in groups]
    with progress_bar(description, total=len(groups), enabled=show_progress) as advance:
        for i in order:
            pairs = encoded[i]
            shared = all(c == pairs[0][0] for c, _ in pairs)
            fits = all(len(c) + len(k) <= limit for c, k in pairs)
            if shared and fits and len(pairs[0][0]) > 0:
                results[i] = shared_prefix_scores(model, pairs[0][0], [k for _, k in pairs], device)
            else:
                results[i] = padded_scores(model, pairs, limit, device)
            advance()
    return results


def shared_prefix_scores(model, ctx: list[int], conts: list[list[int]], device) -> list[Score]:
    """Run the context once; score all continuations against its KV cache in one batched forward."""
    out = model(torch.tensor([ctx], device=device), use_cache=True, logits_to_keep=1)
    first = out.logits[0, -1]  # predicts every continuation's first token
    longest = max(len(k) for k in conts)
    if longest == 1:
        return [continuation_score(first[None], k) for k in conts]
    cache = out.cache
    cache.batch_repeat_interleave(len(conts))
    # Feed all but each continuation's last token, right-padded: padding sits after the real
    # tokens, so causal attention keeps it from touching them.
    pad = conts[0][0]
    inp = torch.tensor([k[:-1] + [pad] * (longest - len(k)) for k in conts], device=device)
    logits = model(inp, cache=cache, use_cache=True).logits
    return [continuation_score(torch.cat([first[None], logits[j, : len(k) - 1]]), k) for j, k in enumerate(conts)]


def padded_scores(model, pairs: list[tuple[list[int], list[int]]], limit: int, device) -> list[Score]:
    """Requests with different contexts: one right-padded batch, logits only for continuation positions."""
    inputs = [truncate(c, k, limit) for c, k in pairs]
    longest = max(len(x) for x in inputs)
    pad = inputs[0][0]
    batch = torch.tensor([x + [pad] * (longest - len(x)) for x in inputs], device=device)
    start = min(len(x) - len(k) for x, (_, k) in zip(inputs, pairs))  # first position any continuation reads
    logits = model(batch, use_cache=False, logits_to_keep=longest - start).logits
    scores = []
    for j, (x, (_, k)) in enumerate(zip(inputs, pairs)):
        end = len(x) - start
        scores.append(continuation_score(logits[j, end - len(k): end], k))
    return scores
