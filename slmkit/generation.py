"""One lean decode loop, used by `slm generate`, `slm profile` and the server for every model.

A prefill forward that keeps only the last position's logits, then one forward per new
token against the KV cache. Per-token cost is the weights' memory traffic, not Python
overhead, so speed ratios between models measured here are honest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch
from transformers import DynamicCache


@dataclass
class SamplingParams:
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None
    stop_token_ids: tuple[int, ...] = field(default_factory=tuple)  # stop after emitting one of these


def next_token(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> torch.Tensor:
    """Pick the next token from [batch, vocab] logits: argmax, or nucleus sampling at a temperature."""
    if params.temperature <= 0:
        return logits.argmax(dim=-1, keepdim=True)
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs > params.top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator)


@torch.inference_mode()
def stream_tokens(model, input_ids: torch.Tensor, params: SamplingParams) -> Iterator[int]:
    """Yield new token ids one by one for a single prompt ([1, T] ids)."""
    generator = torch.Generator().manual_seed(params.seed) if params.seed is not None else None
    device = next(model.parameters()).device
    cache = DynamicCache(config=model.config)
    logits = model(input_ids.to(device), past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
    for _ in range(params.max_new_tokens):
        token = next_token(logits, params, generator)
        value = int(token.item())
        yield value
        if value in params.stop_token_ids:
            return
        logits = model(token, past_key_values=cache, use_cache=True).logits[:, -1]


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
