"""One training loop on `accelerate`: the same code runs on one CPU, `accelerate launch` over several
processes (gloo/NCCL), or FSDP/DeepSpeed configs.

The trained thing is an *objective*: an nn.Module whose forward(batch) returns the loss and whose
`.model` is the network to save (CE fine-tuning, distillation, SFT all plug in). Data order is a
seeded permutation per epoch, and every process reads its own slice of it by step number, so a
checkpoint (model, optimizer, RNG states, step) is enough to continue exactly where a run stopped.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from slmkit.errors import SlmError
from slmkit.failpoints import failpoint
from slmkit.progress import progress_bar

STATE_FILE = "trainer_state.json"


@dataclass
class TrainResult:
    steps: int
    tokens: int  # training tokens seen by all processes
    seconds: float
    tokens_per_s: float
    losses: list[float] = field(default_factory=list)  # one per optimizer step (all processes' mean)
    evals: list[dict] = field(default_factory=list)
    resumed_from: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class CausalLMObjective(nn.Module):
    """Plain next-token cross-entropy on `labels` (-100 = ignored)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict) -> torch.Tensor:
        return self.model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"),
                          labels=batch["labels"], use_cache=False).loss


def collate(examples: Sequence[dict], pad_id: int = 0) -> dict:
    """Stack examples; pad ragged ones on the right (labels -100, attention_mask 0)."""
    length = max(len(e["input_ids"]) for e in examples)
    batch: dict = {}
    for key in examples[0]:
        rows = []
        for e in examples:
            value = torch.as_tensor(e[key])
            missing = length - value.size(0)
            if missing:
                fill = -100 if key == "labels" else (0 if key == "attention_mask" else pad_id)
                value = torch.cat([value, value.new_full((missing, *value.shape[1:]), fill)])
            rows.append(value)
        batch[key] = torch.stack(rows)
    if "attention_mask" not in batch and any(len(e["input_ids"]) != length for e in examples):
        batch["attention_mask"] = torch.stack([torch.arange(length) < len(e["input_ids"]) for e in examples]).long()
    return batch


def cosine_lr(step: int, base: float, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to `base`, then cosine decay to base x min_ratio at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_accelerator(precision: str = "auto"):
    """An Accelerator for this process; 'auto' picks bf16 on a GPU that supports it, else fp32."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    AcceleratorState._reset_state()  # several trainings in one process may use different precisions
    return Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available())


def latest_checkpoint(folder: str | Path | None) -> Path | None:
    if folder is None or not Path(folder).is_dir():
        return None
    done = sorted(p for p in Path(folder).glob("step-*") if (p / STATE_FILE).is_file())
    return done[-1] if done else None


def example_indices(step: int, micro: int, rank: int, world: int, batch_size: int, accum: int, n: int, seed: int) -> list[int]:
    """Which examples process `rank` reads at (step, micro): consecutive slices of seeded per-epoch permutations."""
    start = ((step * accum + micro) * world + rank) * batch_size
    out = []
    for position in range(start, start + batch_size):
        epoch, offset = divmod(position, n)
        out.append(int(epoch_permutation(n, seed, epoch)[offset]))
    return out


_PERMS: dict = {}


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    key = (n, seed, epoch)
    if key not in _PERMS:
        _PERMS.clear()
        _PERMS[key] = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return _PERMS[key]


def train(
    objective: nn.Module,
    examples: Sequence[dict],
    options,
    *,
    pad_id: int = 0,
    eval_fn: Callable[[nn.Module], dict] | None = None,
    show_progress: bool = True,
    stop_after: int | None = None,
    accelerator=None,
) -> TrainResult:
    """Train `objective` on `examples` (dicts of 1-D tensors) for options.max_steps optimizer steps.

    `stop_after` ends the run early after that many steps of this call (time budgets, tests) without
    changing the LR schedule. Returns per-step losses, evaluations and throughput.
    """
    if not examples:
        raise SlmError("no training examples (is the data file empty or shorter than one sequence?)")
    accelerator = accelerator or make_accelerator(options.precision)
    from accelerate.utils import set_seed

    set_seed(options.seed)
    max_steps = total_steps(options, accelerator.num_processes)
    objective, optimizer = prepare(accelerator, objective, options)
    state = resume_state(accelerator, options)
    resumed_from = state["step"]
    evaluate = evaluator(accelerator, accelerator.unwrap_model(objective), eval_fn, state)
    objective.train()
    start = time.perf_counter()
    stop_at = max_steps if stop_after is None else min(max_steps, state["step"] + stop_after)
    with progress_bar("train", total=max_steps, enabled=show_progress and accelerator.is_main_process) as advance:
        advance(state["step"])
        while state["step"] < stop_at:
            lr = optimizer_step(accelerator, objective, optimizer, examples, state, options, pad_id, max_steps)
            elapsed = state["seconds"] + time.perf_counter() - start
            advance(1, loss=f"{state['losses'][-1]:.4f}", lr=f"{lr:.2e}", tok_s=f"{state['tokens'] / max(elapsed, 1e-9):.0f}")
            if options.eval_every and state["step"] % options.eval_every == 0 and state["step"] < max_steps:
                evaluate()
            if options.save_every and options.checkpoint_dir and state["step"] % options.save_every == 0:
                save_checkpoint(accelerator, options.checkpoint_dir, {**state, "seconds": elapsed})
    state["seconds"] += time.perf_counter() - start
    if state["step"] >= max_steps and (eval_fn is not None) and (not state["evals"] or state["evals"][-1]["step"] != max_steps):
        evaluate()
    accelerator.wait_for_everyone()
    return result_of(state, resumed_from)


def result_of(state: dict, resumed_from: int) -> TrainResult:
    """The run's summary from the trainer state."""
    return TrainResult(
        steps=state["step"], tokens=state["tokens"], seconds=round(state["seconds"], 3),
        tokens_per_s=round(state["tokens"] / max(state["seconds"], 1e-9), 1),
        losses=state["losses"], evals=state["evals"], resumed_from=resumed_from,
    )


def total_steps(options, world: int) -> int:
    """options.max_steps, or enough steps for options.max_tokens over all processes."""
    if options.max_tokens:
        tokens_per_step = options.batch_size * options.grad_accum * world * options.seqlen
        return max(1, math.ceil(options.max_tokens / tokens_per_step))
    return options.max_steps


def prepare(accelerator, objective: nn.Module, options):
    """AdamW over the trainable parameters, both wrapped by the accelerator."""
    params = [p for p in objective.parameters() if p.requires_grad]
    if not params:
        raise SlmError("nothing to train: every parameter is frozen")
    optimizer = torch.optim.AdamW(params, lr=options.lr, weight_decay=options.weight_decay, betas=(0.9, 0.95))
    return accelerator.prepare(objective, optimizer)


def evaluator(accelerator, inner: nn.Module, eval_fn, state: dict) -> Callable[[], None]:
    """A closure running eval_fn on the main process and appending its result to state["evals"]."""

    def evaluate() -> None:
        if eval_fn is not None and accelerator.is_main_process:
            inner.model.eval()
            result = {"step": state["step"], **eval_fn(inner.model)}
            inner.model.train()
            state["evals"].append(result)
        accelerator.wait_for_everyone()

    return evaluate


def optimizer_step(accelerator, objective, optimizer, examples, state: dict, options, pad_id: int, max_steps: int) -> float:
    """One optimizer step at state["step"] (LR set, accumulate, clip, NaN stop, update); updates state, returns the LR."""
    step = state["step"]
    lr = cosine_lr(step, options.lr, options.warmup_steps, max_steps, options.min_lr_ratio)
    for group in optimizer.param_groups:
        group["lr"] = lr
    step_loss, step_tokens = accumulate(accelerator, objective, examples, step, options, pad_id)
    loss_value = accelerator.reduce(step_loss, "mean").item()
    grad_norm = accelerator.clip_grad_norm_(objective.parameters(), options.max_grad_norm or math.inf)
    check_finite(step + 1, loss_value, 0.0 if grad_norm is None else float(grad_norm), options.checkpoint_dir)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    failpoint("train", step + 1)
    state["step"] += 1
    state["losses"].append(loss_value)
    state["tokens"] += int(accelerator.reduce(step_tokens, "sum").item())
    return lr


def resume_state(accelerator, options) -> dict:
    """The trainer state to start from: fresh, or (with options.resume) the latest checkpoint's, loaded."""
    world = accelerator.num_processes
    state = {"step": 0, "tokens": 0, "seconds": 0.0, "losses": [], "evals": [], "world": world}
    checkpoint = latest_checkpoint(options.checkpoint_dir) if options.resume else None
    if options.resume and checkpoint is None and options.checkpoint_dir is None:
        raise SlmError("--resume needs a checkpoint folder (checkpoint_dir / --checkpoint-dir)")
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        state = json.loads((checkpoint / STATE_FILE).read_text())
        if state.get("world", world) != world:
            raise SlmError(f"checkpoint {checkpoint} was written by {state['world']} processes; resume with the same number")
    return state


def accumulate(accelerator, objective, examples: Sequence[dict], step: int, options, pad_id: int):
    """Forward and backward this process's micro-batches of one optimizer step (gradients synchronised on
    the last only); returns (mean loss, tokens seen) as tensors."""
    world, rank = accelerator.num_processes, accelerator.process_index
    step_loss = torch.zeros((), device=accelerator.device)
    step_tokens = torch.zeros((), device=accelerator.device)
    for micro in range(options.grad_accum):
        ids = example_indices(step, micro, rank, world, options.batch_size, options.grad_accum, len(examples), options.seed)
        batch = {k: v.to(accelerator.device) for k, v in collate([examples[i] for i in ids], pad_id).items()}
        last = micro == options.grad_accum - 1
        with accelerator.no_sync(objective) if not last else nullcontext():
            with accelerator.autocast():
                loss = objective(batch)
            accelerator.backward(loss / options.grad_accum)
        step_loss += loss.detach() / options.grad_accum
        mask = batch.get("attention_mask")
        step_tokens += mask.sum() if mask is not None else batch["input_ids"].numel()
    return step_loss, step_tokens


def check_finite(step: int, loss: float, grad_norm: float, checkpoint_dir: str | None) -> None:
    """Stop before a non-finite loss or gradient reaches the weights: nothing of this run is saved, and
    the checkpoints written so far (all from finite steps) stay as they are."""
    if math.isfinite(loss) and math.isfinite(grad_norm):
        return
    what = f"the loss is {loss}" if not math.isfinite(loss) else f"the gradient norm is {grad_norm}"
    last = latest_checkpoint(checkpoint_dir)
    kept = f"; the last good checkpoint is {last}" if last else ""
    raise SlmError(f"training stopped at step {step}: {what}; nothing was saved{kept}")


def save_checkpoint(accelerator, folder: str | Path, state: dict, keep: int = 2) -> Path:
    """Model, optimizer and every process's RNG state + trainer state, renamed into place when complete
    so a `kill -9` mid-save leaves the previous checkpoint intact."""
    folder = Path(folder)
    target = folder / f"step-{state['step']:07d}"
    tmp = folder / f".tmp-step-{state['step']:07d}"
    if accelerator.is_main_process:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=False)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps(state))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        for old in sorted(p for p in folder.glob("step-*") if (p / STATE_FILE).is_file())[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return target


def perplexity_eval(tokenizer, source: str, seqlen: int, windows: int) -> Callable[[nn.Module], dict]:
    """An eval_fn measuring perplexity (the foundation's protocol) on a text source."""
    from slmkit.evaluate.perplexity import perplexity_of_ids, tokenize_corpus

    ids = tokenize_corpus(tokenizer, source)

    def run(model: nn.Module) -> dict:
        result = perplexity_of_ids(model, ids, seqlen, windows, show_progress=False)
        return {"perplexity": result.perplexity, "nll": result.nll}

    return run


def corpus_windows(tokenizer, source: str, seqlen: int, max_tokens: int | None = None) -> list[dict]:
    """Non-overlapping `seqlen`-token windows of a text source, as causal-LM examples."""
    from slmkit.data.calibration import token_stream

    stream = token_stream(tokenizer, source, max_tokens)
    n = len(stream) // seqlen
    if n == 0:
        raise SlmError(f"{source} has {len(stream)} tokens, fewer than one training sequence of {seqlen}")
    return [{"input_ids": w, "labels": w} for w in stream[: n * seqlen].view(n, seqlen)]
