"""The OpenAI-compatible server over real HTTP, driven by the official openai client."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import openai
import pytest
from serving import ServerThread, free_port, one_thread, wait_http  # noqa: F401 (autouse fixture)
from tiny import save_tiny

from slmkit.serve.build import build_app

KEY = "sk-test-key"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("serve") / "tiny")


@pytest.fixture(scope="module")
def server(tiny_dir):
    with ServerThread(build_app(str(tiny_dir), api_key=KEY, name=["tiny", "tiny-alias"])) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0, timeout=60)


def test_models_and_health(client, server):
    assert [m.id for m in client.models.list().data] == ["tiny", "tiny-alias"]
    health = httpx.get(server.base + "/health").json()
    assert health == {"status": "ok", "model": "tiny", "backend": "transformers", "uptime_s": health["uptime_s"]}
    full = httpx.get(server.base + "/health", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert full["status"] == "ok" and {"queue", "requests", "completion_tokens", "errors"} <= set(full)


def test_model_names_max_tokens_and_n(client, server):
    assert client.completions.create(model="tiny-alias", prompt="x", max_tokens=2).usage.completion_tokens >= 1
    with pytest.raises(openai.NotFoundError) as err:
        client.completions.create(model="gpt-4o", prompt="x", max_tokens=2)
    assert err.value.code == "model_not_found" and err.value.body["type"] == "invalid_request_error"
    for field in ("max_tokens", "max_completion_tokens"):
        for bad in (0, -3, 1.5):
            with pytest.raises(openai.BadRequestError) as err:
                client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], **{field: bad})
            assert err.value.param == field, (field, bad)
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="tiny", prompt="x", max_tokens=2, n=2)
    assert err.value.param == "n" and "n=1" in err.value.message
    assert len(client.completions.create(model="tiny", prompt="x", max_tokens=2, n=1).choices) == 1


def test_message_shapes(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny", messages=[{"role": "bot", "content": "hi"}], max_tokens=2)
    assert err.value.param == "messages" and "role" in err.value.message
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": None}], max_tokens=2)
    parts = client.chat.completions.create(model="tiny", max_tokens=4, temperature=0, messages=[
        {"role": "user", "content": [{"type": "text", "text": "def "}, {"type": "text", "text": "f(x):"}]}])
    plain = client.chat.completions.create(model="tiny", max_tokens=4, temperature=0,
                                           messages=[{"role": "user", "content": "def f(x):"}])
    assert parts.choices[0].message.content == plain.choices[0].message.content
    calls = client.chat.completions.create(model="tiny", max_tokens=2, messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}])
    assert calls.usage.completion_tokens >= 1


def test_chat_and_completion_with_usage(client, server):
    engine = server.server.config.app.state.engine
    chat = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "def f(x):"}],
                                          max_tokens=12, temperature=0)
    text = chat.choices[0].message.content
    assert isinstance(text, str) and chat.choices[0].finish_reason in ("stop", "length")
    assert chat.usage.prompt_tokens == len(engine.chat_ids([{"role": "user", "content": "def f(x):"}]))
    assert 1 <= chat.usage.completion_tokens <= 12
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens
    assert chat.model_extra["answered_by"] == "local"
    done = client.completions.create(model="tiny", prompt="The quick brown", max_tokens=10, temperature=0)
    assert done.usage.prompt_tokens == len(engine.text_ids("The quick brown"))
    assert done.choices[0].text == engine.decode(done_ids(engine, "The quick brown", 10))


def done_ids(engine, prompt, n):
    from slmkit.generation import SamplingParams

    ids = list(engine.stream(engine.text_ids(prompt), SamplingParams(max_new_tokens=n, stop_token_ids=engine.stop_token_ids)))
    return [t for t in ids if t not in engine.stop_token_ids]


def test_streaming_matches_non_streaming(client):
    kwargs = dict(model="tiny", messages=[{"role": "user", "content": "import os"}], max_tokens=16, temperature=0)
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))
    assert len(chunks) >= 3
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    text = "".join(c.choices[0].text for c in client.completions.create(model="tiny", prompt="import os", max_tokens=8,
                                                                        temperature=0, stream=True))
    assert text == client.completions.create(model="tiny", prompt="import os", max_tokens=8, temperature=0).choices[0].text


def test_seed_and_stop(client):
    kwargs = dict(model="tiny", prompt="class A:", max_tokens=20, temperature=1.0, top_p=0.9)
    a = client.completions.create(seed=7, **kwargs).choices[0].text
    b = client.completions.create(seed=7, **kwargs).choices[0].text
    assert a == b
    greedy = client.completions.create(model="tiny", prompt="class A:", max_tokens=20, temperature=0).choices[0].text
    assert len(greedy) > 4
    stop = greedy[3:5]
    cut = client.completions.create(model="tiny", prompt="class A:", max_tokens=20, temperature=0, stop=[stop]).choices[0]
    assert cut.text == greedy[: greedy.find(stop)] and cut.finish_reason == "stop"


def test_auth_refusals(server):
    bad = openai.OpenAI(base_url=server.url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    response = httpx.post(server.url + "/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


def test_bad_requests_get_openai_errors(client, server):
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="tiny", prompt="word " * 400, max_tokens=5)
    assert err.value.code == "context_length_exceeded"
    big = json.dumps({"prompt": "x" * (1 << 20) + "y"})
    response = httpx.post(server.url + "/completions", content=big, headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 400 and "exceeds" in response.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tiny", messages=[], max_tokens=5)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt="hi", temperature=5)


def test_concurrent_requests_all_get_their_own_answer(client, server):
    engine = server.server.config.app.state.engine
    errors, texts = [], {}

    def worker(i):
        try:
            kwargs = dict(model="tiny", prompt=f"x = {i}", max_tokens=4, temperature=0)
            texts[i, "whole"] = client.completions.create(**kwargs).choices[0].text
            texts[i, "stream"] = "".join(c.choices[0].text for c in client.completions.create(stream=True, **kwargs))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(texts) == 16
    assert all(text == engine.decode(done_ids(engine, f"x = {i}", 4)) for (i, _), text in texts.items())
    health = httpx.get(server.base + "/health", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert health["queue"] == 0 and health["max_batch"] == 8 and health["decode_batches"] >= 1


def test_slm_serve_command_in_subprocess(tiny_dir):
    port = free_port()
    env = {**os.environ, "SLMKIT_API_KEY": "env-key", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "slmkit.cli", "serve", str(tiny_dir), "--port", str(port), "--name", "t"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="env-key", max_retries=0)
        reply = client.chat.completions.create(model="t", messages=[{"role": "user", "content": "hello"}], max_tokens=4)
        assert reply.usage.completion_tokens >= 1
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="nope", max_retries=0).models.list()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
