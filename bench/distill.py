"""Prune-then-distil recovery benchmark (Minitron-style) on SmolLM2-135M.

Depth-prune a quarter of the layers (the `depth_prune` step), then train the pruned model for the
same steps on the same C4 windows two ways: distillation from the dense model (forward KL on
logits) and plain next-token cross-entropy. Report WikiText-2 test perplexity before/after, the
share of the pruning gap each recovers, training time and tokens/s; one table.

    python bench/distill.py            # quick: a few minutes of training per arm on a CPU
    python bench/distill.py --full     # longer training, 2048-token evaluation windows
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path

from common import DATA as SHARED  # noqa: E402  (also puts the checkout on sys.path)


def settings(full: bool) -> dict:
    if full:
        return dict(steps=400, seqlen=512, batch_size=2, grad_accum=2, lr=2e-4, eval_seqlen=2048, eval_windows=None)
    return dict(steps=48, seqlen=256, batch_size=1, grad_accum=1, lr=2e-4, eval_seqlen=512, eval_windows=4)


def prune(model, tokenizer, ratio: float, calib: str):
    """The registered depth_prune step (block influence) on a small calibration batch."""
    from slmkit.steps import StepContext, all_steps

    step = all_steps()["depth_prune"]
    context = StepContext(seed=0, calibration_source=calib, nsamples=8, seqlen=256, tokenizer=tokenizer)
    return step.function()(model, tokenizer, step.options(ratio=ratio), context)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--ratio", type=float, default=0.25, help="share of decoder layers removed")
    parser.add_argument("--steps", type=int, help="optimizer steps per arm (default: quick 48, full 400)")
    parser.add_argument("--loss", default="fkl", choices=["fkl", "rkl", "jsd", "tv"])
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 is faster on a heavily shared CPU)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cfg = settings(args.full)
    if args.steps:
        cfg["steps"] = args.steps

    import torch

    from slmkit.distill.distill import distill
    from slmkit.distill.options import DistillOptions
    from slmkit.evaluate.perplexity import perplexity
    from slmkit.models.loading import load
    from slmkit.tune.options import TrainOptions
    from slmkit.tune.trainer import CausalLMObjective, corpus_windows, train

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    train_data, eval_data = str(SHARED / "c4" / "c4_demo.jsonl"), str(SHARED / "wikitext2" / "wiki.test.raw")
    dense, tokenizer = load(args.model)

    def ppl(model) -> float:
        return perplexity(model, tokenizer, eval_data, cfg["eval_seqlen"], cfg["eval_windows"], show_progress=False).perplexity

    rows = []

    def row(name, model, seconds=None, result=None):
        layers = model.config.num_hidden_layers
        params = sum(p.numel() for p in model.parameters()) / 1e6
        rows.append(dict(model=name, layers=layers, params_m=round(params, 1), ppl=ppl(model),
                         train_s=seconds, tokens=result.tokens if result else None,
                         tokens_per_s=result.tokens_per_s if result else None))
        print(f"  {name}: ppl {rows[-1]['ppl']:.2f}", file=sys.stderr, flush=True)

    row("dense", dense)
    start = time.perf_counter()
    pruned = prune(copy.deepcopy(dense), tokenizer, args.ratio, train_data)
    prune_s = time.perf_counter() - start
    row("depth-pruned", pruned)

    train_opts = dict(max_steps=cfg["steps"], batch_size=cfg["batch_size"], grad_accum=cfg["grad_accum"], seqlen=cfg["seqlen"],
                      lr=cfg["lr"], warmup_steps=max(1, cfg["steps"] // 10), precision="auto", seed=0)
    examples = corpus_windows(tokenizer, train_data, cfg["seqlen"])

    student = copy.deepcopy(pruned).train()
    start = time.perf_counter()
    result = train(CausalLMObjective(student), examples, TrainOptions(**train_opts), show_progress=True)
    row("pruned + CE fine-tune", student.eval(), time.perf_counter() - start, result)
    del student

    student = copy.deepcopy(pruned)
    start = time.perf_counter()
    options = DistillOptions(teacher=args.model, data=train_data, loss=args.loss, **train_opts)
    student, result = distill(student, tokenizer, options, teacher=dense, teacher_tokenizer=tokenizer)
    row(f"pruned + KD ({args.loss}, from dense)", student, time.perf_counter() - start, result)

    dense_ppl, pruned_ppl = rows[0]["ppl"], rows[1]["ppl"]
    gap = pruned_ppl - dense_ppl
    for r in rows:
        r["gap_recovered"] = (pruned_ppl - r["ppl"]) / gap if gap > 0 and r["train_s"] is not None else None
    print_table(rows, cfg, args, prune_s, len(examples))
    if args.json:
        args.json.write_text(json.dumps({"settings": cfg, "rows": rows, "prune_s": prune_s}, indent=1))


def print_table(rows, cfg, args, prune_s, windows) -> None:
    fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
    print("| model | layers | params (M) | WikiText-2 ppl | gap recovered | train time (s) | train tokens | tokens/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['layers']} | {r['params_m']} | {r['ppl']:.2f} | {fmt(r['gap_recovered'] and 100 * r['gap_recovered'], '.0f')}"
              f"{'%' if r['gap_recovered'] is not None else ''} | {fmt(r['train_s'], '.0f')} | {fmt(r['tokens'], 'd')} | {fmt(r['tokens_per_s'], '.0f')} |")
    windows_txt = "all" if cfg["eval_windows"] is None else cfg["eval_windows"]
    print(f"\nModel {args.model}, {args.ratio:.0%} of layers removed by depth_prune (block influence, {prune_s:.0f}s). "
          f"Both arms: {cfg['steps']} optimizer steps x {cfg['batch_size'] * cfg['grad_accum']} x {cfg['seqlen']} tokens of "
          f"C4 demo text ({windows} windows available), AdamW lr {cfg['lr']} cosine, same data order. "
          f"Perplexity: WikiText-2 test, seqlen {cfg['eval_seqlen']}, {windows_txt} windows. "
          f"Gap recovered = (pruned - after) / (pruned - dense). KD time includes the teacher's forward passes. "
          f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads {__import__('torch').get_num_threads()}.")


if __name__ == "__main__":
    main()
