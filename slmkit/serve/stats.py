"""The server's counters, kept in one place, and the /v1/stats body built from them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Counters:
    """Requests accepted, who answered them, tokens on each side of the answer, and errors by HTTP status."""

    requests: int = 0
    answered_local: int = 0
    answered_upstream: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: dict[int, int] = field(default_factory=dict)

    def accepted(self) -> None:
        self.requests += 1

    def answered(self, route: str, prompt_tokens: int, completion_tokens: int) -> None:
        self.answered_local += route == "local"
        self.answered_upstream += route == "upstream"
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens

    def failed(self, status: int) -> None:
        self.errors[status] = self.errors.get(status, 0) + 1

    def as_dict(self) -> dict:
        return {"requests": self.requests, "answered_local": self.answered_local,
                "answered_upstream": self.answered_upstream, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "errors": {str(k): v for k, v in self.errors.items()}}


def server_stats(counters: Counters, worker, engine, upstream=None) -> dict:
    """Everything /v1/stats reports: the counters, the worker's batching, the upstream's calls, the engine's own."""
    out = counters.as_dict()
    out.update({"max_batch": worker.max_batch, "decode_batches": worker.batches,
                "mean_batch_size": round(worker.batched / worker.batches, 2) if worker.batches else 0.0})
    if upstream is not None:
        out.update(upstream.stats())
    out.update(engine.stats())
    return out
