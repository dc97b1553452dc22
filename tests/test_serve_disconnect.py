"""A client that leaves stops the decoding done for it, whether it waited for the whole answer or streamed it."""

import time

import httpx
import pytest
from serving import ServerThread, one_thread  # noqa: F401 (autouse fixture)
from tiny import tiny_model, tiny_tokenizer

from slmkit.serve.app import create_app
from slmkit.serve.engine import TransformersEngine

STEP_S = 0.02
MAX_TOKENS = 200  # 4 s of decoding at STEP_S per token, if nobody stopped it


class SlowEngine(TransformersEngine):
    """The tiny model, a fixed pause per decode step, no stop token: an answer runs to max_tokens unless stopped."""

    def __init__(self):
        super().__init__(tiny_model("llama", seed=1), tiny_tokenizer(), "tiny")
        self.stop_token_ids = ()
        self.steps = 0

    def batch_decoder(self, prompts, params):
        decoder = super().batch_decoder(prompts, params)
        step = decoder.step

        def slow_step():
            time.sleep(STEP_S)
            self.steps += 1
            return step()

        decoder.step = slow_step
        return decoder


@pytest.fixture
def slow_server():
    engine = SlowEngine()
    with ServerThread(create_app(engine)) as server:
        yield server, engine


def settle(engine, worker, timeout: float = 3.0) -> int:
    """Decode steps taken once the worker has stopped (or `timeout` passed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (worker.active or worker.waiting):
        time.sleep(0.02)
    time.sleep(5 * STEP_S)
    return engine.steps


def test_decoding_stops_when_a_waiting_client_disconnects(slow_server):
    server, engine = slow_server
    worker = server.server.config.app.state.worker
    body = {"model": "tiny", "prompt": "def f(x):", "max_tokens": MAX_TOKENS, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/completions", json=body, timeout=httpx.Timeout(10, read=0.4))
    steps = settle(engine, worker)
    assert 0 < steps < MAX_TOKENS // 4, steps
    assert not worker.active and not worker.waiting
    done = httpx.post(server.url + "/completions", json={**body, "max_tokens": 3}, timeout=10).json()
    assert done["usage"]["completion_tokens"] == 3  # the server still answers the next client


def test_decoding_stops_when_a_stream_is_closed(slow_server):
    server, engine = slow_server
    worker = server.server.config.app.state.worker
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": MAX_TOKENS, "stream": True}
    with httpx.stream("POST", server.url + "/chat/completions", json=body, timeout=10) as response:
        events = response.iter_lines()
        got = [line for line, _ in zip(events, range(6)) if line.startswith("data:")]
    assert len(got) >= 2
    steps = settle(engine, worker)
    assert 0 < steps < MAX_TOKENS // 4, steps
    assert not worker.active and not worker.waiting
