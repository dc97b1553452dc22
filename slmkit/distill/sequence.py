"""Black-box sequence-level KD (Kim & Rush): the teacher writes answers to prompts and the student is
fine-tuned on them. Works with any teacher: a local model of any tokenizer, or an OpenAI-compatible
chat endpoint (vLLM, llama.cpp server, `slm serve`, hosted APIs) reached through httpx."""

from __future__ import annotations

import os
from pathlib import Path

from slmkit.errors import SlmError
from slmkit.progress import progress_bar


def is_endpoint(teacher: str) -> bool:
    return teacher.startswith(("http://", "https://"))


def prompts_of(source: str) -> list[str]:
    """Prompts from an instruction file (the user turns) or one prompt per document of a text source."""
    path = Path(source)
    if path.suffix in (".json", ".jsonl") and path.is_file():
        from slmkit.data.conversations import load_conversations

        try:
            return [next(m["content"] for m in c if m["role"] == "user") for c in load_conversations(path)]
        except SlmError:
            pass
    from slmkit.data.corpus import load_documents

    return [d.strip() for d in load_documents(source) if d.strip()]


def endpoint_answers(url: str, prompts: list[str], max_tokens: int, model: str = "default",
                     api_key: str | None = None, timeout: float = 120.0, show_progress: bool = True) -> list[str]:
    """Greedy answers from an OpenAI-compatible /chat/completions endpoint (`url` is the base, e.g. …/v1)."""
    import httpx

    key = api_key or os.environ.get("OPENAI_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    answers = []
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout) as client, \
            progress_bar("teacher answers", total=len(prompts), enabled=show_progress) as advance:
        for prompt in prompts:
            body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "temperature": 0}
            try:
                response = client.post("/chat/completions", json=body)
                response.raise_for_status()
                answers.append(response.json()["choices"][0]["message"]["content"])
            except (httpx.HTTPError, KeyError, IndexError, ValueError) as err:
                raise SlmError(f"teacher endpoint {url} failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
            advance()
    return answers


def local_answers(teacher, tokenizer, prompts: list[str], max_tokens: int, show_progress: bool = True) -> list[str]:
    """Greedy answers from a local model through its chat template (the project's decode loop)."""
    from slmkit.generation import SamplingParams, chat_prompt_ids, generate_ids, stop_ids

    params = SamplingParams(max_new_tokens=max_tokens, stop_token_ids=stop_ids(tokenizer))
    answers = []
    with progress_bar("teacher answers", total=len(prompts), enabled=show_progress) as advance:
        for prompt in prompts:
            ids = generate_ids(teacher, chat_prompt_ids(tokenizer, prompt), params)
            answers.append(tokenizer.decode([t for t in ids if t not in params.stop_token_ids], skip_special_tokens=True))
            advance()
    return answers


def teacher_conversations(teacher: str, prompts: list[str], max_tokens: int, endpoint_model: str = "default",
                          show_progress: bool = True) -> list[list[dict]]:
    """(prompt, teacher answer) conversations for SFT of the student."""
    if is_endpoint(teacher):
        answers = endpoint_answers(teacher, prompts, max_tokens, endpoint_model, show_progress=show_progress)
    else:
        from slmkit.models.loading import load

        model, tokenizer = load(teacher)
        answers = local_answers(model, tokenizer, prompts, max_tokens, show_progress)
        del model
    return [[{"role": "user", "content": p}, {"role": "assistant", "content": a}] for p, a in zip(prompts, answers)]
