"""`slm eval` (perplexity and, later, tasks) and `slm profile` (size and speed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from slmkit.cli import app
from slmkit.errors import SlmError


@app.command("eval")
def eval_command(
    model: str = typer.Argument(..., help="Embedded name, HF folder, .gguf file or hub id."),
    ppl: Optional[str] = typer.Option(None, "--ppl", help="Perplexity data: a text file, pydoc, JSON/JSONL, or hf:NAME."),
    seqlen: int = typer.Option(2048, "--seqlen", help="Window length in tokens."),
    max_windows: Optional[int] = typer.Option(None, "--max-windows", help="Score only the first K windows."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Windows per forward (default: fit 512 MiB of logits)."),
    dtype: str = typer.Option("float32", "--dtype"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Evaluate a model: perplexity under the GPTQ/SparseGPT/Wanda protocol."""
    from slmkit.data.corpus import check_source
    from slmkit.evaluate.perplexity import perplexity
    from slmkit.models.loading import load
    from slmkit.models.source import resolve_model

    if ppl is None:
        raise SlmError("nothing to evaluate: pass --ppl FILE|pydoc")
    resolve_model(model)
    check_source(ppl)
    net, tokenizer = load(model, dtype)
    result = perplexity(net, tokenizer, ppl, seqlen, max_windows, batch_size, show_progress=not as_json)
    payload = {"model": model, "data": ppl, **result.to_dict()}
    if as_json:
        typer.echo(json.dumps(payload))
    else:
        typer.echo(f"perplexity {result.perplexity:.4f} over {result.windows} windows × {seqlen} tokens "
                   f"({result.tokens} tokens, {result.seconds:.1f} s)")


@app.command("profile")
def profile_command(
    model: str = typer.Argument(..., help="Model to profile."),
    baseline: Optional[str] = typer.Option(
        None, "--baseline", help="Also profile this model and report ratios (default: the source named in MODEL's slmkit.json)."
    ),
    no_baseline: bool = typer.Option(False, "--no-baseline", help="Profile MODEL alone."),
    prompt_tokens: int = typer.Option(512, "--prompt-tokens"),
    decode_tokens: int = typer.Option(128, "--decode-tokens"),
    repeats: int = typer.Option(5, "--repeats"),
    threads: Optional[int] = typer.Option(None, "--threads", help="Default: physical cores."),
    dtype: str = typer.Option("float32", "--dtype"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Measure parameters, bytes, peak memory, prefill and decode tokens/s (each in a fresh process)."""
    from slmkit.evaluate.profile import compare, measure_in_subprocess
    from slmkit.models.source import resolve_model

    from slmkit.models.saving import read_manifest

    kwargs = dict(prompt_tokens=prompt_tokens, decode_tokens=decode_tokens, repeats=repeats, threads=threads, dtype=dtype)
    resolve_model(model)
    if no_baseline:
        baseline = None
    elif baseline is None and Path(model).is_dir():
        baseline = read_manifest(model).get("source")
    if baseline:
        resolve_model(baseline)
    profiles = {"model": measure_in_subprocess(model, **kwargs)}
    if baseline:
        profiles["baseline"] = measure_in_subprocess(baseline, **kwargs)
    payload = {k: v.to_dict() for k, v in profiles.items()}
    if baseline:
        payload["ratios"] = compare(profiles["baseline"], profiles["model"])
    if as_json:
        typer.echo(json.dumps(payload))
        return
    table = Table(title="efficiency profile")
    table.add_column("metric")
    for name in profiles:
        table.add_column(name, justify="right")
    if baseline:
        table.add_column("model/baseline", justify="right")
    for field in ("parameters", "nonzero_parameters", "bytes_on_disk", "bytes_in_memory", "peak_rss_bytes",
                  "prefill_tokens_per_s", "decode_tokens_per_s"):
        cells = [f"{getattr(p, field):,.0f}" if isinstance(getattr(p, field), int) else f"{getattr(p, field):,.2f}"
                 for p in profiles.values()]
        if baseline:
            cells.append(f"{payload['ratios'][field]:.3f}×")
        table.add_row(field, *cells)
    Console().print(table)
