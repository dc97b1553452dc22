"""`slm serve MODEL`: an OpenAI-compatible server, optionally collaborating with an upstream LLM."""

from __future__ import annotations

from typing import Optional

import typer

from slmkit.cli import app


@app.command("serve")
def serve_command(
    model: str = typer.Argument(..., help="Embedded name, HF folder, .gguf file or hub id."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Require 'Authorization: Bearer KEY' (default: $SLMKIT_API_KEY)."),
    backend: str = typer.Option("transformers", "--backend", help="transformers or llama.cpp (needs the llamacpp extra)."),
    draft: Optional[str] = typer.Option(None, "--draft", help="A compressed copy of MODEL for speculative decoding."),
    upstream: Optional[str] = typer.Option(None, "--upstream", help="OpenAI-compatible base URL of the upstream LLM."),
    upstream_model: Optional[str] = typer.Option(None, "--upstream-model", help="Model name at the upstream."),
    cascade_threshold: Optional[float] = typer.Option(None, "--cascade-threshold", help="Escalate when the answer's confidence is below this."),
    cascade_metric: str = typer.Option("mean", "--cascade-metric", help="mean or min token log-prob."),
    router: Optional[str] = typer.Option(None, "--router", help="A router file from `slm route train`."),
    privacy: bool = typer.Option(False, "--privacy", help="Replace personal data with placeholders before it goes upstream."),
    privacy_tagger: Optional[str] = typer.Option(None, "--privacy-tagger", help="Also hide names/organisations/addresses/places with a learned tagger: a file from `slm route pii-train`, or 'builtin' (trained once per model on slmkit's synthetic sentences, then cached). Implies --privacy."),
    privacy_strict: bool = typer.Option(False, "--privacy-strict", help="Refuse (HTTP 400) a request in which the tagger is unsure whether a word is personal data, instead of guessing (needs --privacy-tagger)."),
    name: Optional[list[str]] = typer.Option(None, "--name", help="Model id reported by /v1/models (default: MODEL); repeat for aliases that requests may use too."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch intra-op threads (default: torch's choice)."),
    max_batch: int = typer.Option(8, "--max-batch", min=1, help="Decode up to this many waiting requests together (1: one at a time)."),
) -> None:
    """Serve MODEL over HTTP with the OpenAI API (/v1/chat/completions, /v1/completions, /v1/models)."""
    import uvicorn

    if threads:
        import torch

        torch.set_num_threads(threads)
    from slmkit.serve.build import build_app

    server = build_app(model, backend=backend, api_key=api_key, draft=draft, upstream=upstream,
                       upstream_model=upstream_model, cascade_threshold=cascade_threshold, cascade_metric=cascade_metric,
                       router=router, privacy=privacy, privacy_tagger=privacy_tagger, privacy_strict=privacy_strict, name=name,
                       max_batch=max_batch)
    typer.echo(f"serving {model} on http://{host}:{port}/v1", err=True)
    uvicorn.run(server, host=host, port=port, log_level="warning")
