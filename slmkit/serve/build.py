"""Assemble a server from command-line style choices: backend, draft, upstream, cascade or router, privacy."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from slmkit.errors import SlmError
from slmkit.serve.app import create_app
from slmkit.serve.routing import Collaboration

API_KEY_ENV = "SLMKIT_API_KEY"
BACKENDS = ("transformers", "llama.cpp")


def load_engine(model: str, backend: str = "transformers", draft: str | None = None, dtype: str = "float32",
                name: str | None = None):
    """The local model behind the server, loaded by slmkit (any spec `slm` accepts)."""
    if backend == "llama.cpp":
        if draft:
            raise SlmError("--draft needs the transformers backend (llama.cpp speculative decoding is not wired here)")
        from slmkit.serve.llamacpp import LlamaCppEngine

        return LlamaCppEngine.from_spec(model, name=name)
    from slmkit.models.loading import load
    from slmkit.serve.engine import TransformersEngine

    net, tokenizer = load(model, dtype)
    draft_net = load(draft, dtype)[0] if draft else None
    return TransformersEngine(net, tokenizer, name or model, draft=draft_net)


def build_app(model: str, backend: str = "transformers", api_key: str | None = None, draft: str | None = None,
              upstream: str | None = None, upstream_model: str | None = None, cascade_threshold: float | None = None,
              cascade_metric: str = "mean", router: str | None = None, privacy: bool = False,
              privacy_tagger: str | None = None, privacy_strict: bool = False, name: str | list[str] | None = None,
              upstream_timeout: float = 60.0, upstream_retries: int = 3, max_batch: int = 8):
    """A ready FastAPI app; the API key falls back to $SLMKIT_API_KEY.

    `name` is the model id to report (default: MODEL), or a list of them: the first is reported
    first, all are accepted in requests. A tagger or strict mode turns the privacy proxy on."""
    names = [name] if isinstance(name, str) else list(name or [])
    privacy = privacy or bool(privacy_tagger) or privacy_strict
    check_choices(backend, upstream, upstream_model, cascade_threshold, router, privacy, privacy_tagger, privacy_strict)
    engine = load_engine(model, backend, draft, name=names[0] if names else None)
    collab = Collaboration()
    if upstream:
        from slmkit.collab.client import UpstreamClient

        collab.upstream = UpstreamClient(upstream, upstream_model, timeout=upstream_timeout, retries=upstream_retries)
    if cascade_threshold is not None:
        from slmkit.collab.cascade import Cascade

        collab.cascade = Cascade(cascade_threshold, cascade_metric)
    if router:
        from slmkit.collab.router import Router

        collab.router = Router.load(router)
    if privacy:
        collab.privacy = privacy_proxy(engine, privacy_tagger, privacy_strict)
    return create_app(engine, collab, api_key=api_key or os.environ.get(API_KEY_ENV), max_batch=max_batch,
                      aliases=tuple(names[1:]))


def check_choices(backend: str, upstream, upstream_model, cascade_threshold, router, privacy: bool, privacy_tagger,
                  privacy_strict: bool) -> None:
    """Refuse combinations that cannot work, before any model loads."""
    if backend not in BACKENDS:
        raise SlmError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if cascade_threshold is not None and router:
        raise SlmError("choose one of --cascade-threshold and --router, not both")
    if (cascade_threshold is not None or router or privacy) and not upstream:
        raise SlmError("--cascade-threshold, --router and --privacy need --upstream URL")
    if upstream and not upstream_model:
        raise SlmError("--upstream needs --upstream-model NAME (the model name the upstream serves)")
    needs_transformers = {"--cascade-threshold": cascade_threshold is not None, "--router": bool(router),
                          "--privacy-tagger": bool(privacy_tagger)}
    for option, used in needs_transformers.items():
        if used and backend != "transformers":
            raise SlmError(f"{option} needs the transformers backend (it reads the model's log-probs or hidden states)")
    if privacy_strict and not privacy_tagger:
        raise SlmError("--privacy-strict needs --privacy-tagger (it refuses what the tagger is unsure about)")
    for option, path in (("--router", router), ("--privacy-tagger", privacy_tagger)):
        if path and path != "builtin" and not Path(path).is_file():
            raise SlmError(f"{option} file {path} not found")


def privacy_proxy(engine, tagger: str | None, strict: bool):
    """The privacy proxy; without a tagger, a warning on stderr names what then goes upstream in clear."""
    from slmkit.collab.privacy import UNTAGGED_TYPES, PrivacyProxy

    if tagger is None:
        sys.stderr.write("warning: --privacy without --privacy-tagger sends these upstream in clear: "
                         + "; ".join(UNTAGGED_TYPES) + " (add --privacy-tagger builtin, or a tagger from "
                         "`slm route pii-train`)\n")
        return PrivacyProxy()
    from slmkit.collab.pii_tagger import BUILTIN, SpanTagger, builtin_tagger

    model, tokenizer = engine.model, engine.tokenizer
    span_tagger = builtin_tagger(model, tokenizer) if tagger == BUILTIN else SpanTagger.load(tagger, model, tokenizer)
    return PrivacyProxy(span_tagger, strict)
