"""Who answers a request, and getting the answer: the local model, or the upstream LLM behind the privacy proxy.

With no upstream every request is local. With one, a router decides before generating (from the
model's embedding of the prompt), a cascade answers locally and escalates when the answer's token
log-probs are low, and with neither the server is a proxy: everything goes upstream. What goes
upstream passes the privacy proxy first, and its answer is restored before the client sees it.
"""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from slmkit.generation import SamplingParams
from slmkit.serve.protocol import ApiError, GenerationRequest
from slmkit.serve.stats import Counters
from slmkit.serve.text import TextAssembler
from slmkit.serve.worker import Worker, WorkerBusy


@dataclass
class Collaboration:
    """How the server works with an upstream LLM; all parts optional."""

    upstream: Any = None  # slmkit.collab.client.UpstreamClient
    cascade: Any = None  # slmkit.collab.cascade.Cascade
    router: Any = None  # slmkit.collab.router.Router
    privacy: Any = None  # slmkit.collab.privacy.PrivacyProxy


@dataclass
class Answer:
    text: str
    finish: str
    prompt_tokens: int
    completion_tokens: int
    route: str  # "local" or "upstream"
    token_ids: list[int] = field(default_factory=list)  # of a local answer
    tool_calls: list | None = None  # of an upstream chat answer

    def usage(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}


class Dispatcher:
    """Routes requests and produces their answers; every answer is counted here, once."""

    def __init__(self, engine, worker: Worker, collab: Collaboration, counters: Counters):
        self.engine, self.worker, self.collab, self.counters = engine, worker, collab, counters

    @property
    def reads_prompt(self) -> bool:
        """Whether the local model sees the prompt: it answers, or a router or cascade reads it."""
        collab = self.collab
        return collab.upstream is None or collab.router is not None or collab.cascade is not None

    async def route(self, ids: list[int]) -> str:
        """"local" or "upstream", decided before anything is generated."""
        collab = self.collab
        if collab.upstream is None:
            return "local"
        if collab.router is not None:
            embedding = await self.worker.call(lambda: self.engine.embed(ids))
            return collab.router.route(embedding)
        if collab.cascade is not None:
            return "local"
        return "upstream"  # an upstream with no local policy: the server is a (privacy) proxy

    def streams_locally(self, route: str) -> bool:
        """Whether a local answer can stream as it is decoded (a cascade must see the whole answer first)."""
        return route == "local" and self.collab.cascade is None

    async def answer(self, request: GenerationRequest, ids: list[int], params: SamplingParams, route: str) -> Answer:
        """The whole answer from `route`; a cascade may still send an unsure local answer upstream."""
        if route == "local":
            answer = await self.local_answer(ids, params, request.stops)
            if await self.escalates(ids, answer):
                route = "upstream"
        if route == "upstream":
            answer = await self.upstream_answer(request)
        self.counters.answered(answer.route, answer.prompt_tokens, answer.completion_tokens)
        return answer

    async def stream_local(self, ids: list[int], params: SamplingParams, text: TextAssembler) -> AsyncIterator[str]:
        """Text deltas of the local answer as it is decoded; `text` holds the finish and the tokens afterwards."""
        async with aclosing(self._decode_text(ids, params, text)) as deltas:
            async for delta in deltas:
                yield delta
        self.counters.answered("local", len(ids), len(text.ids))

    async def local_answer(self, ids: list[int], params: SamplingParams, stops: list[str]) -> Answer:
        text = TextAssembler(self.engine, stops)
        async with aclosing(self._decode_text(ids, params, text)) as deltas:
            out = "".join([delta async for delta in deltas])
        return Answer(out, text.finish or "length", len(ids), len(text.ids), "local", text.ids)

    async def _decode_text(self, ids: list[int], params: SamplingParams, text: TextAssembler) -> AsyncIterator[str]:
        """Decode until a stop token, a stop string or `max_new_tokens`; the worker stops as soon as this ends."""
        try:
            async with aclosing(self.worker.decode(ids, params)) as tokens:
                async for token in tokens:
                    delta = text.add(token)
                    if delta:
                        yield delta
                    if text.finish:
                        break
        except WorkerBusy as err:
            raise ApiError(429, f"server busy: {err}", type_="rate_limit_error") from None
        tail = text.flush()
        if tail:
            yield tail

    async def escalates(self, ids: list[int], answer: Answer) -> bool:
        """Whether the cascade finds the local answer too unsure to keep."""
        if self.collab.cascade is None or self.collab.upstream is None:
            return False
        logprobs = await self.worker.call(lambda: self.engine.answer_logprobs(ids, answer.token_ids))
        return self.collab.cascade.escalate(logprobs)

    async def upstream_answer(self, request: GenerationRequest) -> Answer:
        """Ask the upstream LLM and restore its answer. With the privacy proxy on, every string of the request
        passes the redactor, and stop strings stay here: they are applied to the restored answer."""
        from slmkit.collab.client import UpstreamError
        from slmkit.collab.privacy import PrivacyUncertain

        upstream, privacy = self.collab.upstream, self.collab.privacy
        if upstream is None:
            raise ApiError(500, "no upstream configured", type_="server_error")
        body, redaction = request.upstream_body(stop=privacy is None), None
        if privacy is not None:
            try:
                body, redaction = await self.worker.call(lambda: privacy.redact_body(body))
            except PrivacyUncertain as err:
                raise ApiError(400, str(err), code="privacy_uncertain") from None
        try:
            data = await upstream.create(request.chat, body)
        except UpstreamError as err:
            raise ApiError(502, str(err), type_="upstream_error") from None
        return upstream_reply(data, request, redaction)


def upstream_reply(data: dict, request: GenerationRequest, redaction=None) -> Answer:
    """The upstream's answer, its placeholders restored and (when the stops were kept here) cut at the first stop."""
    choice, usage = data["choices"][0], data.get("usage") or {}
    text = (choice.get("message") or {}).get("content") if request.chat else choice.get("text")
    text, finish = text or "", choice.get("finish_reason") or "stop"
    tool_calls = (choice.get("message") or {}).get("tool_calls") if request.chat else None
    if redaction is not None:
        text, tool_calls = redaction.restore(text), redaction.restore_all(tool_calls)
        cuts = [text.find(s) for s in request.stops if s in text]
        if cuts:
            text, finish = text[: min(cuts)], "stop"
    return Answer(text, finish, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                  "upstream", tool_calls=tool_calls)
