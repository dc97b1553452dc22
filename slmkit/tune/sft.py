"""Supervised fine-tuning data: conversations (data/conversations.py) rendered with the tokenizer's
own chat template, labels only on the assistant's tokens (-100 elsewhere), optionally packed into
full sequences.

Inputs: Alpaca-style records (instruction, input, output) as JSON or JSONL, or chat JSONL with
a `messages` list of {role, content}.
"""

from __future__ import annotations

from pathlib import Path

import torch

from slmkit.data.conversations import load_conversations
from slmkit.errors import SlmError

# Used only when a tokenizer has no chat template of its own.
PLAIN_USER = "### Instruction:\n{content}\n\n### Response:\n"


def render(tokenizer, messages: list[dict], generation_prompt: bool) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    text = ""
    for m in messages:
        if m["role"] == "assistant":
            text += m["content"] + (tokenizer.eos_token or "") + "\n\n"
        elif m["role"] == "user":
            text += PLAIN_USER.format(content=m["content"])
        else:
            text += m["content"] + "\n\n"
    return text


def encode_conversation(tokenizer, messages: list[dict]) -> dict:
    """input_ids and labels where only assistant turns (with their end-of-turn marker) are learned."""
    ids: list[int] = []
    labels: list[int] = []
    done = ""
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prefix = render(tokenizer, messages[:i], generation_prompt=True)
        full = render(tokenizer, messages[: i + 1], generation_prompt=False)
        if not (prefix.startswith(done) and full.startswith(prefix)):
            raise SlmError("the chat template does not render conversations incrementally; cannot mask prompt tokens")
        prompt_ids = tokenizer(prefix[len(done):], add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(full[len(prefix):], add_special_tokens=False)["input_ids"]
        ids += prompt_ids + answer_ids
        labels += [-100] * len(prompt_ids) + answer_ids
        done = full
    return {"input_ids": torch.tensor(ids, dtype=torch.long), "labels": torch.tensor(labels, dtype=torch.long)}


def pack(examples: list[dict], seqlen: int) -> list[dict]:
    """Concatenate examples and cut into full `seqlen` windows (the last partial window is dropped).

    A window holding only prompt tokens has nothing to learn (its loss would be 0/0 = NaN), so it is
    left out; a window's first label is never predicted, so it does not count."""
    ids = torch.cat([e["input_ids"] for e in examples])
    labels = torch.cat([e["labels"] for e in examples])
    windows = [{"input_ids": ids[i:i + seqlen], "labels": labels[i:i + seqlen]} for i in range(0, len(ids) - seqlen + 1, seqlen)]
    return [w for w in windows if (w["labels"][1:] != -100).any()]


def sft_examples(tokenizer, path: str | Path, seqlen: int, packing: bool = True,
                 conversations: list[list[dict]] | None = None) -> list[dict]:
    """Training examples from an instruction file (or given conversations)."""
    conversations = conversations or load_conversations(path)
    if not conversations:
        raise SlmError(f"{path}: no records")
    encoded = [encode_conversation(tokenizer, c) for c in conversations]
    encoded = [e for e in encoded if (e["labels"] != -100).any()]
    if packing:
        examples = pack(encoded, seqlen)
    else:
        examples = [{k: v[:seqlen] for k, v in e.items()} for e in encoded]
        examples = [e for e in examples if (e["labels"][1:] != -100).any()]
    if not examples:
        raise SlmError(f"{path}: no training sequence of {seqlen} tokens with answer tokens (lower --seqlen?)")
    return examples


def sft(model, tokenizer, options, show_progress: bool = True, conversations=None):
    """Fine-tune `model` on options.data; returns (model, TrainResult)."""
    from slmkit.tune.trainer import CausalLMObjective, perplexity_eval, train

    examples = sft_examples(tokenizer, options.data, options.seqlen, options.packing, conversations)
    eval_fn = perplexity_eval(tokenizer, options.eval_data, options.eval_seqlen, options.eval_windows) if options.eval_data else None
    model.train()
    result = train(CausalLMObjective(model), examples, options, pad_id=pad_id(tokenizer), eval_fn=eval_fn,
                   show_progress=show_progress)
    return model.eval(), result


def pad_id(tokenizer) -> int:
    for value in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if value is not None:
            return value
    return 0


def sft_step(model, tokenizer, options, context):
    model, result = sft(model, tokenizer, options)
    context.log.append(f"sft: {result.steps} steps, {result.tokens_per_s:.0f} tokens/s, final loss {result.losses[-1]:.4f}")
    return model
