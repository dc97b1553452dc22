"""A small client for any OpenAI-compatible endpoint (the "upstream LLM"): timeouts, retries with back-off, one-line errors."""

from __future__ import annotations

import asyncio
import os

import httpx

from slmkit.errors import SlmError

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
KEY_ENV = "SLMKIT_UPSTREAM_API_KEY"


class UpstreamError(SlmError):
    """The upstream LLM could not be reached or refused the request."""


class UpstreamClient:
    """Chat and text completions against `base_url` (e.g. http://host:8000/v1); key from the argument or $SLMKIT_UPSTREAM_API_KEY."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 60.0,
                 retries: int = 3, backoff: float = 0.5):
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model
        self.retries, self.backoff = retries, backoff
        key = api_key or os.environ.get(KEY_ENV) or os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), headers=headers)
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0

    async def post(self, path: str, body: dict) -> dict:
        """POST with retries on connection errors, timeouts, 429 and 5xx; exponential back-off between tries."""
        url = f"{self.base_url}{path}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = await self.http.post(url, json=body)
            except httpx.TransportError as err:  # refused, reset, DNS, timeouts
                last = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
                continue
            if response.status_code in RETRYABLE_STATUS:
                last = f"HTTP {response.status_code}"
                continue
            if response.status_code >= 400:
                raise UpstreamError(f"upstream {url} refused the request: HTTP {response.status_code} {response.text[:200]}")
            data = response.json()
            self.calls += 1
            usage = data.get("usage") or {}
            self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.completion_tokens += int(usage.get("completion_tokens") or 0)
            return data
        raise UpstreamError(f"upstream {url} unreachable after {self.retries + 1} tries ({last})")

    async def create(self, chat: bool, body: dict) -> dict:
        """A chat completion (`body` has "messages") or a text completion ("prompt"), as the upstream's model."""
        return await self.post("/chat/completions" if chat else "/completions", {**body, "model": self.model})

    async def chat(self, messages: list[dict], **params) -> dict:
        return await self.create(True, {"messages": messages, **params})

    async def complete(self, prompt: str, **params) -> dict:
        return await self.create(False, {"prompt": prompt, **params})

    def stats(self) -> dict:
        return {"upstream_calls": self.calls, "upstream_prompt_tokens": self.prompt_tokens,
                "upstream_completion_tokens": self.completion_tokens}

    async def aclose(self) -> None:
        await self.http.aclose()
