"""What the server needs from a local model: prompt ids, a token stream, answer log-probs and a prompt embedding.

`TransformersEngine` runs any slmkit-loadable model through the lean decode loop, several prompts
at once (`batch_decoder`), or through speculative decoding with a draft (one prompt at a time).
"""

from __future__ import annotations

from typing import Iterator

import torch

from slmkit.generation import BatchDecoder, SamplingParams, stop_ids, stream_tokens


class TransformersEngine:
    """A transformers model + tokenizer (and optional same-tokenizer draft) behind the server."""

    backend = "transformers"

    def __init__(self, model, tokenizer, name: str, draft=None, draft_k: int = 4):
        from slmkit.collab.speculative import check_pair

        if draft is not None:
            check_pair(model, draft)
        self.model, self.tokenizer, self.name, self.draft, self.draft_k = model, tokenizer, name, draft, draft_k
        self.context_length = int(getattr(model.config, "max_position_embeddings", None) or 2048)
        self.stop_token_ids = stop_ids(tokenizer)
        self.speculative_stats = None

    @property
    def can_batch(self) -> bool:
        """Prompts decode together unless a draft drives speculative decoding."""
        return self.draft is None

    def chat_ids(self, messages: list[dict]) -> list[int]:
        if getattr(self.tokenizer, "chat_template", None):
            out = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
            return list(out["input_ids"])
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        return self.text_ids(text)

    def text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def stream(self, ids: list[int], params: SamplingParams) -> Iterator[int]:
        prompt = torch.tensor([ids])
        if self.draft is None:
            return stream_tokens(self.model, prompt, params)
        from slmkit.collab.speculative import SpeculativeStats, speculative_stream

        self.speculative_stats = SpeculativeStats()
        return speculative_stream(self.model, self.draft, prompt, params, k=self.draft_k, stats=self.speculative_stats)

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
