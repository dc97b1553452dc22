"""One lean decode loop, used by `slm generate`, `slm profile` and the server for every model.

A prefill forward that keeps only the last position's logits, then one forward per new
token against a static KV cache allocated once for prompt + new tokens (no per-step
concatenation), with explicit token positions. Several prompts decode together in one
left-padded batch (`BatchDecoder`, used by the server); a single prompt is a batch of one.
Setting SLMKIT_COMPILE=1 also runs the one-token step through `torch.compile` (fixed shapes
thanks to the static cache). Every model, float or packed, goes through this same loop, so
speed ratios measured here are honest.
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


class CompiledStep:
    """A model's compiled one-token forward, kept on the model itself (outside its submodules) so it
    lives and dies with that model; copies and pickles of the model start without one."""

    def __init__(self, model=None) -> None:
        self.step = torch.compile(model, dynamic=False) if model is not None else None

    def __deepcopy__(self, memo) -> "CompiledStep":
        return CompiledStep()

    def __reduce__(self):
        return CompiledStep, ()


def decode_step(model):
    """The one-token forward: compiled once per model when SLMKIT_COMPILE=1, else the model itself."""
    if os.environ.get("SLMKIT_COMPILE") != "1":
        return model
    held = model.__dict__.get("_slmkit_decode_step")
    if held is None or held.step is None:
        held = CompiledStep(model)
        object.__setattr__(model, "_slmkit_decode_step", held)  # not a submodule: no state_dict entry
    return held.step


class BatchDecoder:
    """Decode several prompts together: left-padded into one batch with one KV cache, each row stopping on its own.

    `step()` returns the next token of every request still decoding; a request leaves the batch after a
    stop token, at its `max_new_tokens`, or when `drop()`ped, and the batch shrinks with it. Greedy rows
    get the same tokens as decoding alone (padding is masked and positions count from each prompt's start).
    """

    @torch.inference_mode()
    def __init__(self, model, prompts: list[list[int]], params: list[SamplingParams]):
        self.model, self.params = model, params
        self.generators = [torch.Generator().manual_seed(p.seed) if p.seed is not None else None for p in params]
        self.produced = [0] * len(prompts)
        self.stopped: set[int] = set()
        self.rows = list(range(len(prompts)))  # batch row -> request index, for the rows still in the batch
        self.device = next(model.parameters()).device
        width = max(len(p) for p in prompts)
        total = width + max(p.max_new_tokens for p in params) + 1
        pads = torch.tensor([width - len(p) for p in prompts])
        ids = torch.tensor([[0] * (width - len(p)) + list(p) for p in prompts], device=self.device)
        self.mask = (torch.arange(total) >= pads[:, None]).long().to(self.device) if pads.any() else None
        self.positions = (torch.arange(width) - pads[:, None]).clamp(min=0).to(self.device)
        self.cache = kv_cache(model, total)  # writes each step's keys and values after the ones it holds
        self.logits = self._forward(model, ids, logits_to_keep=1)
        self.positions = self.positions[:, -1:] + 1
        self.pending: torch.Tensor | None = None  # the tokens of the last step, not yet run through the model

    @property
    def live(self) -> list[int]:
        """Requests still decoding."""
        return [r for r in self.rows if r not in self.stopped]

    def drop(self, request: int) -> None:
        """Stop decoding a request (its consumer has gone)."""
        self.stopped.add(request)

    @torch.inference_mode()
    def step(self) -> dict[int, int]:
        """One new token for every live request: {request index: token id}."""
        if self.pending is not None:
            self._shrink()
            if not self.rows:
                return {}
            self.logits = self._forward(decode_step(self.model), self.pending)
            self.positions = self.positions + 1
        tokens = {}
        for row, request in enumerate(self.rows):
            params = self.params[request]
            token = int(next_token(self.logits[row: row + 1], params, self.generators[request]).item())
            tokens[request] = token
            self.produced[request] += 1
            if token in params.stop_token_ids or self.produced[request] >= params.max_new_tokens:
                self.stopped.add(request)
        self.pending = torch.tensor([[tokens[r]] for r in self.rows], device=self.device)
        return tokens

    def _forward(self, step, ids: torch.Tensor, **kwargs) -> torch.Tensor:
        return step(ids, attention_mask=self.mask, position_ids=self.positions, cache=self.cache, use_cache=True,
                    **kwargs).logits[:, -1]

    def _shrink(self) -> None:
        """Take finished and dropped requests out of the batch (and out of the KV cache)."""
        keep = [row for row, request in enumerate(self.rows) if request not in self.stopped]
        if len(keep) == len(self.rows):
            return
        self.rows = [self.rows[row] for row in keep]
        if keep:
            index = torch.tensor(keep, device=self.device)
            self.cache.reorder_cache(index)
            self.pending, self.positions = self.pending[index], self.positions[index]
            self.mask = self.mask[index] if self.mask is not None else None


def stream_tokens(model, input_ids: torch.Tensor, params: SamplingParams) -> Iterator[int]:
    """Yield new token ids one by one for a single prompt ([1, T] ids)."""
    decoder = BatchDecoder(model, [input_ids[0].tolist()], [params])
    while decoder.live:
        yield decoder.step()[0]


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
