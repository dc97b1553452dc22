"""The OpenAI-compatible FastAPI app: /v1/models, /v1/completions, /v1/chat/completions, /v1/stats, /health.

A request is answered by the local model, or by the upstream LLM when a router sends it there,
when the cascade finds the local answer unsure, or when no local answering is configured. What
goes upstream passes the privacy proxy first. Responses name who answered in `answered_by` and
the `X-Answered-By` header.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from slmkit.generation import SamplingParams
from slmkit.serve.worker import Worker, WorkerBusy

MAX_BODY_BYTES = 1 << 20


@dataclass
class Collaboration:
    """How the server works with an upstream LLM; all parts optional."""

    upstream: Any = None  # slmkit.collab.client.UpstreamClient
    cascade: Any = None  # slmkit.collab.cascade.Cascade
    router: Any = None  # slmkit.collab.router.Router
    privacy: Any = None  # slmkit.collab.privacy.PrivacyProxy


@dataclass
class Counters:
    requests: int = 0
    answered_local: int = 0
    answered_upstream: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: dict = field(default_factory=dict)


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


def sampling_from(body: dict, engine, prompt_len: int) -> tuple[SamplingParams, list[str]]:
    """Validate the OpenAI sampling fields and clip max_tokens to the context left after the prompt."""
    room = engine.context_length - prompt_len
    if room <= 0:
        raise ApiError(400, f"This model's maximum context length is {engine.context_length} tokens; "
                            f"the prompt has {prompt_len} tokens.", code="context_length_exceeded", param="messages")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or min(256, room)
    temperature = body.get("temperature", 1.0)
    top_p = body.get("top_p", 1.0)
    seed = body.get("seed")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ApiError(400, "max_tokens must be a positive integer", param="max_tokens")
    if not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise ApiError(400, "temperature must be between 0 and 2", param="temperature")
    if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise ApiError(400, "top_p must be in (0, 1]", param="top_p")
    if seed is not None and not isinstance(seed, int):
        raise ApiError(400, "seed must be an integer", param="seed")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else list(stop)
    if len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
        raise ApiError(400, "stop must be a string or a list of up to 4 non-empty strings", param="stop")
    params = SamplingParams(max_new_tokens=min(max_tokens, room), temperature=float(temperature), top_p=float(top_p),
                            seed=seed, stop_token_ids=engine.stop_token_ids)
    return params, stop


class TextAssembler:
    """Turns token ids into text deltas, cutting at stop strings and holding back text that may start one."""

    def __init__(self, engine, stop: list[str]):
        self.engine, self.stop = engine, stop
        self.ids: list[int] = []
        self.sent = ""
        self.finish: str | None = None
        self.cut = False
        self.hold = max((len(s) for s in stop), default=1) - 1

    def add(self, token: int) -> str:
        """The new text after one more token ("" while waiting); sets `finish` when a stop is reached."""
        if token in self.engine.stop_token_ids:
            self.finish = "stop"
            return self.flush()
        self.ids.append(token)
        text = self.engine.decode(self.ids)
        cuts = [text.find(s) for s in self.stop if s in text]
        if cuts:
            self.finish, self.cut = "stop", True
            return self._emit(text[: min(cuts)])
        if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            return ""
        return self._emit(text[: len(text) - self.hold])

    def flush(self) -> str:
        """Whatever was held back, once generation has ended."""
        return "" if self.cut else self._emit(self.engine.decode(self.ids))

    def _emit(self, text: str) -> str:
        if len(text) <= len(self.sent) or not text.startswith(self.sent):
            return ""
        delta, self.sent = text[len(self.sent):], text
        return delta


def create_app(engine, collaboration: Collaboration | None = None, api_key: str | None = None,
               max_body_bytes: int = MAX_BODY_BYTES, max_queue: int = 512, max_batch: int = 8) -> FastAPI:
    """Build the app around an engine (see slmkit.serve.engine); `api_key` enables bearer auth.

    Up to `max_batch` waiting requests are decoded together (1 turns batching off)."""
    app = FastAPI(title="slmkit", docs_url=None, redoc_url=None)
    collab = collaboration or Collaboration()
    worker = Worker(engine, max_queue=max_queue, max_batch=max_batch)
    counters = Counters()
    started = time.time()
    app.state.engine, app.state.worker, app.state.counters, app.state.collab = engine, worker, counters, collab

    def check_auth(request: Request) -> None:
        if api_key is None:
            return
        header = request.headers.get("authorization", "")
        if header != f"Bearer {api_key}":
            raise ApiError(401, "Incorrect or missing API key: pass it as 'Authorization: Bearer KEY'.",
                           code="invalid_api_key")

    async def read_json(request: Request) -> dict:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body_bytes:
            raise ApiError(400, f"request body of {declared} bytes exceeds the limit of {max_body_bytes} bytes")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > max_body_bytes:
                raise ApiError(400, f"request body exceeds the limit of {max_body_bytes} bytes")
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(400, "request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        return body

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError):
        counters.errors[err.status] = counters.errors.get(err.status, 0) + 1
        return err.response()

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": engine.name, "backend": engine.backend, "uptime_s": round(time.time() - started, 1),
                "queue": worker.waiting, **stats()}

    def stats() -> dict:
        out = {"requests": counters.requests, "answered_local": counters.answered_local,
               "answered_upstream": counters.answered_upstream, "prompt_tokens": counters.prompt_tokens,
               "completion_tokens": counters.completion_tokens, "errors": {str(k): v for k, v in counters.errors.items()},
               "max_batch": worker.max_batch, "decode_batches": worker.batches,
               "mean_batch_size": round(worker.batched / worker.batches, 2) if worker.batches else 0.0}
        if collab.upstream is not None:
            out.update(collab.upstream.stats())
        if engine.speculative_stats is not None:
            out["speculative_acceptance_rate"] = round(engine.speculative_stats.acceptance_rate, 4)
        return out

    @app.get("/v1/stats")
    async def stats_route(request: Request):
        check_auth(request)
        return stats()

    @app.get("/v1/models")
    async def models(request: Request):
        check_auth(request)
        return {"object": "list", "data": [{"id": engine.name, "object": "model", "created": int(started), "owned_by": "slmkit"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        check_auth(request)
        body = await read_json(request)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") for m in messages):
            raise ApiError(400, "messages must be a non-empty list of {role, content} objects with string content",
                           param="messages")
        messages = [{"role": m["role"], "content": m["content"]} for m in messages]
        ids = engine.chat_ids(messages)
        return await respond(body, ids, chat=True, upstream_payload={"messages": messages})

    @app.post("/v1/completions")
    async def completions(request: Request):
        check_auth(request)
        body = await read_json(request)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise ApiError(400, "prompt must be a string (one prompt per request)", param="prompt")
        ids = engine.text_ids(prompt)
        return await respond(body, ids, chat=False, upstream_payload={"prompt": prompt})

    async def respond(body: dict, ids: list[int], chat: bool, upstream_payload: dict):
        params, stop = sampling_from(body, engine, len(ids))
        counters.requests += 1
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        route = await choose_route(ids)
        if route == "local" and stream and collab.cascade is None:
            return StreamingResponse(local_stream(rid, chat, ids, params, stop, include_usage),
                                     media_type="text/event-stream", headers={"X-Answered-By": "local"})
        if route == "local":
            text, finish, answer_ids = await local_answer(ids, params, stop)
            usage = {"prompt_tokens": len(ids), "completion_tokens": len(answer_ids)}
            if collab.cascade is not None and collab.upstream is not None:
                logprobs = await worker.call(lambda: engine.answer_logprobs(ids, answer_ids))
                if collab.cascade.escalate(logprobs):
                    route = "upstream"
        if route == "upstream":
            text, finish, usage = await upstream_answer(chat, upstream_payload, body)
        counters.answered_local += route == "local"
        counters.answered_upstream += route == "upstream"
        counters.prompt_tokens += usage["prompt_tokens"]
        counters.completion_tokens += usage["completion_tokens"]
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        headers = {"X-Answered-By": route}
        if stream:
            return StreamingResponse(replay_stream(rid, chat, text, finish, usage if include_usage else None, route),
                                     media_type="text/event-stream", headers=headers)
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish} if chat
                  else {"index": 0, "text": text, "finish_reason": finish, "logprobs": None})
        return JSONResponse({"id": rid, "object": "chat.completion" if chat else "text_completion",
                             "created": int(time.time()), "model": engine.name, "choices": [choice], "usage": usage,
                             "answered_by": route}, headers=headers)

    async def choose_route(ids: list[int]) -> str:
        if collab.upstream is None:
            return "local"
        if collab.router is not None:
            embedding = await worker.call(lambda: engine.embed(ids))
            return collab.router.route(embedding)
        if collab.cascade is not None:
            return "local"
        return "upstream"  # an upstream with no local policy: the server is a (privacy) proxy

    async def local_tokens(ids: list[int], params: SamplingParams) -> AsyncIterator[int]:
        try:
            async for token in worker.decode(ids, params):
                yield token
        except WorkerBusy as err:
            raise ApiError(429, f"server busy: {err}", type_="rate_limit_error") from None

    async def local_answer(ids: list[int], params: SamplingParams, stop: list[str]) -> tuple[str, str, list[int]]:
        text = TextAssembler(engine, stop)
        out = []
        async for token in local_tokens(ids, params):
            out.append(text.add(token))
            if text.finish:
                break
        out.append(text.flush())
        return "".join(out), text.finish or "length", text.ids

    async def upstream_answer(chat: bool, payload: dict, body: dict) -> tuple[str, str, dict]:
        from slmkit.collab.client import UpstreamError

        if collab.upstream is None:
            raise ApiError(500, "no upstream configured", type_="server_error")
        restore = None
        if collab.privacy is not None:
            payload, restore = collab.privacy.redact_payload(payload)
        extra = {k: body[k] for k in ("max_tokens", "temperature", "top_p", "stop", "seed") if k in body}
        try:
            if chat:
                data = await collab.upstream.chat(payload["messages"], **extra)
                text = data["choices"][0]["message"]["content"] or ""
            else:
                data = await collab.upstream.complete(payload["prompt"], **extra)
                text = data["choices"][0]["text"]
        except UpstreamError as err:
            raise ApiError(502, str(err), type_="upstream_error") from None
        if restore is not None:
            text = restore(text)
        usage = data.get("usage") or {}
        return text, data["choices"][0].get("finish_reason") or "stop", {
            "prompt_tokens": int(usage.get("prompt_tokens") or 0), "completion_tokens": int(usage.get("completion_tokens") or 0)}

    def chunk(rid: str, chat: bool, delta: str | None, finish: str | None, role: bool = False, usage=None,
              answered_by: str = "local") -> str:
        if chat:
            d = {"role": "assistant", "content": ""} if role else ({"content": delta} if delta else {})
            choice = {"index": 0, "delta": d, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": delta or "", "finish_reason": finish, "logprobs": None}
        payload = {"id": rid, "object": "chat.completion.chunk" if chat else "text_completion", "created": int(time.time()),
                   "model": engine.name, "choices": [] if usage is not None else [choice], "answered_by": answered_by}
        if usage is not None:
            payload["usage"] = usage
        return f"data: {json.dumps(payload)}\n\n"

    async def local_stream(rid, chat, ids, params, stop, include_usage) -> AsyncIterator[str]:
        text = TextAssembler(engine, stop)
        if chat:
            yield chunk(rid, chat, None, None, role=True)
        try:
            async for token in local_tokens(ids, params):
                delta = text.add(token)
                if delta:
                    yield chunk(rid, chat, delta, None)
                if text.finish:
                    break
        except ApiError as err:
            yield f"data: {json.dumps({'error': {'message': err.message, 'type': err.type}})}\n\n"
            return
        tail = text.flush()
        if tail:
            yield chunk(rid, chat, tail, None)
        yield chunk(rid, chat, None, text.finish or "length")
        counters.answered_local += 1
        counters.prompt_tokens += len(ids)
        counters.completion_tokens += len(text.ids)
        if include_usage:
            usage = {"prompt_tokens": len(ids), "completion_tokens": len(text.ids), "total_tokens": len(ids) + len(text.ids)}
            yield chunk(rid, chat, None, None, usage=usage)
        yield "data: [DONE]\n\n"

    async def replay_stream(rid, chat, text, finish, usage, route) -> AsyncIterator[str]:
        if chat:
            yield chunk(rid, chat, None, None, role=True, answered_by=route)
        if text:
            yield chunk(rid, chat, text, None, answered_by=route)
        yield chunk(rid, chat, None, finish, answered_by=route)
        if usage is not None:
            yield chunk(rid, chat, None, None, usage=usage, answered_by=route)
        yield "data: [DONE]\n\n"

    @app.on_event("shutdown")
    async def _close():
        if collab.upstream is not None:
            await collab.upstream.aclose()

    return app
