"""`slm distill`, `slm distill-cache` and `slm finetune`: training commands over slmkit.distill and slmkit.tune.

Each runs unchanged on one process or under `accelerate launch --num_processes N` (CPU gloo,
multi-GPU, FSDP/DeepSpeed configs); only the main process writes the output folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError
from rich.console import Console

from slmkit.cli import app
from slmkit.errors import SlmError


def build(options_class, origin: str, **values):
    """Validate command-line values with the step's options class (one-line errors naming the flag)."""
    from slmkit.recipe import describe

    try:
        return options_class.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as err:
        problem = describe(err, options_class).replace("_", "-")
        top = "(top level): "
        raise SlmError(f"{origin}: {problem[len(top):] if problem.startswith(top) else '--' + problem}") from None


def checkpoint_dir(out: Path, given: Optional[Path], save_every: int, resume: bool) -> Optional[str]:
    if given is not None:
        return str(given)
    return str(out.with_name(out.name + ".checkpoints")) if (save_every or resume) else None


def finish(model, tokenizer, out: Path, source: str, options, result, adapter_only: bool = False) -> None:
    """Save on the main process only; print a one-line summary."""
    from accelerate import PartialState

    from slmkit.models.saving import save, write_manifest
    from slmkit.outputs import atomic_folder

    if not PartialState().is_main_process:
        return
    manifest = {"source": source, "training": {"options": options.model_dump(), **result.to_dict()}}
    if adapter_only:
        with atomic_folder(out) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            write_manifest(tmp, {"format": "peft-adapter", **manifest})
    else:
        save(model.eval(), tokenizer, out, "hf", manifest)
    last_eval = f", eval ppl {result.evals[-1]['perplexity']:.2f}" if result.evals else ""
    Console(stderr=True).print(f"trained {result.steps} steps, {result.tokens} tokens in {result.seconds:.0f}s "
                               f"({result.tokens_per_s:.0f} tokens/s), final loss {result.losses[-1]:.4f}{last_eval}; saved {out}")


def train_flags(max_steps, max_tokens, batch_size, grad_accum, seqlen, lr, warmup_steps, precision, eval_data, eval_every,
                eval_windows, save_every, ckpt, resume, seed) -> dict:
    return dict(max_steps=max_steps, max_tokens=max_tokens, batch_size=batch_size, grad_accum=grad_accum, seqlen=seqlen, lr=lr,
                warmup_steps=warmup_steps, precision=precision, eval_data=eval_data, eval_every=eval_every,
                eval_windows=eval_windows, save_every=save_every, checkpoint_dir=ckpt, resume=resume, seed=seed)


# Trainer flags shared by both commands (typer needs them spelled out per command).
MAX_STEPS = typer.Option(100, "--max-steps", help="Optimizer steps.")
MAX_TOKENS = typer.Option(None, "--max-tokens", help="Train on this many tokens instead of --max-steps.")
BATCH = typer.Option(1, "--batch-size", help="Sequences per micro-batch per process.")
ACCUM = typer.Option(1, "--grad-accum", help="Micro-batches per optimizer step.")
SEQLEN = typer.Option(512, "--seqlen", help="Tokens per training sequence.")
WARMUP = typer.Option(10, "--warmup-steps")
PRECISION = typer.Option("auto", "--precision", help="auto (bf16 on a capable GPU), no, bf16, fp16.")
EVAL_DATA = typer.Option(None, "--eval-data", help="Text source for periodic perplexity.")
EVAL_EVERY = typer.Option(0, "--eval-every", help="Evaluate every N steps (0: at the end only).")
EVAL_WINDOWS = typer.Option(8, "--eval-windows")
SAVE_EVERY = typer.Option(0, "--save-every", help="Checkpoint every N steps.")
CKPT = typer.Option(None, "--checkpoint-dir", help="Checkpoint folder (default OUT.checkpoints).")
RESUME = typer.Option(False, "--resume", help="Continue from the latest checkpoint exactly.")
SEED = typer.Option(0, "--seed")
OUT = typer.Option(..., "--out", "-o", help="Output model folder (written atomically).")


@app.command("distill")
def distill_command(
    student: str = typer.Option(..., "--student", "-s", help="Student model: embedded name, folder, .gguf or hub id."),
    teacher: Optional[str] = typer.Option(None, "--teacher", "-t", help="Teacher model, or an OpenAI-compatible URL (…/v1)."),
    data: str = typer.Option("pydoc", "--data", help="Training text, or prompts/instructions for --mode sequence."),
    mode: str = typer.Option("offpolicy", "--mode", help="offpolicy, onpolicy (GKD) or sequence (black-box)."),
    loss: str = typer.Option("fkl", "--loss", help="fkl, rkl, jsd or tv."),
    beta: float = typer.Option(0.5, "--beta", help="JSD beta: 0 = forward KL, 1 = reverse KL."),
    temperature: float = typer.Option(1.0, "--temperature"),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Match only the teacher's top-k tokens."),
    kd_weight: float = typer.Option(1.0, "--kd-weight"),
    ce_weight: float = typer.Option(0.0, "--ce-weight", help="Add next-token cross-entropy with this weight."),
    hidden_weight: float = typer.Option(0.0, "--hidden-weight", help="Add hidden-state MSE with this weight."),
    layer_map: Optional[str] = typer.Option(None, "--layer-map", help="'s:t,…' student:teacher layers for hidden KD."),
    lambda_onpolicy: float = typer.Option(0.5, "--lambda", help="GKD lambda: share of student-sampled batches."),
    prompt_tokens: int = typer.Option(64, "--prompt-tokens"),
    new_tokens: int = typer.Option(64, "--new-tokens", help="Sampled (onpolicy) or answer (sequence) tokens."),
    teacher_cache: Optional[str] = typer.Option(None, "--teacher-cache", help="Top-k logits from `slm distill-cache`."),
    endpoint_model: str = typer.Option("default", "--endpoint-model", help="Model name for an endpoint teacher."),
    lr: float = typer.Option(5e-5, "--lr"),
    max_steps: int = MAX_STEPS, max_tokens: Optional[int] = MAX_TOKENS, batch_size: int = BATCH, grad_accum: int = ACCUM,
    seqlen: int = SEQLEN, warmup_steps: int = WARMUP, precision: str = PRECISION, eval_data: Optional[str] = EVAL_DATA,
    eval_every: int = EVAL_EVERY, eval_windows: int = EVAL_WINDOWS, save_every: int = SAVE_EVERY,
    ckpt: Optional[Path] = CKPT, resume: bool = RESUME, seed: int = SEED, out: Path = OUT,
) -> None:
    """Distil a teacher into a student (logit KD off/on-policy, hidden-state KD, or sequence-level KD)."""
    from slmkit.distill.options import DistillOptions

    options = build(DistillOptions, "slm distill", teacher=teacher, data=data, mode=mode, loss=loss, beta=beta,
                    temperature=temperature, top_k=top_k, kd_weight=kd_weight, ce_weight=ce_weight,
                    hidden_weight=hidden_weight, layer_map=layer_map, lambda_onpolicy=lambda_onpolicy,
                    prompt_tokens=prompt_tokens, new_tokens=new_tokens, teacher_cache=teacher_cache,
                    endpoint_model=endpoint_model, **train_flags(max_steps, max_tokens, batch_size, grad_accum, seqlen, lr,
                    warmup_steps, precision, eval_data, eval_every, eval_windows, save_every,
                    checkpoint_dir(out, ckpt, save_every, resume), resume, seed))
    from slmkit.models.saving import check_output_dir

    check_output_dir(out)
    from slmkit.distill.distill import distill
    from slmkit.models.loading import load

    model, tokenizer = load(student)
    model, result = distill(model, tokenizer, options)
    finish(model, tokenizer, out, student, options, result)


@app.command("distill-cache")
def distill_cache_command(
    teacher: str = typer.Option(..., "--teacher", "-t", help="Teacher model."),
    data: str = typer.Option("pydoc", "--data", help="Training text to score."),
    top_k: int = typer.Option(64, "--top-k", help="Logits kept per position."),
    seqlen: int = typer.Option(512, "--seqlen"),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Score at most this many tokens."),
    out: Path = typer.Option(..., "--out", "-o", help="Cache file (.safetensors)."),
) -> None:
    """Precompute a teacher's top-k logits over training windows, for `slm distill --teacher-cache`."""
    from slmkit.distill.teacher_cache import cache_teacher_logits
    from slmkit.models.loading import load
    from slmkit.tune.trainer import corpus_windows

    model, tokenizer = load(teacher)
    windows = [w["input_ids"] for w in corpus_windows(tokenizer, data, seqlen, max_tokens)]
    import torch

    path = cache_teacher_logits(model, tokenizer, torch.stack(windows), top_k, out)
    Console(stderr=True).print(f"cached top-{top_k} logits of {len(windows)} windows x {seqlen} tokens: {path}")


@app.command("finetune")
def finetune_command(
    model_spec: str = typer.Argument(..., metavar="MODEL", help="Embedded name, folder, .gguf or hub id."),
    data: str = typer.Option(..., "--data", help="Alpaca JSON/JSONL or chat JSONL (messages)."),
    lora: bool = typer.Option(False, "--lora", help="Train a LoRA adapter instead of all weights."),
    qlora: bool = typer.Option(False, "--qlora", help="LoRA on a 4-bit NF4 base (bitsandbytes, CUDA only)."),
    rank: int = typer.Option(16, "--rank", help="LoRA rank."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="LoRA alpha (default 2 x rank)."),
    target_modules: str = typer.Option("all-linear", "--target-modules"),
    merge: bool = typer.Option(True, "--merge/--no-merge", help="Merge the adapter (default) or save it alone."),
    packing: bool = typer.Option(True, "--packing/--no-packing"),
    lr: Optional[float] = typer.Option(None, "--lr", help="Default 2e-5 (full) or 2e-4 (LoRA)."),
    max_steps: int = MAX_STEPS, max_tokens: Optional[int] = MAX_TOKENS, batch_size: int = BATCH, grad_accum: int = ACCUM,
    seqlen: int = SEQLEN, warmup_steps: int = WARMUP, precision: str = PRECISION, eval_data: Optional[str] = EVAL_DATA,
    eval_every: int = EVAL_EVERY, eval_windows: int = EVAL_WINDOWS, save_every: int = SAVE_EVERY,
    ckpt: Optional[Path] = CKPT, resume: bool = RESUME, seed: int = SEED, out: Path = OUT,
) -> None:
    """Supervised fine-tuning (loss on answer tokens), full or through LoRA/QLoRA."""
    from slmkit.tune.options import LoraSftOptions, SftOptions

    flags = train_flags(max_steps, max_tokens, batch_size, grad_accum, seqlen, lr, warmup_steps, precision, eval_data,
                        eval_every, eval_windows, save_every, checkpoint_dir(out, ckpt, save_every, resume), resume, seed)
    use_lora = lora or qlora
    if use_lora:
        options = build(LoraSftOptions, "slm finetune", data=data, packing=packing, rank=rank, alpha=alpha, qlora=qlora,
                        target_modules=target_modules, merge=merge, **flags)
    else:
        options = build(SftOptions, "slm finetune", data=data, packing=packing, **flags)
    from slmkit.models.saving import check_output_dir

    check_output_dir(out)
    from slmkit.models.loading import load
    from slmkit.tune.lora import lora_sft
    from slmkit.tune.sft import sft

    model, tokenizer = load(model_spec)
    model, result = (lora_sft if use_lora else sft)(model, tokenizer, options)
    finish(model, tokenizer, out, model_spec, options, result, adapter_only=use_lora and not merge)
