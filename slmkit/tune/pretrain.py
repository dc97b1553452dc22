"""Pretraining: next-token cross-entropy on packed `seqlen` windows of one text source, on the shared
trainer (tune/trainer.py: accumulation, warm-up + cosine, checkpoints with exact resume, NaN stop).

The source is tokenized into one stream (EOS between documents; `hf:` sets are streamed, so only the
tokens needed are read); its last `heldout_tokens` tokens never enter training and are scored for
perplexity. Throughput is reported as tokens/s and MFU = 6 x non-embedding params x tokens/s over a
*measured* dense matmul FLOP rate of the same device (not a datasheet peak).
"""

from __future__ import annotations

import time
from typing import Iterator

import torch

from slmkit.data.corpus import HUB_PREFIX, load_documents
from slmkit.errors import SlmError


def documents(source: str) -> Iterator[str]:
    """The documents of a source in order; `hf:NAME[:CONFIG][@SPLIT]` is streamed, not downloaded whole."""
    if not source.startswith(HUB_PREFIX):
        yield from load_documents(source)
        return
    name, _, split = source[len(HUB_PREFIX):].partition("@")
    name, _, config = name.partition(":")
    try:
        from datasets import load_dataset

        dataset = load_dataset(name, config or None, split=split or "train", streaming=True)
    except Exception as err:  # offline, unknown name, missing split
        raise SlmError(f"could not stream hub dataset {source}: {str(err).strip()[:200] or type(err).__name__}") from err
    for row in dataset:
        if not isinstance(row.get("text"), str):
            raise SlmError(f"hub dataset {source} has no 'text' column (columns: {', '.join(row)})")
        yield row["text"]


def token_stream(tokenizer, source: str, limit: int | None) -> torch.Tensor:
    """Documents tokenized and concatenated with EOS between them, stopping once `limit` tokens are read."""
    sep = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    ids: list[int] = []
    for doc in documents(source):
        if doc.strip():
            ids.extend(tokenizer(doc, add_special_tokens=False)["input_ids"] + sep)
        if limit is not None and len(ids) >= limit:
            break
    return torch.tensor(ids, dtype=torch.long)


def split_stream(stream: torch.Tensor, seqlen: int, heldout: int, source: str) -> tuple[list[dict], torch.Tensor]:
    """(training windows of `seqlen` tokens from the head, held-out ids = the last `heldout` tokens)."""
    n = (len(stream) - heldout) // seqlen
    if n < 1:
        raise SlmError(f"--data {source}: {len(stream)} tokens, fewer than one {seqlen}-token window plus "
                       f"--heldout-tokens {heldout}")
    train = stream[: n * seqlen].view(n, seqlen)
    return [{"input_ids": w, "labels": w} for w in train], stream[len(stream) - heldout:]


def tokens_needed(options, world: int) -> int | None:
    """How many training tokens the run reads (None: the whole source when neither bound is known)."""
    if options.max_tokens:
        return options.max_tokens
    return options.max_steps * options.batch_size * options.grad_accum * world * options.seqlen


def non_embedding_params(model) -> int:
    """Parameters outside the input embedding and LM head (the N of 6·N·D), counted once if tied."""
    skip = {id(model.get_input_embeddings().weight)}
    head = model.get_output_embeddings()
    if head is not None:
        skip.add(id(head.weight))
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values() if id(p) not in skip)


def measured_flops(device: torch.device | str = "cpu", size: int = 1024, repeats: int = 3) -> float:
    """Dense fp32 matmul FLOP/s measured on `device` (best of `repeats`): the denominator of MFU."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats + 1):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def throughput(model, tokens_per_s: float, device) -> dict:
    """tokens/s, model FLOP/s (6·N·tokens/s, N non-embedding) and MFU against the measured matmul rate."""
    n = non_embedding_params(model)
    flops = measured_flops(device)
    model_flops = 6 * n * tokens_per_s
    return {"tokens_per_s": tokens_per_s, "non_embedding_params": n, "model_flops_per_s": model_flops,
            "measured_matmul_flops_per_s": flops, "mfu": model_flops / flops}


def pretrain(model, tokenizer, options, show_progress: bool = True, stop_after: int | None = None):
    """Pretrain `model` on options.data; returns (model, TrainResult, throughput dict).

    result.evals starts with the held-out perplexity before training (step 0) on a fresh run."""
    from accelerate import PartialState

    from slmkit.evaluate.perplexity import perplexity_of_ids
    from slmkit.tune.sft import pad_id
    from slmkit.tune.trainer import CausalLMObjective, train

    need = tokens_needed(options, PartialState().num_processes)
    stream = token_stream(tokenizer, options.data, None if need is None else need + options.heldout_tokens)
    examples, heldout = split_stream(stream, options.seqlen, options.heldout_tokens, options.data)
    if len(heldout) < options.eval_seqlen + 1:
        raise SlmError(f"--heldout-tokens {options.heldout_tokens} is shorter than one --eval-seqlen {options.eval_seqlen} window")

    def eval_fn(m) -> dict:
        r = perplexity_of_ids(m, heldout, options.eval_seqlen, options.eval_windows, show_progress=False)
        return {"perplexity": r.perplexity, "nll": r.nll}

    first = [{"step": 0, **eval_fn(model.eval())}] if not options.resume else []
    model.train()
    result = train(CausalLMObjective(model), examples, options, pad_id=pad_id(tokenizer), eval_fn=eval_fn,
                   show_progress=show_progress, stop_after=stop_after)
    if result.resumed_from == 0:
        result.evals = first + result.evals
    return model.eval(), result, throughput(model, result.tokens_per_s, next(model.parameters()).device)


def summary(result, rate: dict) -> str:
    """One log line: steps, tokens, throughput, MFU, held-out perplexity first -> last."""
    ppl = ""
    if result.evals:
        ppl = f", held-out ppl {result.evals[0]['perplexity']:.2f} -> {result.evals[-1]['perplexity']:.2f}"
    return (f"pretrain: {result.steps} steps, {result.tokens} tokens in {result.seconds:.0f}s, "
            f"{rate['tokens_per_s']:.0f} tokens/s, {rate['model_flops_per_s'] / 1e9:.2f} GFLOP/s model "
            f"(MFU {100 * rate['mfu']:.1f}% of a measured {rate['measured_matmul_flops_per_s'] / 1e9:.0f} GFLOP/s "
            f"fp32 matmul), final loss {result.losses[-1]:.4f}{ppl}")


def pretrain_step(model, tokenizer, options, context):
    model, result, rate = pretrain(model, tokenizer, options)
    context.log.append(summary(result, rate))
    return model
