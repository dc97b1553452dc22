"""`slm eval` (perplexity, zero-shot tasks, trust evaluations) and `slm profile` (size and speed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

import typer
from rich.console import Console
from rich.table import Table

from slmkit.checks import DTYPE_NAMES, check_model, check_tokens
from slmkit.cli import app
from slmkit.cli.flags import OVERWRITE
from slmkit.errors import SlmError
from slmkit.evaluate.trust import SUITES
from slmkit.outputs import check_target

BACKENDS = ("transformers", "llama.cpp")
BACKEND = typer.Option("transformers", "--backend", help="Run the model in transformers, or a GGUF file in llama.cpp.")


@app.command("eval")
def eval_command(
    model: str = typer.Argument(..., help="Embedded name, HF folder, .gguf file or hub id."),
    ppl: Optional[str] = typer.Option(None, "--ppl", help="Perplexity data: a text file, pydoc, JSON/JSONL, or hf:NAME."),
    tasks: Optional[str] = typer.Option(None, "--tasks", help="Zero-shot tasks NAME=PATH[,NAME=PATH…] (JSONL files or hf:NAME)."),
    trust: Optional[str] = typer.Option(None, "--trust", help=f"Trust evaluations, comma-separated: {','.join(SUITES)}."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use only the first N examples of each task and trust set."),
    trust_data: Optional[str] = typer.Option(None, "--trust-data", help="Folder of the trust data sets (default: ../shared/data)."),
    out: Optional[str] = typer.Option(None, "--out", help="Write results.json (and slmkit.json) to this folder for `slm report`."),
    profile: bool = typer.Option(False, "--profile", help="Also measure size and speed (fresh process) for the report."),
    seqlen: int = typer.Option(2048, "--seqlen", help="Perplexity window length in tokens (at most the model's context)."),
    max_windows: Optional[int] = typer.Option(None, "--max-windows", min=1, help="Score only the first K windows."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Windows per forward (default: fit 512 MiB of logits)."),
    dtype: Literal[DTYPE_NAMES] = typer.Option("float32", "--dtype"),
    backend: Literal[BACKENDS] = BACKEND,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Evaluate a model: perplexity (GPTQ/SparseGPT/Wanda protocol), zero-shot tasks and trust evaluations."""
    from slmkit.data.corpus import check_source
    from slmkit.data.shared import shared_data_dir
    from slmkit.evaluate.suite import check_trust
    from slmkit.evaluate.tasks import parse_task_specs
    from slmkit.models.source import resolve_model
    from slmkit.recipe import check_task_file

    task_files = parse_task_specs(tasks) if tasks else {}
    for path in task_files.values():
        check_task_file(path)
    trust_names = check_trust([t.strip() for t in trust.split(",") if t.strip()]) if trust else []
    if ppl is None and not task_files and not trust_names:
        raise SlmError("nothing to evaluate: pass --ppl FILE|pydoc, --tasks NAME=PATH or --trust NAMES")
    if ppl:
        check_source(ppl, "--ppl")
        check_tokens("--seqlen", seqlen, model)
    else:
        resolve_model(model)
    if trust_names and not shared_data_dir(trust_data).is_dir():
        raise SlmError(f"--trust-data: folder not found: {shared_data_dir(trust_data)}")
    if out:
        check_target(out, overwrite)
    if backend == "llama.cpp":
        payload, net = eval_llamacpp(model, ppl, task_files, trust_names, out, limit, seqlen, max_windows, as_json), None
    else:
        payload, net = eval_transformers(model, dtype, ppl, task_files, trust_names, limit, trust_data, seqlen, max_windows,
                                         batch_size, as_json)
    if out:
        write_eval_output(out, model, net, payload, profile, dtype, overwrite)
    if as_json:
        typer.echo(json.dumps(payload))
        return
    if ppl:
        typer.echo(f"perplexity {payload['perplexity']:.4f} over {payload['windows']} windows × {seqlen} tokens "
                   f"({payload['tokens']} tokens, {payload['seconds']:.1f} s)")
    print_suite(payload)


def eval_transformers(model: str, dtype: str, ppl, task_files: dict, trust_names: list, limit, trust_data, seqlen: int,
                      max_windows, batch_size, as_json: bool):
    """(payload, model) of `slm eval` in transformers."""
    from slmkit.evaluate.suite import evaluate_suite
    from slmkit.models.loading import load

    net, tokenizer = load(model, dtype)
    payload: dict = {"model": model}
    if ppl:
        from slmkit.evaluate.perplexity import perplexity

        result = perplexity(net, tokenizer, ppl, seqlen, max_windows, batch_size, show_progress=not as_json)
        payload.update(data=ppl, **result.to_dict())
    if task_files or trust_names:
        payload.update(evaluate_suite(net, tokenizer, task_files, trust_names, limit, trust_data, show_progress=not as_json))
    return payload, net


def eval_llamacpp(model: str, ppl, task_files: dict, trust_names: list, out, limit, seqlen: int, max_windows,
                  as_json: bool) -> dict:
    """`slm eval --backend llama.cpp`: perplexity and zero-shot tasks from llama.cpp's logits, same tokens as transformers."""
    from slmkit.evaluate.llamacpp import LlamaCppModel, gguf_tokenizer, perplexity_llamacpp
    from slmkit.models.source import gguf_file

    if trust_names or out:
        raise SlmError(f"--backend llama.cpp computes --ppl and --tasks only, not {'--trust' if trust_names else '--out'}")
    path, _ = gguf_file(model)
    tokenizer = gguf_tokenizer(path)
    payload: dict = {"model": model, "backend": "llama.cpp"}
    if ppl:
        from slmkit.evaluate.perplexity import tokenize_corpus

        result = perplexity_llamacpp(path, tokenize_corpus(tokenizer, ppl), seqlen, max_windows, show_progress=not as_json)
        payload.update(data=ppl, **result.to_dict())
    if task_files:
        from slmkit.evaluate.suite import evaluate_suite

        payload.update(evaluate_suite(LlamaCppModel(path), tokenizer, task_files, [], limit, show_progress=not as_json))
    return payload


def write_eval_output(out: str, model: str, net, payload: dict, profile: bool, dtype: str, overwrite: bool) -> None:
    """DIR/results.json (the --json payload) and DIR/slmkit.json (what `slm report` reads)."""
    from slmkit.evaluate.profile import count_parameters, measure_in_subprocess, tensor_bytes
    from slmkit.models.saving import read_manifest, write_manifest
    from slmkit.outputs import atomic_folder

    params, nonzero = count_parameters(net)
    metrics = {k: payload[k] for k in ("tasks", "trust") if k in payload}
    if "perplexity" in payload:
        metrics["perplexity"] = {k: payload[k] for k in ("perplexity", "nll", "tokens", "windows", "seqlen", "seconds")}
    metrics["size"] = {"parameters": params, "nonzero_parameters": nonzero, "bytes_in_memory": tensor_bytes(net)}
    if profile:
        metrics["profile"] = measure_in_subprocess(model, prompt_tokens=256, decode_tokens=32, repeats=3, dtype=dtype).to_dict()
    with atomic_folder(out, overwrite) as tmp:
        (tmp / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
        saved = read_manifest(model) if Path(model).is_dir() else {}
        parent = saved.get("source")  # a compressed model's dense parent
        origin = saved.get("origin") or ("pretrained" if not parent else None)
        write_manifest(tmp, {"kind": "eval", "source": model, "parent": parent, "origin": origin, "metrics": metrics})


def print_suite(payload: dict) -> None:
    console = Console()
    if payload.get("tasks"):
        table = Table(title="zero-shot tasks")
        for col in ("task", "n", "acc", "± stderr", "acc_norm", "± stderr", "perplexity", "seconds"):
            table.add_column(col, justify="left" if col == "task" else "right")
        for name, m in payload["tasks"].items():
            norm = m.get("acc_norm")
            table.add_row(name, str(m["n"]), f"{m['acc']:.4f}", f"{m['acc_stderr']:.4f}",
                          "–" if norm is None else f"{norm:.4f}", "–" if norm is None else f"{m['acc_norm_stderr']:.4f}",
                          f"{m['perplexity']:.3f}" if "perplexity" in m else "–", f"{m['seconds']:.1f}")
        console.print(table)
    for suite, result in (payload.get("trust") or {}).items():
        console.print(f"[bold]{suite}[/bold]: {json.dumps(result)}")


@app.command("profile")
def profile_command(
    model: str = typer.Argument(..., help="Model to profile."),
    baseline: Optional[str] = typer.Option(
        None, "--baseline", help="Also profile this model and report ratios (default: the source named in MODEL's slmkit.json)."
    ),
    no_baseline: bool = typer.Option(False, "--no-baseline", help="Profile MODEL alone."),
    prompt_tokens: int = typer.Option(512, "--prompt-tokens", min=1),
    decode_tokens: int = typer.Option(128, "--decode-tokens", min=1),
    repeats: int = typer.Option(5, "--repeats", min=1),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Default: physical cores."),
    dtype: Literal[DTYPE_NAMES] = typer.Option("float32", "--dtype", help="Dtype of MODEL's float parts (activations, embeddings, norms)."),
    baseline_dtype: Optional[Literal[DTYPE_NAMES]] = typer.Option(None, "--baseline-dtype", help="Dtype of the baseline (default: --dtype)."),
    backend: Literal[BACKENDS] = BACKEND,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Measure parameters, bytes, peak memory, prefill and decode tokens/s (each in a fresh process).
    With --backend llama.cpp: a GGUF file's size, peak RSS and speeds in llama.cpp, the baseline exported to F16 GGUF."""
    from dataclasses import fields

    from slmkit.evaluate.profile import compare, measure_in_subprocess
    from slmkit.models.saving import read_manifest

    kwargs = dict(prompt_tokens=prompt_tokens, decode_tokens=decode_tokens, repeats=repeats, threads=threads)
    if no_baseline:
        baseline = None
    elif baseline is None and Path(model).is_dir():
        baseline = read_manifest(model).get("source")
    for option, spec in (("MODEL", model), ("--baseline", baseline)):
        if spec:
            check_model(option, spec)
            check_tokens("--prompt-tokens + --decode-tokens", prompt_tokens + decode_tokens, spec)
    if backend == "llama.cpp":
        profiles = profile_llamacpp(model, baseline, kwargs)
    else:
        profiles = {"model": measure_in_subprocess(model, **kwargs, dtype=dtype)}
        if baseline:
            profiles["baseline"] = measure_in_subprocess(baseline, **kwargs, dtype=baseline_dtype or dtype)
    payload = {k: v.to_dict() for k, v in profiles.items()}
    if baseline:
        payload["ratios"] = compare(profiles["baseline"], profiles["model"])
    if as_json:
        typer.echo(json.dumps(payload))
        return
    table = Table(title=f"efficiency profile ({backend})")
    table.add_column("metric")
    for name in profiles:
        table.add_column(name, justify="right")
    if baseline:
        table.add_column("model/baseline", justify="right")
    for field in (f.name for f in fields(profiles["model"]) if "label" in f.metadata):
        cells = [f"{getattr(p, field):,.0f}" if isinstance(getattr(p, field), int) else f"{getattr(p, field):,.2f}"
                 for p in profiles.values()]
        if baseline:
            cells.append(f"{payload['ratios'][field]:.3f}×")
        table.add_row(field, *cells)
    Console().print(table)


def profile_llamacpp(model: str, baseline: str | None, kwargs: dict) -> dict:
    """The GGUF file and (if given) its baseline as an F16 GGUF export, each measured in llama.cpp in a fresh process."""
    from slmkit.evaluate.llamacpp_profile import dense_gguf, measure_llamacpp_in_subprocess
    from slmkit.models.source import gguf_file

    path, _ = gguf_file(model)
    profiles = {"model": measure_llamacpp_in_subprocess(str(path), **kwargs)}
    if baseline:
        profiles["baseline"] = measure_llamacpp_in_subprocess(str(dense_gguf(baseline, "F16")), **kwargs)
    return profiles
