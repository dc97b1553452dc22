"""`slm route …`: calibrate a cascade threshold, train a router, train and evaluate the PII tagger."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from slmkit.checks import check_model
from slmkit.cli import app
from slmkit.cli.flags import OVERWRITE, parse_options, with_options
from slmkit.collab.options import CalibrateOptions, RouterOptions, TaggerOptions
from slmkit.data.records import check_text_file, read_records
from slmkit.errors import SlmError
from slmkit.outputs import check_target

route_app = typer.Typer(help="SLM-LLM routing: cascade calibration, router and PII tagger training.", no_args_is_help=True)
app.add_typer(route_app, name="route")


def read_jsonl(path: str) -> list[dict]:
    rows = read_records(path)
    if not rows:
        raise SlmError(f"{path} has no records")
    return rows


def check_route_inputs(model: str, data: str, overwrite: bool, *outputs: tuple[str, str]) -> None:
    """Before any model loads: the model names something, the data file reads, the outputs can be written."""
    check_model("MODEL", model)
    check_text_file(data)
    for option, path in outputs:
        check_target(path, overwrite, option, file=True)


def local_answers(model: str, rows: list[dict], max_tokens: int) -> tuple[list[str], list[list[float]]]:
    """Greedy answers of the local model to each row's prompt and their token log-probs."""
    from slmkit.generation import SamplingParams
    from slmkit.models.loading import load
    from slmkit.progress import progress_bar
    from slmkit.serve.engine import TransformersEngine

    net, tokenizer = load(model)
    engine = TransformersEngine(net, tokenizer, model)
    texts, logprobs = [], []
    with progress_bar("local answers", total=len(rows)) as advance:
        for row in rows:
            ids = engine.chat_ids([{"role": "user", "content": row["prompt"]}])
            params = SamplingParams(max_new_tokens=max_tokens, stop_token_ids=engine.stop_token_ids)
            answer = [t for t in engine.stream(ids, params) if t not in engine.stop_token_ids]
            texts.append(engine.decode(answer))
            logprobs.append(engine.answer_logprobs(ids, answer))
            advance()
    return texts, logprobs


@route_app.command("calibrate")
@with_options(CalibrateOptions)
def calibrate_command(
    model: str = typer.Argument(..., help="The local SLM."),
    data: str = typer.Argument(..., help='JSONL of {"prompt", "answer"} plus "upstream_correct" (bool) or use --upstream.'),
    overwrite: bool = OVERWRITE,
    given: dict = None,
) -> None:
    """Pick the cascade threshold from labelled data and draw the cost-accuracy curve."""
    import asyncio

    from slmkit.collab.cascade import confidence, cost_accuracy_curve, is_correct, pick_threshold, plot_curve

    o = parse_options(CalibrateOptions, given, calibrate_command.flags)
    check_route_inputs(model, data, overwrite, ("--plot", o.plot))
    rows = read_jsonl(data)
    if any("prompt" not in r or "answer" not in r for r in rows):
        raise SlmError(f'every row of {data} needs "prompt" and "answer"')
    if not all("upstream_correct" in r for r in rows) and not o.upstream:
        raise SlmError('rows need "upstream_correct", or pass --upstream URL --upstream-model NAME')
    texts, logprobs = local_answers(model, rows, o.max_tokens)
    if all("upstream_correct" in r for r in rows):
        upstream_ok = [bool(r["upstream_correct"]) for r in rows]
    else:
        from slmkit.collab.client import UpstreamClient

        async def ask_all() -> list[str]:
            client = UpstreamClient(o.upstream, o.upstream_model)
            out = [(await client.chat([{"role": "user", "content": r["prompt"]}], max_tokens=o.max_tokens, temperature=0))
                   ["choices"][0]["message"]["content"] for r in rows]
            await client.aclose()
            return out
        upstream_ok = [is_correct(t, r["answer"]) for t, r in zip(asyncio.run(ask_all()), rows)]
    local_ok = [is_correct(t, r["answer"]) for t, r in zip(texts, rows)]
    curve = cost_accuracy_curve([confidence(lp, o.metric) for lp in logprobs], local_ok, upstream_ok)
    upstream_acc = sum(upstream_ok) / len(rows)
    goal = o.target_accuracy * upstream_acc if (o.relative and o.target_accuracy is not None) else o.target_accuracy
    chosen = pick_threshold(curve, target_accuracy=goal, budget=o.budget)
    plot_curve(curve, o.plot, chosen, title=f"cascade on {Path(data).name}", overwrite=overwrite)
    typer.echo(json.dumps({"threshold": chosen.threshold, "metric": o.metric, "accuracy": chosen.accuracy,
                           "upstream_fraction": chosen.upstream_fraction, "local_accuracy": sum(local_ok) / len(rows),
                           "upstream_accuracy": upstream_acc, "plot": o.plot}, indent=2))
    typer.echo(f"serve with: slm serve {model} --upstream URL --upstream-model NAME --cascade-threshold {chosen.threshold:.4g}"
               f" --cascade-metric {o.metric}", err=True)


@route_app.command("train")
@with_options(RouterOptions, flags={"out": ("--out", "-o")})
def train_command(
    model: str = typer.Argument(..., help="The local SLM (its hidden states embed the prompts)."),
    data: str = typer.Argument(..., help='JSONL of {"prompt", "label": "local"|"upstream"} or {"prompt", "local_correct"}.'),
    overwrite: bool = OVERWRITE,
    given: dict = None,
) -> None:
    """Train the prompt router (logistic regression on the SLM's prompt embedding)."""
    o = parse_options(RouterOptions, given, train_command.flags)
    check_route_inputs(model, data, overwrite, ("--out", o.out))
    import torch

    from slmkit.collab.router import prompt_embedding, train_router
    from slmkit.models.loading import load
    from slmkit.serve.engine import TransformersEngine

    rows = read_jsonl(data)
    labels = []
    for r in rows:
        if r.get("label") in ("local", "upstream"):
            labels.append(float(r["label"] == "upstream"))
        elif "local_correct" in r:
            labels.append(float(not r["local_correct"]))
        else:
            raise SlmError(f'every row of {data} needs "prompt" and "label" (local or upstream) or "local_correct"')
    net, tokenizer = load(model)
    engine = TransformersEngine(net, tokenizer, model)
    embeddings = torch.stack([prompt_embedding(net, torch.tensor([engine.chat_ids([{"role": "user", "content": r["prompt"]}])]))
                              for r in rows])
    router = train_router(embeddings, torch.tensor(labels), epochs=o.epochs, threshold=o.threshold)
    router.save(o.out, overwrite)
    accuracy = ((torch.sigmoid(router(embeddings)) >= o.threshold).float() == torch.tensor(labels)).float().mean().item()
    typer.echo(json.dumps({"router": o.out, "examples": len(rows), "train_accuracy": round(accuracy, 4)}))


@route_app.command("pii-train")
@with_options(TaggerOptions, flags={"out": ("--out", "-o")})
def pii_train_command(
    model: str = typer.Argument(..., help="The SLM whose frozen hidden states feed the tagger (serve the same model)."),
    data: str = typer.Argument(..., help="presidio-style JSON list (full_text, spans, template_id)."),
    overwrite: bool = OVERWRITE,
    given: dict = None,
) -> None:
    """Train the PERSON/ORGANIZATION/ADDRESS/GPE tagger and report precision/recall per type on held-out templates."""
    o = parse_options(TaggerOptions, given, pii_train_command.flags)
    check_route_inputs(model, data, overwrite, ("--out", o.out))
    from slmkit.collab.pii_tagger import evaluate_detector, split_by_template, train_tagger
    from slmkit.collab.privacy import PrivacyProxy
    from slmkit.models.loading import load
    from slmkit.progress import progress_bar

    records = read_records(data)
    train, test = split_by_template(records, o.test_fraction)
    net, tokenizer = load(model)
    with progress_bar("tagger features", total=len(train)) as advance:
        tagger = train_tagger(net, tokenizer, train, epochs=o.epochs, progress=advance)
    tagger.save(o.out, overwrite)
    report = evaluate_detector(PrivacyProxy(tagger).detect, test)
    typer.echo(json.dumps({"tagger": o.out, "train_records": len(train), "test_records": len(test), "per_type": report}, indent=2))
