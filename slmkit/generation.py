"""One lean decode loop, used by `slm generate`, `slm profile` and the server for every model.

A prefill forward that keeps only the last position's logits, then one forward per new
token against a static KV cache allocated once for prompt + new tokens (no per-step
concatenation), with explicit cache positions. Setting SLMKIT_COMPILE=1 also runs the
one-token step through `torch.compile` (fixed shapes thanks to the static cache). Every
model, float or packed, goes through this same loop, so speed ratios measured here are honest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterator

import torch
from transformers import DynamicCache, StaticCache


@dataclass
class SamplingParams:
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None
    stop_token_ids: tuple[int, ...] = field(default_factory=tuple)  # stop after emitting one of these


def sampling_probs(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """The distribution `next_token` samples from ([..., vocab] logits): temperature, then top-p."""
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs > params.top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def next_token(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> torch.Tensor:
    """Pick the next token from [batch, vocab] logits: argmax, or nucleus sampling at a temperature."""
    if params.temperature <= 0:
        return logits.argmax(dim=-1, keepdim=True)
    return torch.multinomial(sampling_probs(logits, params), 1, generator=generator)


def kv_cache(model, max_len: int):
    """A static cache of `max_len` positions where the family supports one, else a growing cache."""
    try:
        return StaticCache(config=model.config, max_cache_len=max_len)
    except (TypeError, ValueError, AttributeError, NotImplementedError):
        return DynamicCache(config=model.config)


_compiled: dict[int, object] = {}


def decode_step(model):
    """The one-token forward: compiled once per model when SLMKIT_COMPILE=1, else the model itself."""
    if os.environ.get("SLMKIT_COMPILE") != "1":
        return model
    if id(model) not in _compiled:
        _compiled[id(model)] = torch.compile(model, dynamic=False)
    return _compiled[id(model)]


@torch.inference_mode()
def stream_tokens(model, input_ids: torch.Tensor, params: SamplingParams) -> Iterator[int]:
    """Yield new token ids one by one for a single prompt ([1, T] ids)."""
    generator = torch.Generator().manual_seed(params.seed) if params.seed is not None else None
    device = next(model.parameters()).device
    length = input_ids.shape[1]
    cache = kv_cache(model, length + params.max_new_tokens + 1)
    position = torch.arange(length, device=device)
    logits = model(input_ids.to(device), past_key_values=cache, use_cache=True, cache_position=position,
                   logits_to_keep=1).logits[:, -1]
    step = decode_step(model)
    position = position[-1:] + 1
    for _ in range(params.max_new_tokens):
        token = next_token(logits, params, generator)
        value = int(token.item())
        yield value
        if value in params.stop_token_ids:
            return
        logits = step(token, past_key_values=cache, use_cache=True, cache_position=position).logits[:, -1]
        position = position + 1


def generate_ids(model, input_ids: torch.Tensor, params: SamplingParams) -> list[int]:
    return list(stream_tokens(model, input_ids, params))


def chat_prompt_ids(tokenizer, prompt: str, chat: bool = True) -> torch.Tensor:
    """Token ids for a prompt: through the tokenizer's chat template when it has one and `chat`."""
    if chat and getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"]
        return ids
    return tokenizer(prompt, return_tensors="pt")["input_ids"]


def stop_ids(tokenizer) -> tuple[int, ...]:
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    for token in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
        tid = tokenizer.convert_tokens_to_ids(token) if token in tokenizer.get_vocab() else None
        if tid is not None:
            ids.add(tid)
    return tuple(sorted(ids))
