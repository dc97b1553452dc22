"""`slm generate MODEL "prompt"`: stream a completion through the lean decode loop."""

from __future__ import annotations

import sys
import time
from typing import Literal, Optional

import typer

from slmkit.checks import DTYPE_NAMES, check_model, check_tokens
from slmkit.cli import app


@app.command("generate")
def generate_command(
    model: str = typer.Argument(..., help="Embedded name, HF folder, .gguf file or hub id."),
    prompt: str = typer.Argument(..., help="The prompt (wrapped in the chat template unless --raw)."),
    max_tokens: int = typer.Option(128, "--max-tokens", "-n", min=1, help="New tokens at most."),
    temperature: float = typer.Option(0.0, "--temperature", "-t", min=0, help="0 = greedy."),
    top_p: float = typer.Option(1.0, "--top-p", min=0, max=1, help="Nucleus sampling: keep the most likely tokens "
                                "holding this probability."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    raw: bool = typer.Option(False, "--raw", help="Do not apply the chat template."),
    dtype: Literal[DTYPE_NAMES] = typer.Option("float32", "--dtype"),
    draft: Optional[str] = typer.Option(None, "--draft", help="A compressed copy of MODEL: speculative decoding."),
) -> None:
    """Generate text; prints tokens as they come and the speed at the end (stderr)."""
    check_tokens("--max-tokens", max_tokens, model, "new tokens")
    if draft:
        check_model("--draft", draft)
    from slmkit.generation import SamplingParams, chat_prompt_ids, stop_ids, stream_tokens
    from slmkit.models.loading import load

    net, tokenizer = load(model, dtype)
    ids = chat_prompt_ids(tokenizer, prompt, chat=not raw)
    params = SamplingParams(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed,
                            stop_token_ids=stop_ids(tokenizer))
    tokens: list[int] = []
    printed = ""
    stats = None
    if draft:
        from slmkit.collab.speculative import SpeculativeStats, speculative_stream

        stats = SpeculativeStats()
        stream = speculative_stream(net, load(draft, dtype)[0], ids, params, stats=stats)
    else:
        stream = stream_tokens(net, ids, params)
    start = time.perf_counter()
    for token in stream:
        if token in params.stop_token_ids:
            break
        tokens.append(token)
        text = tokenizer.decode(tokens, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            continue  # the token ends inside a UTF-8 character: print it once the character is complete
        sys.stdout.write(text[len(printed):])
        sys.stdout.flush()
        printed = text
    elapsed = time.perf_counter() - start
    sys.stdout.write(tokenizer.decode(tokens, skip_special_tokens=True)[len(printed):] + "\n")
    extra = f", draft acceptance {stats.acceptance_rate:.0%}" if stats is not None else ""
    print(f"[{len(tokens)} tokens, {len(tokens) / elapsed:.1f} tokens/s{extra}]", file=sys.stderr)
