"""The OpenAI-compatible FastAPI app: /v1/models, /v1/completions, /v1/chat/completions, /v1/stats, /health.

This module only wires the parts: request models and error bodies (serve.protocol), who answers
(serve.routing), the model thread (serve.worker), the counters (serve.stats). Responses name who
answered in `answered_by` and the `X-Answered-By` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import AsyncIterator, Awaitable, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from slmkit.serve.protocol import (
    MAX_BODY_BYTES,
    SSE_DONE,
    ApiError,
    ChatRequest,
    CompletionRequest,
    GenerationRequest,
    answer_body,
    check_model,
    parse_request,
    read_json,
    sampling_params,
    sse_chunk,
    sse_error,
)
from slmkit.serve.routing import Answer, Collaboration, Dispatcher
from slmkit.serve.stats import Counters, server_stats
from slmkit.serve.text import TextAssembler
from slmkit.serve.worker import Worker


class Server:
    """What the routes share: the engine, its worker, the dispatcher, the counters and the access settings."""

    def __init__(self, engine, collab: Collaboration, api_key: str | None, max_body_bytes: int, max_queue: int,
                 max_batch: int, aliases: tuple[str, ...]):
        self.engine, self.collab, self.api_key, self.max_body_bytes = engine, collab, api_key, max_body_bytes
        self.names = (engine.name, *(a for a in aliases if a != engine.name))
        self.worker = Worker(engine, max_queue=max_queue, max_batch=max_batch)
        self.counters = Counters()
        self.dispatcher = Dispatcher(engine, self.worker, collab, self.counters)
        self.started = time.time()

    def authorized(self, request: Request) -> bool:
        return self.api_key is None or request.headers.get("authorization", "") == f"Bearer {self.api_key}"

    def check_auth(self, request: Request) -> None:
        if not self.authorized(request):
            raise ApiError(401, "Incorrect or missing API key: pass it as 'Authorization: Bearer KEY'.",
                           code="invalid_api_key")

    def stats(self) -> dict:
        return server_stats(self.counters, self.worker, self.engine, self.collab.upstream)


def create_app(engine, collaboration: Collaboration | None = None, api_key: str | None = None,
               max_body_bytes: int = MAX_BODY_BYTES, max_queue: int = 512, max_batch: int = 8,
               aliases: tuple[str, ...] = ()) -> FastAPI:
    """Build the app around an engine (see slmkit.serve.engine); `api_key` enables bearer auth.

    Requests may name the engine's model or one of `aliases`. Up to `max_batch` waiting requests are
    decoded together (1 turns batching off)."""
    server = Server(engine, collaboration or Collaboration(), api_key, max_body_bytes, max_queue, max_batch, aliases)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if server.collab.upstream is not None:
            await server.collab.upstream.aclose()

    app = FastAPI(title="slmkit", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.server = server
    app.state.engine, app.state.worker, app.state.counters, app.state.collab = (
        engine, server.worker, server.counters, server.collab)
    app.add_exception_handler(ApiError, api_error)
    app.include_router(routes)
    return app


routes = APIRouter()


def server_of(request: Request) -> Server:
    return request.app.state.server


async def api_error(request: Request, err: ApiError) -> JSONResponse:
    server_of(request).counters.failed(err.status)
    return err.response()


@routes.get("/health")
async def health(request: Request):
    """Liveness for anyone; the queue and the counters only for a caller with the key (as /v1/stats)."""
    server = server_of(request)
    alive = {"status": "ok", "model": server.engine.name, "backend": server.engine.backend,
             "uptime_s": round(time.time() - server.started, 1)}
    if not server.authorized(request):
        return alive
    return {**alive, "queue": server.worker.waiting, **server.stats()}


@routes.get("/v1/stats")
async def stats(request: Request):
    server = server_of(request)
    server.check_auth(request)
    return server.stats()


@routes.get("/v1/models")
async def models(request: Request):
    server = server_of(request)
    server.check_auth(request)
    return {"object": "list", "data": [{"id": name, "object": "model", "created": int(server.started),
                                        "owned_by": "slmkit"} for name in server.names]}


@routes.post("/v1/chat/completions")
async def chat_completions(request: Request):
    return await complete(request, ChatRequest)


@routes.post("/v1/completions")
async def completions(request: Request):
    return await complete(request, CompletionRequest)


async def complete(request: Request, kind: type[GenerationRequest]):
    """Validate, route and answer one chat or text completion request."""
    server = server_of(request)
    server.check_auth(request)
    body = await read_json(request, server.max_body_bytes)
    check_model(body, server.names)
    req = parse_request(kind, body)
    engine, ids, params = server.engine, [], None
    if server.dispatcher.reads_prompt:  # a pure proxy never runs the local model: its context does not limit
        ids = engine.chat_ids(req.message_dicts()) if req.chat else engine.text_ids(req.prompt)
        params = sampling_params(req, engine.context_length, len(ids), engine.stop_token_ids)
    server.counters.accepted()
    rid = ("chatcmpl-" if req.chat else "cmpl-") + uuid.uuid4().hex[:24]
    route = await server.dispatcher.route(ids)
    if req.stream and server.dispatcher.streams_locally(route):
        text = TextAssembler(engine, req.stops)
        events = local_events(server, rid, req, server.dispatcher.stream_local(ids, params, text), text, len(ids))
        return StreamingResponse(events, media_type="text/event-stream", headers={"X-Answered-By": "local"})
    answer = await unless_disconnected(request, server.dispatcher.answer(req, ids, params, route))
    if answer is None:  # nobody to answer: the decode was stopped when the client went
        server.counters.failed(CLIENT_GONE)
        return Response(status_code=CLIENT_GONE)
    headers = {"X-Answered-By": answer.route}
    if req.stream:
        return StreamingResponse(replay_events(server, rid, req, answer), media_type="text/event-stream", headers=headers)
    return JSONResponse(answer_body(rid, req.chat, engine.name, answer.text, answer.finish, answer.usage(), answer.route,
                                    answer.tool_calls), headers=headers)


CLIENT_GONE = 499  # the client closed the connection before the answer (nginx's code)
T = TypeVar("T")


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T | None:
    """Await `work`, cancelling it (and so the decode behind it) if the client disconnects first; None then."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(wait_disconnect(request))
    await asyncio.wait((task, gone), return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        gone.cancel()
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def wait_disconnect(request: Request) -> None:
    """Returns when the client has gone (the body is read, so the next ASGI message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def local_events(server: Server, rid: str, req: GenerationRequest, deltas: AsyncIterator[str],
                       text: TextAssembler, prompt_tokens: int) -> AsyncIterator[str]:
    """The SSE stream of a local answer, chunk by chunk as it is decoded."""
    name = server.engine.name
    if req.chat:
        yield sse_chunk(rid, True, name, "local", role=True)
    try:
        async for delta in deltas:
            yield sse_chunk(rid, req.chat, name, "local", delta=delta)
    except ApiError as err:
        yield sse_error(err)
        return
    yield sse_chunk(rid, req.chat, name, "local", finish=text.finish or "length")
    if req.include_usage:
        usage = Answer("", "", prompt_tokens, len(text.ids), "local").usage()
        yield sse_chunk(rid, req.chat, name, "local", usage=usage)
    yield SSE_DONE


async def replay_events(server: Server, rid: str, req: GenerationRequest, answer: Answer) -> AsyncIterator[str]:
    """An answer already complete (upstream, or checked by the cascade), sent as a stream."""
    name, route = server.engine.name, answer.route
    if req.chat:
        yield sse_chunk(rid, True, name, route, role=True)
    if answer.text:
        yield sse_chunk(rid, req.chat, name, route, delta=answer.text)
    if answer.tool_calls:
        yield sse_chunk(rid, req.chat, name, route, tool_calls=answer.tool_calls)
    yield sse_chunk(rid, req.chat, name, route, finish=answer.finish)
    if req.include_usage:
        yield sse_chunk(rid, req.chat, name, route, usage=answer.usage())
    yield SSE_DONE
