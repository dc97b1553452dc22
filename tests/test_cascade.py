"""Cascade: confidence, calibration curve, threshold choice, and escalation over real HTTP."""

import math

import httpx
import openai
import pytest
from serving import ServerThread, one_thread, recording_upstream  # noqa: F401 (autouse fixture)
from tiny import save_tiny

from slmkit.collab.cascade import Cascade, confidence, cost_accuracy_curve, is_correct, pick_threshold, plot_curve
from slmkit.collab.client import UpstreamClient, UpstreamError
from slmkit.errors import SlmError
from slmkit.serve.build import build_app


def test_confidence_and_decision():
    assert confidence([-0.1, -0.5], "mean") == pytest.approx(-0.3)
    assert confidence([-0.1, -0.5], "min") == -0.5
    assert confidence([], "mean") == -math.inf
    assert Cascade(-0.2).escalate([-0.1, -0.5]) and not Cascade(-0.4).escalate([-0.1, -0.5])
    with pytest.raises(SlmError):
        confidence([-1.0], "median")


def test_curve_and_threshold_choice(tmp_path):
    conf = [-0.1, -0.2, -0.3, -0.9, -1.5, -2.0]
    local = [True, True, True, False, False, True]
    upstream = [True, True, False, True, True, True]
    curve = cost_accuracy_curve(conf, local, upstream)
    assert curve[0].upstream_fraction == 0 and curve[0].accuracy == pytest.approx(4 / 6)
    assert curve[-1].upstream_fraction == 1 and curve[-1].accuracy == pytest.approx(5 / 6)
    best = pick_threshold(curve, target_accuracy=1.0)  # escalating the two unsure wrong answers gives 6/6
    assert best.accuracy == 1.0 and best.upstream_fraction == pytest.approx(3 / 6)
    within = pick_threshold(curve, budget=0.2)
    assert within.upstream_fraction <= 0.2
    with pytest.raises(SlmError):
        pick_threshold(cost_accuracy_curve(conf, [False] * 6, [False] * 6), target_accuracy=0.5)
    plot_curve(curve, tmp_path / "c.png", best)
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_is_correct():
    assert is_correct("B. Because sunlight", "B") and is_correct("Paris is the capital", "paris")
    assert not is_correct("A", "B") and not is_correct("Bees", "B")


def test_cascade_escalates_only_unsure_answers(tmp_path):
    upstream_app, received = recording_upstream(reply="from the LLM")
    folder = str(save_tiny(tmp_path / "tiny"))
    with ServerThread(upstream_app) as upstream:
        probe = build_app(folder)
        engine = probe.state.engine
        prompts = ["def f(x): return x", "zq zq kw 9 9"]
        scores = []
        from slmkit.generation import SamplingParams
        for p in prompts:
            ids = engine.chat_ids([{"role": "user", "content": p}])
            answer = [t for t in engine.stream(ids, SamplingParams(max_new_tokens=6)) if t not in engine.stop_token_ids]
            scores.append(confidence(engine.answer_logprobs(ids, answer)))
        assert scores[0] != scores[1]
        sure, unsure = (0, 1) if scores[0] > scores[1] else (1, 0)
        threshold = (scores[0] + scores[1]) / 2
        app = build_app(folder, upstream=upstream.url, upstream_model="big", cascade_threshold=threshold, name="tiny")
        with ServerThread(app) as local:
            client = openai.OpenAI(base_url=local.url, api_key="x", max_retries=0)
            answers = {}
            for i in (sure, unsure):
                raw = client.chat.completions.with_raw_response.create(
                    model="tiny", messages=[{"role": "user", "content": prompts[i]}], max_tokens=6, temperature=0)
                answers[i] = (raw.headers["x-answered-by"], raw.parse().choices[0].message.content)
            stream = list(client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": prompts[unsure]}],
                                                         max_tokens=6, temperature=0, stream=True))
            stats = httpx.get(local.url + "/stats").json()
    assert answers[sure][0] == "local" and answers[unsure] == ("upstream", "from the LLM")
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "from the LLM"
    assert len(received) == 2 and received[0]["messages"][0]["content"] == prompts[unsure]
    assert stats["upstream_calls"] == 2 and stats["answered_local"] == 1 and stats["answered_upstream"] == 2
    assert stats["upstream_completion_tokens"] == 14


def test_client_retries_then_succeeds_and_fails_clearly():
    import asyncio

    upstream_app, received = recording_upstream(fail_first=2, reply="ok")
    with ServerThread(upstream_app) as upstream:
        async def go():
            client = UpstreamClient(upstream.url, "big", retries=3, backoff=0.01)
            data = await client.chat([{"role": "user", "content": "hi"}])
            await client.aclose()
            return data
        assert asyncio.run(go())["choices"][0]["message"]["content"] == "ok"
        dead_url = upstream.url
    assert len(received) == 1

    async def dead():
        client = UpstreamClient(dead_url, "big", retries=1, backoff=0.01, timeout=2)
        try:
            await client.chat([{"role": "user", "content": "hi"}])
        finally:
            await client.aclose()
    with pytest.raises(UpstreamError, match="unreachable after 2 tries"):
        asyncio.run(dead())


def test_server_reports_unreachable_upstream_as_502(tmp_path):
    from serving import free_port

    app = build_app(str(save_tiny(tmp_path / "tiny")), upstream=f"http://127.0.0.1:{free_port()}/v1", upstream_model="big",
                    upstream_retries=1)
    with ServerThread(app) as local:
        response = httpx.post(local.url + "/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 502 and "unreachable" in response.json()["error"]["message"]


def test_route_calibrate_command(tmp_path):
    import json

    from typer.testing import CliRunner

    from slmkit.cli import app

    folder = save_tiny(tmp_path / "tiny")
    rows = [{"prompt": f"q{i} def f():", "answer": "zebra", "upstream_correct": i % 4 != 0} for i in range(8)]
    data = tmp_path / "qa.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    plot = tmp_path / "curve.png"
    result = CliRunner().invoke(app, ["route", "calibrate", str(folder), str(data), "--budget", "0.5", "--max-tokens", "3",
                                      "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{"):result.stdout.rindex("}") + 1])
    assert out["upstream_fraction"] <= 0.5 and out["upstream_accuracy"] == 0.75 and plot.is_file()
    assert out["accuracy"] == pytest.approx(out["upstream_fraction"] * 0.75, abs=0.13)  # the local model is never right
    missing = CliRunner().invoke(app, ["route", "calibrate", str(folder), str(tmp_path / "nope.jsonl"), "--budget", "0.5"])
    assert missing.exit_code != 0
