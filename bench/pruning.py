"""Pruning benchmark: slmkit vs LLM Compressor (vLLM), same model, calibration and evaluation.

Both tools prune SmolLM2-135M with magnitude, Wanda and SparseGPT at 50% unstructured and
2:4. Each compression runs in a fresh process (its own peak RSS); the calibration token ids
are sampled once by slmkit and handed to both tools; every pruned model is scored by the same
perplexity code (WikiText-2 raw test, windows of 2048 tokens).

    python bench/pruning.py            # quick: 16 x 512 calibration tokens, 2 eval windows
    python bench/pruning.py --full     # 128 x 2048 calibration, all eval windows (hours on CPU)

LLM Compressor pins other library versions, so it runs from its own venv, created on first
use under bench/.venv-llmcompressor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
from common import DATA, LLMCOMPRESSOR  # noqa: E402

CALIB = DATA / "c4" / "c4_demo.jsonl"
EVAL = DATA / "wikitext2" / "wiki.test.raw"
MODEL = "smollm2-135m"
RUNS = [("wanda", None), ("sparsegpt", None), ("wanda", "2:4"), ("sparsegpt", "2:4"), ("magnitude", None), ("magnitude", "2:4")]


def peak_rss_bytes() -> int:
    """VmHWM: this process's own peak resident memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def finish(out: Path, model, seconds: float) -> None:
    """Write the decoder weights (LM head tied, so dropped) and the run's figures; fail if nothing was pruned."""
    from safetensors.torch import save_file

    linears = [p for n, p in model.named_parameters() if n.startswith("model.layers.") and n.endswith("proj.weight")]
    zeros = sum((p == 0).sum().item() for p in linears) / sum(p.numel() for p in linears)
    if zeros < 0.45:
        raise SystemExit(f"the call returned after {seconds:.1f} s but left {zeros:.2%} of decoder weights zero (asked 50%)")
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(out / "weights.safetensors"))
    (out / "result.json").write_text(json.dumps({"seconds": seconds, "peak_rss": peak_rss_bytes()}))


def worker_slmkit(args) -> None:
    import torch

    from slmkit.models.loading import load
    from slmkit.steps import StepContext, get_step

    torch.manual_seed(args.seed)
    model, tokenizer = load(MODEL)
    ids = torch.load(args.ids)
    options = {"sparsity": 0.5, "pattern": args.pattern} if args.pattern else {"sparsity": 0.5}
    step = get_step(args.method)
    start = time.perf_counter()
    step.function()(model, tokenizer, step.options(**options), StepContext(seed=args.seed, _calibration=ids))
    finish(Path(args.out), model, time.perf_counter() - start)


def worker_llmcompressor(args) -> None:
    import torch
    from datasets import Dataset
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM

    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_pretrained(args.model_folder, dtype=torch.float32)
    ids = torch.load(args.ids)
    mask = args.pattern or "0:0"
    ignore = ["re:.*lm_head"]  # plain "lm_head" is not honoured by these modifiers; the head is tied to the embeddings
    start = time.perf_counter()
    if args.method == "magnitude":
        from llmcompressor.modifiers.pruning import MagnitudePruningModifier

        recipe = MagnitudePruningModifier(targets=r"re:model\.layers\.\d+\..*_proj\.weight", init_sparsity=0.5,
                                          final_sparsity=0.5, mask_structure=args.pattern or "unstructured", start=0, end=1)
    elif args.method == "wanda":
        from llmcompressor.modifiers.pruning import WandaPruningModifier

        recipe = WandaPruningModifier(sparsity=0.5, mask_structure=mask, targets=["Linear"], ignore=ignore)
    else:
        from llmcompressor.modifiers.pruning import SparseGPTModifier

        recipe = SparseGPTModifier(sparsity=0.5, mask_structure=mask, targets=["Linear"], ignore=ignore)
    dataset = Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": torch.ones_like(ids).tolist()})
    oneshot(model=model, dataset=dataset, recipe=recipe, num_calibration_samples=ids.shape[0],
            max_seq_length=ids.shape[1], pipeline="sequential" if args.method != "magnitude" else "independent",
            shuffle_calibration_samples=False)
    finish(Path(args.out), model, time.perf_counter() - start)


def run_worker(python: str, tool: str, method: str, pattern, out: Path, ids: Path, model_folder: str, seed: int, env: dict) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [python, __file__, "--worker", tool, "--method", method, "--out", str(out), "--ids", str(ids),
           "--model-folder", model_folder, "--seed", str(seed)] + (["--pattern", pattern] if pattern else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [l for l in (proc.stderr or proc.stdout).strip().splitlines() if l.strip()]
        return {"error": lines[-1] if lines else f"exit {proc.returncode}"}
    return json.loads((out / "result.json").read_text())


def evaluate(weights: Path, max_windows, seqlen: int) -> tuple[float, float]:
    """(perplexity, share of zeros in decoder Linears) of the base model with the pruned weights."""
    import torch
    from safetensors.torch import load_file

    from slmkit.anatomy import decoder_linears
    from slmkit.evaluate.perplexity import perplexity
    from slmkit.models.loading import load

    model, tokenizer = load(MODEL)
    missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
    assert set(missing) <= {"lm_head.weight"} and not unexpected, (missing, unexpected)
    model.tie_weights()
    linears = decoder_linears(model).values()
    zeros = sum((m.weight == 0).sum().item() for m in linears) / sum(m.weight.numel() for m in linears)
    with torch.no_grad():
        ppl = perplexity(model, tokenizer, str(EVAL), seqlen, max_windows, show_progress=False).perplexity
    return ppl, zeros


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="128 x 2048 calibration, every evaluation window")
    parser.add_argument("--nsamples", type=int)
    parser.add_argument("--seqlen", type=int)
    parser.add_argument("--max-windows", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", help="comma list of runs, e.g. wanda,sparsegpt:2:4")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--report", action="store_true", help="print the table from the runs finished so far, run nothing")
    parser.add_argument("--worker", choices=["slmkit", "llmcompressor", "eval"], help=argparse.SUPPRESS)
    parser.add_argument("--max-windows-eval", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--pattern", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    parser.add_argument("--model-folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "eval":
        ppl, zeros = evaluate(Path(args.out) / "weights.safetensors", args.max_windows_eval, 2048)
        return (Path(args.out) / "eval.json").write_text(json.dumps({"ppl": ppl, "zeros": zeros}))
    if args.worker:
        return (worker_slmkit if args.worker == "slmkit" else worker_llmcompressor)(args)

    import torch

    from slmkit.data.calibration import calibration_batch
    from slmkit.models.loading import load, model_folder
    from slmkit.models.source import resolve_model

    nsamples = args.nsamples or (128 if args.full else 16)
    seqlen = args.seqlen or (2048 if args.full else 512)
    max_windows = args.max_windows or (None if args.full else 2)
    work = HERE / "results" / "pruning"
    work.mkdir(parents=True, exist_ok=True)
    if args.report:
        return report_so_far(work, nsamples, seqlen, max_windows)
    folder = model_folder(resolve_model(MODEL))
    _, tokenizer = load(MODEL)
    ids_path = work / "calibration_ids.pt"
    torch.save(calibration_batch(tokenizer, str(CALIB), nsamples, seqlen, args.seed), ids_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT), SLMKIT_PROGRESS="0", TOKENIZERS_PARALLELISM="false")
    peer_python = None
    if not args.no_peer:
        try:
            peer_python = str(LLMCOMPRESSOR.ensure())
        except subprocess.CalledProcessError as err:
            peer_error = f"venv install failed: {err}"
    runs = RUNS
    if args.only:
        wanted = {tuple((s.split(":", 1) + [None])[:2]) for s in args.only.split(",")}
        runs = [r for r in RUNS if r in wanted]

    rows, evals = [], []
    dense_ppl, _ = evaluate_dense(max_windows)
    (work / "dense.json").write_text(json.dumps({"ppl": dense_ppl}))
    for method, pattern in runs:
        name = f"{method} {pattern or '50%'}"
        row = {"run": name}
        for tool, python in (("slmkit", sys.executable), ("llmcompressor", peer_python)):
            if tool == "llmcompressor" and args.no_peer:
                continue
            if python is None:
                row[tool] = {"error": peer_error}
                continue
            out = work / f"{tool}-{method}-{(pattern or 'unstructured').replace(':', 'of')}"
            result = run_worker(python, tool, method, pattern, out, ids_path, folder, args.seed, env)
            if "error" not in result:
                evals.append((result, out))
            row[tool] = result
            print(f"{name} [{tool}]: {result}", flush=True)
        rows.append(row)
    # Scored after every compression has finished, so no compression is timed next to an evaluation.
    for result, out in evals:
        cmd = [sys.executable, __file__, "--worker", "eval", "--out", str(out)]
        proc = subprocess.run(cmd + (["--max-windows-eval", str(max_windows)] if max_windows else []), env=env)
        result.update(json.loads((out / "eval.json").read_text()) if proc.returncode == 0 else {"error": "evaluation failed"})
    (work / "results.json").write_text(json.dumps({"dense_ppl": dense_ppl, "rows": rows}, indent=2))
    print_table(rows, dense_ppl, nsamples, seqlen, max_windows)


def report_so_far(work: Path, nsamples: int, seqlen: int, max_windows) -> None:
    """The table of the runs whose files exist (a run still in progress is left out)."""
    rows = []
    for method, pattern in RUNS:
        row = {"run": f"{method} {pattern or '50%'}"}
        for tool in ("slmkit", "llmcompressor"):
            out = work / f"{tool}-{method}-{(pattern or 'unstructured').replace(':', 'of')}"
            if (out / "result.json").is_file():
                row[tool] = json.loads((out / "result.json").read_text())
                if (out / "eval.json").is_file():
                    row[tool].update(json.loads((out / "eval.json").read_text()))
        if "slmkit" in row or "llmcompressor" in row:
            rows.append(row)
    dense = work / "dense.json"
    print_table(rows, json.loads(dense.read_text())["ppl"] if dense.is_file() else float("nan"), nsamples, seqlen, max_windows)


def evaluate_dense(max_windows) -> tuple[float, float]:
    from slmkit.evaluate.perplexity import perplexity
    from slmkit.models.loading import load

    model, tokenizer = load(MODEL)
    return perplexity(model, tokenizer, str(EVAL), 2048, max_windows, show_progress=False).perplexity, 0.0


def missing(result: dict) -> str:
    return "error" if "error" in result else ("not run" if not result else "not scored")


def ratio(a, b) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


def print_table(rows: list[dict], dense_ppl: float, nsamples: int, seqlen: int, max_windows) -> None:
    header = ["run", "ppl slmkit", "ppl llmc", "ratio", "time slmkit s", "time llmc s", "ratio", "RSS slmkit GB", "RSS llmc GB", "ratio"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    errors = []
    for row in rows:
        ours, peer = row.get("slmkit", {}), row.get("llmcompressor", {})
        if "error" in peer:
            errors.append(f"{row['run']} (llmcompressor): {peer['error']}")
        get = lambda r, k, scale=1.0: (r[k] / scale) if k in r else None  # noqa: E731
        cells = [row["run"]]
        for key, scale, fmt in (("ppl", 1.0, "{:.2f}"), ("seconds", 1.0, "{:.1f}"), ("peak_rss", 1e9, "{:.2f}")):
            a, b = get(ours, key, scale), get(peer, key, scale)
            cells += [fmt.format(a) if a is not None else missing(ours), fmt.format(b) if b is not None else missing(peer), ratio(a, b)]
        print("| " + " | ".join(cells) + " |")
    windows = f"first {max_windows} windows" if max_windows else "all windows"
    print(f"\nDense perplexity {dense_ppl:.2f} (same windows). Calibration {nsamples} x {seqlen} tokens from c4_demo.jsonl (seed 0, the same ids "
          f"for both tools); perplexity on WikiText-2 raw test, seqlen 2048, {windows}, same code for both. "
          "Time = the compression call only (models are scored after all compressions); RSS = peak resident memory of the compressing process (VmHWM). "
          "ratio = slmkit / llmcompressor.")
    for e in errors:
        print(f"- error: {e}")


if __name__ == "__main__":
    main()
