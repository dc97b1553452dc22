"""What the server needs from a local model (`Engine`), the tokenizer side every backend shares, and the transformers backend.

`TransformersEngine` runs any slmkit-loadable model through the lean decode loop, several prompts
at once (`batch_decoder`), or through speculative decoding with a draft (one prompt at a time).
The llama.cpp backend (slmkit.serve.llamacpp) shares the same Hugging Face tokenizer code.
"""

from __future__ import annotations

from typing import Iterator, Protocol

import torch

from slmkit.errors import SlmError
from slmkit.generation import BatchDecoder, SamplingParams, stop_ids, stream_tokens


class Engine(Protocol):
    """A local model behind the server: prompt ids in, token ids out."""

    name: str  # the model id the server reports
    backend: str
    context_length: int
    stop_token_ids: tuple[int, ...]
    can_batch: bool  # whether `batch_decoder` decodes several prompts together

    def chat_ids(self, messages: list[dict]) -> list[int]: ...
    def text_ids(self, text: str) -> list[int]: ...
    def decode(self, ids: list[int]) -> str: ...
    def stream(self, ids: list[int], params: SamplingParams) -> Iterator[int]: ...
    def generate(self, ids: list[int], params: SamplingParams) -> list[int]: ...
    def stats(self) -> dict: ...
    def batch_decoder(self, prompts: list[list[int]], params: list[SamplingParams]) -> BatchDecoder: ...
    def answer_logprobs(self, ids: list[int], answer: list[int]) -> list[float]: ...
    def embed(self, ids: list[int]) -> torch.Tensor: ...


class TokenizedEngine:
    """Prompt ids, text and stop tokens through the model's Hugging Face tokenizer: the part every backend shares."""

    backend = "none"
    can_batch = False

    def __init__(self, tokenizer, name: str):
        self.tokenizer, self.name = tokenizer, name
        self.stop_token_ids = stop_ids(tokenizer)

    def chat_ids(self, messages: list[dict]) -> list[int]:
        """The chat template's ids with the assistant turn opened (a plain "role: content" layout without one)."""
        if getattr(self.tokenizer, "chat_template", None):
            out = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
            return list(out["input_ids"])
        return self.text_ids("".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:")

    def text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def stream(self, ids: list[int], params: SamplingParams) -> Iterator[int]:
        raise NotImplementedError

    def generate(self, ids: list[int], params: SamplingParams) -> list[int]:
        """The answer's token ids decoded alone, without the stop token."""
        return [t for t in self.stream(ids, params) if t not in self.stop_token_ids]

    def stats(self) -> dict:
        """Backend-specific figures for /v1/stats."""
        return {}

    def batch_decoder(self, prompts: list[list[int]], params: list[SamplingParams]) -> BatchDecoder:
        raise SlmError(f"the {self.backend} backend decodes one request at a time")

    def answer_logprobs(self, ids: list[int], answer: list[int]) -> list[float]:
        raise SlmError("the cascade needs the transformers backend")

    def embed(self, ids: list[int]) -> torch.Tensor:
        raise SlmError("the router needs the transformers backend")


class TransformersEngine(TokenizedEngine):
    """A transformers model + tokenizer (and optional same-tokenizer draft) behind the server."""

    backend = "transformers"

    def __init__(self, model, tokenizer, name: str, draft=None, draft_k: int = 4):
        from slmkit.collab.speculative import check_pair

        if draft is not None:
            check_pair(model, draft)
        super().__init__(tokenizer, name)
        self.model, self.draft, self.draft_k = model, draft, draft_k
        self.context_length = int(getattr(model.config, "max_position_embeddings", None) or 2048)
        self.speculative_stats = None

    @property
    def can_batch(self) -> bool:
        """Prompts decode together unless a draft drives speculative decoding."""
        return self.draft is None

    def stream(self, ids: list[int], params: SamplingParams) -> Iterator[int]:
        prompt = torch.tensor([ids])
        if self.draft is None:
            return stream_tokens(self.model, prompt, params)
        from slmkit.collab.speculative import SpeculativeStats, speculative_stream

        self.speculative_stats = SpeculativeStats()
        return speculative_stream(self.model, self.draft, prompt, params, k=self.draft_k, stats=self.speculative_stats)

    def stats(self) -> dict:
        if self.speculative_stats is None:
            return {}
        return {"speculative_acceptance_rate": round(self.speculative_stats.acceptance_rate, 4)}

    def batch_decoder(self, prompts: list[list[int]], params: list[SamplingParams]) -> BatchDecoder:
        return BatchDecoder(self.model, prompts, params)

    @torch.inference_mode()
    def answer_logprobs(self, ids: list[int], answer: list[int]) -> list[float]:
        """Log-probability the model gives each answer token after the prompt (one teacher-forced forward)."""
        if not answer:
            return []
        full = torch.tensor([ids + answer])
        logits = self.model(full, logits_to_keep=len(answer) + 1).logits[0, :-1].float()
        return torch.log_softmax(logits, -1).gather(-1, torch.tensor(answer)[:, None])[:, 0].tolist()

    @torch.inference_mode()
    def embed(self, ids: list[int]) -> torch.Tensor:
        from slmkit.collab.router import prompt_embedding

        return prompt_embedding(self.model, torch.tensor([ids]))
