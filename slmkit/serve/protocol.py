"""The OpenAI wire format: request models, error bodies, and the bodies of answers and stream chunks."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, ClassVar, Literal

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr, ValidationError, field_validator, model_validator

from slmkit.generation import SamplingParams

MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_TOKENS = 256


class ApiError(Exception):
    """An error answered with OpenAI's body {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


async def read_json(request: Request, max_bytes: int = MAX_BODY_BYTES) -> dict:
    """The request body as a JSON object, refused once it grows past `max_bytes`."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(400, f"request body of {declared} bytes exceeds the limit of {max_bytes} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_bytes:
            raise ApiError(400, f"request body exceeds the limit of {max_bytes} bytes")
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


Number = Annotated[float, Field(strict=True)]


class TextPart(BaseModel):
    type: Literal["text"]
    text: StrictStr


class FunctionCall(BaseModel):
    name: StrictStr
    arguments: StrictStr  # JSON text, as OpenAI sends it


class ToolCall(BaseModel):
    id: StrictStr
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(BaseModel):
    """One chat message: text content (a string or text parts), or an assistant's tool calls."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: StrictStr | list[TextPart] | None = None
    name: StrictStr | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: StrictStr | None = None

    @model_validator(mode="after")
    def _has_content(self):
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError("content is required (only an assistant message with tool_calls may omit it)")
        return self

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ToolFunction(BaseModel):
    name: StrictStr
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None


class Tool(BaseModel):
    type: Literal["function"] = "function"
    function: ToolFunction


class StreamOptions(BaseModel):
    include_usage: StrictBool = False


class GenerationRequest(BaseModel):
    """The fields chat and text completions share; unknown fields are ignored."""

    model: StrictStr | None = None
    max_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    temperature: Annotated[Number, Field(ge=0, le=2)] = 1.0
    top_p: Annotated[Number, Field(gt=0, le=1)] = 1.0
    seed: StrictInt | None = None
    stop: StrictStr | list[StrictStr] | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    n: StrictInt = 1
    user: StrictStr | None = None
    metadata: dict[StrictStr, StrictStr] | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n):
        if n != 1:
            raise ValueError("only n=1 is supported: send the request n times for n answers")
        return n

    @field_validator("stop")
    @classmethod
    def _stops(cls, stop):
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        if len(stops) > 4 or not all(stops):
            raise ValueError("stop must be a string or a list of up to 4 non-empty strings")
        return stops

    @property
    def stops(self) -> list[str]:
        return self.stop or []

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def upstream_body(self, stop: bool = True) -> dict:
        """What the upstream LLM receives: every field the client set except those the server handles itself
        (model, streaming, n), and without `stop` when the server applies the stops to the answer itself."""
        local = {"model", "stream", "stream_options", "n"} | (set() if stop else {"stop"})
        return self.model_dump(exclude=local, exclude_unset=True, exclude_none=True)


class ChatRequest(GenerationRequest):
    chat: ClassVar[bool] = True
    messages: Annotated[list[Message], Field(min_length=1)]
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None

    def message_dicts(self) -> list[dict]:
        """The messages as the local chat template reads them (tools are the upstream's business)."""
        return [{"role": m.role, "content": m.text} for m in self.messages]


class CompletionRequest(GenerationRequest):
    chat: ClassVar[bool] = False
    prompt: StrictStr | Annotated[list[StrictStr], Field(min_length=1, max_length=1)]

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, prompt):
        return prompt if isinstance(prompt, str) else prompt[0]


FIELD_HELP = {
    "max_tokens": "max_tokens must be a positive integer",
    "max_completion_tokens": "max_completion_tokens must be a positive integer",
    "prompt": "prompt must be a string (one prompt per request)",
}


def check_model(body: dict, names: tuple[str, ...]) -> None:
    """A request naming a model this server does not serve gets OpenAI's 404 `model_not_found` (no name: the served one)."""
    model = body.get("model")
    if isinstance(model, str) and model not in names:
        raise ApiError(404, f"The model `{model}` does not exist or you do not have access to it.",
                       code="model_not_found")


def parse_request(model: type[GenerationRequest], body: dict) -> GenerationRequest:
    """Validate a request body; the first problem becomes a 400 naming the field."""
    try:
        return model.model_validate(body)
    except ValidationError as err:
        first = err.errors()[0]
        param = str(first["loc"][0]) if first["loc"] else None
        where = ".".join(str(part) for part in first["loc"])
        message = FIELD_HELP.get(param) or f"{where}: {first['msg'].removeprefix('Value error, ')}"
        raise ApiError(400, message, param=param) from None


def sampling_params(request: GenerationRequest, context_length: int, prompt_len: int,
                    stop_token_ids: tuple[int, ...]) -> SamplingParams:
    """Decoding settings for a request, `max_tokens` clipped to the context left after the prompt."""
    room = context_length - prompt_len
    if room <= 0:
        raise ApiError(400, f"This model's maximum context length is {context_length} tokens; "
                            f"the prompt has {prompt_len} tokens.", code="context_length_exceeded", param="messages")
    asked = request.max_completion_tokens if request.max_completion_tokens is not None else request.max_tokens
    max_tokens = asked if asked is not None else DEFAULT_MAX_TOKENS
    return SamplingParams(max_new_tokens=min(max_tokens, room), temperature=float(request.temperature),
                          top_p=float(request.top_p), seed=request.seed, stop_token_ids=stop_token_ids)


def answer_body(rid: str, chat: bool, model: str, text: str, finish: str, usage: dict, answered_by: str,
                tool_calls: list | None = None) -> dict:
    """A complete chat.completion or text_completion object."""
    message = {"role": "assistant", "content": text, **({"tool_calls": tool_calls} if tool_calls else {})}
    choice = ({"index": 0, "message": message, "finish_reason": finish} if chat
              else {"index": 0, "text": text, "finish_reason": finish, "logprobs": None})
    return {"id": rid, "object": "chat.completion" if chat else "text_completion", "created": int(time.time()),
            "model": model, "choices": [choice], "usage": usage, "answered_by": answered_by}


def sse_chunk(rid: str, chat: bool, model: str, answered_by: str, delta: str | None = None, finish: str | None = None,
              role: bool = False, usage: dict | None = None, tool_calls: list | None = None) -> str:
    """One server-sent event of a stream: a text delta, the opening role, tool calls, the finish reason, or the usage."""
    if chat:
        d = {"role": "assistant", "content": ""} if role else ({"content": delta} if delta else {})
        if tool_calls:
            d = {"tool_calls": [{"index": i, **call} for i, call in enumerate(tool_calls)]}
        choice = {"index": 0, "delta": d, "finish_reason": finish}
    else:
        choice = {"index": 0, "text": delta or "", "finish_reason": finish, "logprobs": None}
    payload = {"id": rid, "object": "chat.completion.chunk" if chat else "text_completion", "created": int(time.time()),
               "model": model, "choices": [] if usage is not None else [choice], "answered_by": answered_by}
    if usage is not None:
        payload["usage"] = usage
    return f"data: {json.dumps(payload)}\n\n"


def sse_error(err: ApiError) -> str:
    return f"data: {json.dumps({'error': {'message': err.message, 'type': err.type}})}\n\n"


SSE_DONE = "data: [DONE]\n\n"
