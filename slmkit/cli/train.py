"""`slm distill`, `slm distill-cache`, `slm finetune` and `slm pretrain`: training commands over slmkit.distill and slmkit.tune.

Each runs unchanged on one process or under `accelerate launch --num_processes N` (CPU gloo,
multi-GPU, FSDP/DeepSpeed configs); only the main process writes the output folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from slmkit.checks import check_model, check_tokens
from slmkit.cli import app
from slmkit.cli.flags import OVERWRITE, parse_options, with_options
from slmkit.distill.options import DistillOptions
from slmkit.errors import SlmError
from slmkit.outputs import check_target, check_writable
from slmkit.tune.options import LoraSftOptions, PretrainOptions, SftOptions


def default_checkpoints(out: Path, given: dict) -> dict:
    """Checkpoints go beside the output (OUT.checkpoints) unless --checkpoint-dir says otherwise."""
    if given.get("checkpoint_dir") is None and (given.get("save_every") or given.get("resume")):
        return {**given, "checkpoint_dir": str(out.with_name(out.name + ".checkpoints"))}
    return given


def check_training(options, model: str, model_option: str, out: Path, overwrite: bool) -> None:
    """What the options model cannot know: the sequence lengths against the model's context, the output place."""
    check_model(model_option, model)
    check_tokens("--seqlen", options.seqlen, model)
    if options.eval_data:
        check_tokens("--eval-seqlen", options.eval_seqlen, model)
    teacher = getattr(options, "teacher", None)
    if teacher and not teacher.startswith(("http://", "https://")):
        check_model("--teacher", teacher)
        if options.mode != "sequence":  # the teacher scores the student's windows
            check_tokens("--seqlen", options.seqlen, teacher)
    if options.checkpoint_dir:
        check_writable(options.checkpoint_dir, "--checkpoint-dir", itself=True)
    check_target(out, overwrite)


def finish(model, tokenizer, out: Path, source: str, options, result, overwrite: bool, adapter_only: bool = False,
           extra: dict | None = None) -> None:
    """Save on the main process only; print a one-line summary."""
    from accelerate import PartialState

    from slmkit.models.saving import save, write_manifest
    from slmkit.outputs import atomic_folder

    if not PartialState().is_main_process:
        return
    manifest = {"source": source, **(extra or {}), "training": {"options": options.model_dump(), **result.to_dict()}}
    if adapter_only:
        with atomic_folder(out, overwrite) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            write_manifest(tmp, {"format": "peft-adapter", **manifest})
    else:
        save(model.eval(), tokenizer, out, "hf", manifest, overwrite=overwrite)
    last_eval = f", eval ppl {result.evals[-1]['perplexity']:.2f}" if result.evals else ""
    Console(stderr=True).print(f"trained {result.steps} steps, {result.tokens} tokens in {result.seconds:.0f}s "
                               f"({result.tokens_per_s:.0f} tokens/s), final loss {result.losses[-1]:.4f}{last_eval}; saved {out}")


DISTILL_FLAGS = {"teacher": ("--teacher", "-t"), "lambda_onpolicy": ("--lambda",)}


@app.command("distill")
@with_options(DistillOptions, flags=DISTILL_FLAGS)
def distill_command(
    student: str = typer.Option(..., "--student", "-s", help="Student model: embedded name, folder, .gguf or hub id."),
    out: Path = typer.Option(..., "--out", "-o", help="Output model folder (written atomically)."),
    overwrite: bool = OVERWRITE,
    given: dict = None,
) -> None:
    """Distil a teacher into a student (logit KD off/on-policy, hidden-state KD, or sequence-level KD)."""
    options = parse_options(DistillOptions, default_checkpoints(out, given), distill_command.flags)
    check_training(options, student, "--student", out, overwrite)
    from slmkit.distill.distill import distill
    from slmkit.models.loading import load

    model, tokenizer = load(student)
    model, result = distill(model, tokenizer, options)
    finish(model, tokenizer, out, student, options, result, overwrite, extra={"origin": "distilled"})


@app.command("distill-cache")
def distill_cache_command(
    teacher: str = typer.Option(..., "--teacher", "-t", help="Teacher model."),
    data: str = typer.Option("pydoc", "--data", help="Training text to score."),
    top_k: int = typer.Option(64, "--top-k", min=1, help="Logits kept per position."),
    seqlen: int = typer.Option(512, "--seqlen", help="Tokens per window (at most the teacher's context)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1, help="Score at most this many tokens."),
    out: Path = typer.Option(..., "--out", "-o", help="Cache file (.safetensors)."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Precompute a teacher's top-k logits over training windows, for `slm distill --teacher-cache`."""
    from slmkit.data.corpus import check_source

    check_model("--teacher", teacher)
    check_tokens("--seqlen", seqlen, teacher)
    check_source(data, "--data")
    check_target(out, overwrite, file=True)
    from slmkit.distill.teacher_cache import cache_teacher_logits
    from slmkit.models.loading import load
    from slmkit.tune.trainer import corpus_windows

    model, tokenizer = load(teacher)
    windows = [w["input_ids"] for w in corpus_windows(tokenizer, data, seqlen, max_tokens)]
    import torch

    path = cache_teacher_logits(model, tokenizer, torch.stack(windows), top_k, out, overwrite)
    Console(stderr=True).print(f"cached top-{top_k} logits of {len(windows)} windows x {seqlen} tokens: {path}")


LORA_ONLY = tuple(f for f in LoraSftOptions.model_fields if f not in SftOptions.model_fields)


@app.command("finetune")
@with_options(SftOptions, LoraSftOptions)
def finetune_command(
    model_spec: str = typer.Argument(..., metavar="MODEL", help="Embedded name, folder, .gguf or hub id."),
    lora: bool = typer.Option(False, "--lora", help="Train a LoRA adapter instead of all weights (--qlora: on a 4-bit base)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output model folder (written atomically)."),
    overwrite: bool = OVERWRITE,
    given: dict = None,
) -> None:
    """Supervised fine-tuning (loss on answer tokens), full or through LoRA/QLoRA."""
    use_lora = lora or bool(given.get("qlora"))
    if not use_lora and (lora_flags := [f for f in LORA_ONLY if f in given]):
        raise SlmError(f"{finetune_command.flags[lora_flags[0]]}: a LoRA option; add --lora")
    options = parse_options(LoraSftOptions if use_lora else SftOptions, default_checkpoints(out, given), finetune_command.flags)
    check_training(options, model_spec, "MODEL", out, overwrite)
    from slmkit.models.loading import load
    from slmkit.tune.lora import lora_sft
    from slmkit.tune.sft import sft

    model, tokenizer = load(model_spec)
    model, result = (lora_sft if use_lora else sft)(model, tokenizer, options)
    finish(model, tokenizer, out, model_spec, options, result, overwrite, adapter_only=use_lora and not options.merge,
           extra={"origin": "tuned"})


@app.command("pretrain")
@with_options(PretrainOptions, exclude=("eval_data",))
def pretrain_command(
    model_dir: str = typer.Argument(..., metavar="MODEL_DIR", help="Model folder to train (e.g. from `slm init`), or any model spec."),
    out: Path = typer.Option(..., "--out", "-o", help="Output model folder (written atomically)."),
    overwrite: bool = OVERWRITE,
    given: dict = None,
) -> None:
    """Pretrain on packed windows of a text source, with held-out perplexity, tokens/s and MFU."""
    options = parse_options(PretrainOptions, default_checkpoints(out, given), pretrain_command.flags)
    check_training(options, model_dir, "MODEL_DIR", out, overwrite)
    check_tokens("--eval-seqlen", options.eval_seqlen, model_dir)
    from slmkit.models.loading import load
    from slmkit.tune.pretrain import pretrain, summary

    model, tokenizer = load(model_dir)
    model, result, rate = pretrain(model, tokenizer, options)
    Console(stderr=True).print(summary(result, rate))
    finish(model, tokenizer, out, model_dir, options, result, overwrite, extra={"origin": "scratch", "throughput": rate})
