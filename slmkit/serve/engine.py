"""What the server needs from a local model: prompt ids, a token stream, answer log-probs and a prompt embedding.

`TransformersEngine` runs any slmkit-loadable model through the lean decode loop (or speculative
decoding with a draft). `Worker` runs all model work on one thread, in arrival order, so
concurrent requests queue instead of fighting over two CPU cores.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any, AsyncIterator, Callable, Iterable, Iterator

import torch

from slmkit.generation import SamplingParams, stop_ids, stream_tokens


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


class WorkerBusy(Exception):
    """The request queue is full."""


_DONE = object()


class Worker:
    """One thread that runs model jobs in arrival order and streams their items back to asyncio."""

    def __init__(self, max_queue: int = 512):
        self.jobs: queue.Queue = queue.Queue()
        self.max_queue = max_queue
        self.active = 0
        threading.Thread(target=self._loop, name="slmkit-model-worker", daemon=True).start()

    @property
    def waiting(self) -> int:
        return self.jobs.qsize()

    async def iterate(self, make: Callable[[], Iterable[Any]]) -> AsyncIterator[Any]:
        """Run `make()` on the worker thread and yield its items; stops the job early if the consumer leaves."""
        if self.jobs.qsize() >= self.max_queue:
            raise WorkerBusy(f"{self.jobs.qsize()} requests already waiting")
        loop = asyncio.get_running_loop()
        out: asyncio.Queue = asyncio.Queue()
        cancelled = threading.Event()
        self.jobs.put((make, loop, out, cancelled))
        try:
            while True:
                item = await out.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancelled.set()

    async def call(self, fn: Callable[[], Any]) -> Any:
        async for item in self.iterate(lambda: [fn()]):
            return item

    def _loop(self) -> None:
        while True:
            make, loop, out, cancelled = self.jobs.get()
            if cancelled.is_set():
                continue
            self.active += 1
            try:
                for item in make():
                    if cancelled.is_set() or not _send(loop, out, item):
                        break
                else:
                    _send(loop, out, _DONE)
            except Exception as err:  # handed to the request that caused it, never kills the worker
                _send(loop, out, err)
            finally:
                self.active -= 1


def _send(loop, out: asyncio.Queue, item) -> bool:
    """Hand an item to the waiting request; False when its event loop is gone."""
    try:
        loop.call_soon_threadsafe(out.put_nowait, item)
        return True
    except RuntimeError:
        return False
