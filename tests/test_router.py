"""Router: logistic regression on the SLM's prompt embedding; save/load; routing over real HTTP; `slm route train`."""

import json

import openai
import pytest
import torch
from serving import ServerThread, one_thread, recording_upstream  # noqa: F401 (autouse fixture)
from tiny import save_tiny, tiny_model, tiny_tokenizer

from slmkit.collab.router import Router, prompt_embedding, train_router
from slmkit.errors import SlmError
from slmkit.serve.build import build_app

EASY = [f"hello {w}" for w in ["there", "friend", "you", "all", "world", "again", "team", "folks"]]
HARD = [f"def {w}(x, y): return x ** y % 7" for w in ["f", "g", "power", "mod", "calc", "run", "go", "step"]]


def embed_all(model, tok, prompts):
    return torch.stack([prompt_embedding(model, torch.tensor([tok(p)["input_ids"]])) for p in prompts])


def test_router_separates_constructed_easy_and_hard_prompts(tmp_path):
    model, tok = tiny_model("llama"), tiny_tokenizer()
    x = embed_all(model, tok, EASY[:6] + HARD[:6])
    y = torch.tensor([0.0] * 6 + [1.0] * 6)
    router = train_router(x, y, epochs=200)
    held_out = embed_all(model, tok, EASY[6:] + HARD[6:])
    assert [router.route(e) for e in held_out] == ["local", "local", "upstream", "upstream"]
    router.save(tmp_path / "r.pt")
    again = Router.load(tmp_path / "r.pt")
    assert torch.allclose(again(held_out), router(held_out))
    with pytest.raises(SlmError):
        Router.load(tmp_path / "missing.pt")


def test_route_train_cli_and_server_routes_before_generation(tmp_path):
    from typer.testing import CliRunner

    from slmkit.cli import app

    folder = save_tiny(tmp_path / "tiny")
    data = tmp_path / "labels.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": p, "label": lab}) for ps, lab in [(EASY[:6], "local"), (HARD[:6], "upstream")]
                              for p in ps))
    result = CliRunner().invoke(app, ["route", "train", str(folder), str(data), "--out", str(tmp_path / "router.pt")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["train_accuracy"] == 1.0
    upstream_app, received = recording_upstream(reply="LLM answer")
    with ServerThread(upstream_app) as upstream:
        app_ = build_app(str(folder), upstream=upstream.url, upstream_model="big", router=str(tmp_path / "router.pt"),
                         name="tiny")
        with ServerThread(app_) as local:
            client = openai.OpenAI(base_url=local.url, api_key="x", max_retries=0)
            who = []
            for p in (EASY[7], HARD[7]):
                reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": p}], max_tokens=4)
                who.append(reply.model_extra["answered_by"])
    assert who == ["local", "upstream"]
    assert [r["messages"][0]["content"] for r in received] == [HARD[7]]
