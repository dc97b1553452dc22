"""Helpers for the HTTP tests: run an app on a free loopback port in a thread, and a recording upstream."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """uvicorn serving `app` on 127.0.0.1 in a daemon thread; `url` is the /v1 base."""

    def __init__(self, app):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base + "/v1"

    def __enter__(self):
        self.thread.start()
        for _ in range(200):  # bounded: 20 s
            if self.server.started:
                return self
            time.sleep(0.1)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


def wait_http(url: str, tries: int = 300, pause: float = 0.2) -> None:
    for _ in range(tries):
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(pause)
    raise RuntimeError(f"{url} never answered")


def recording_upstream(fail_first: int = 0, reply: str | None = None) -> tuple[FastAPI, list[dict]]:
    """A minimal OpenAI-compatible LLM that records request bodies and echoes the last message (or `reply`)."""
    app = FastAPI()
    received: list[dict] = []
    failures = {"left": fail_first}

    async def answer(request: Request, chat: bool):
        body = await request.json()
        if failures["left"] > 0:
            failures["left"] -= 1
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        received.append(body)
        text = reply if reply is not None else ("echo: " + (body["messages"][-1]["content"] if chat else body["prompt"]))
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"} if chat
                  else {"index": 0, "text": text, "finish_reason": "stop"})
        return {"id": "up-1", "object": "chat.completion" if chat else "text_completion", "created": 0,
                "model": body.get("model"), "choices": [choice], "usage": usage}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await answer(request, True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await answer(request, False)

    return app, received


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run far faster on one intra-op thread when the cores are shared with other jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
