"""slmkit's zero-shot scorer against lm-evaluation-harness on the same model folder and the same local files.

    python bench/eval_vs_harness.py            # quick: first --limit examples of arc_easy, piqa, hellaswag, boolq
    python bench/eval_vs_harness.py --full     # every example, plus arc_challenge and lambada_openai

lm-eval runs from its own venv (bench/.venv-lmeval, created on first use, torch pinned to 2.13.0) with the
`hf` backend, fp32, batch size 1, on task YAMLs that point at the same JSONL files. Each tool runs in a fresh
process per task (model load included in its wall time) with the same thread count.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from common import DATA as SHARED  # noqa: E402
from common import LMEVAL  # noqa: E402

DATA = SHARED / "zeroshot"
QUICK = {
    "arc_easy": "llmfoundry/arc_easy.jsonl",
    "piqa": "llmfoundry/piqa.jsonl",
    "hellaswag": "hellaswag/hellaswag_val.jsonl",
    "boolq": "llmfoundry/boolq.jsonl",
}
FULL = {**QUICK, "arc_challenge": "llmfoundry/arc_challenge.jsonl", "lambada_openai": "llmfoundry/lambada_openai.jsonl"}

MC_YAML = """task: slm_{name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{query}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{gold}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
"""
LAMBADA_YAML = """task: slm_{name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
output_type: loglikelihood
doc_to_text: "{{{{context}}}}"
doc_to_target: "{{{{' ' + continuation.strip()}}}}"
metric_list:
  - metric: perplexity
    aggregation: perplexity
    higher_is_better: false
  - metric: acc
"""


def run_timed(cmd: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    return seconds, proc.stdout


def run_harness(name: str, path: Path, folder: str, limit: int | None, env: dict, work: Path) -> tuple[dict, float]:
    yaml = (LAMBADA_YAML if name.startswith("lambada") else MC_YAML).format(name=name, path=path)
    include = work / f"tasks_{name}"
    include.mkdir()
    (include / f"slm_{name}.yaml").write_text(yaml)
    out = work / f"harness_{name}"
    cmd = [str(LMEVAL.folder / "bin" / "lm_eval"), "--model", "hf", "--model_args", f"pretrained={folder},dtype=float32",
           "--tasks", f"slm_{name}", "--include_path", str(include), "--batch_size", "1", "--device", "cpu",
           "--output_path", str(out)]
    if limit:
        cmd += ["--limit", str(limit)]
    seconds, _ = run_timed(cmd, env)
    result = json.loads(Path(sorted(glob.glob(str(out / "**" / "results_*.json"), recursive=True))[-1]).read_text())
    metrics = result["results"][f"slm_{name}"]
    return {k.split(",")[0]: v for k, v in metrics.items() if "," in k}, seconds


def run_slmkit(name: str, path: Path, model: str, limit: int | None, env: dict) -> tuple[dict, float]:
    cmd = [sys.executable, "-m", "slmkit.cli", "eval", model, "--tasks", f"{name}={path}", "--json"]
    if limit:
        cmd += ["--limit", str(limit)]
    seconds, stdout = run_timed(cmd, env)
    return json.loads(stdout.strip().splitlines()[-1])["tasks"][name], seconds


def fmt(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="every example of more tasks")
    parser.add_argument("--limit", type=int, default=200, help="examples per task in quick mode")
    parser.add_argument("--tasks", default=None, help=f"comma-separated task names (of {', '.join(FULL)})")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both tools")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from slmkit.models.loading import model_folder
    from slmkit.models.source import resolve_model

    tasks = FULL if args.full else QUICK
    if args.tasks:
        tasks = {k: FULL[k] for k in args.tasks.split(",")}
    limit = None if args.full else args.limit
    folder = model_folder(resolve_model(args.model))
    LMEVAL.ensure()
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "SLMKIT_PROGRESS": "0",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(ROOT)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, rel in tasks.items():
            path = DATA / rel
            ours, t_ours = run_slmkit(name, path, args.model, limit, env)
            theirs, t_theirs = run_harness(name, path, folder, limit, env, Path(tmp))
            rows.append((name, ours, theirs, t_ours, t_theirs))
            print(f"done {name}: slmkit {t_ours:.0f}s, harness {t_theirs:.0f}s", file=sys.stderr, flush=True)

    print(f"\nmodel {args.model} ({folder}), fp32, {threads} thread(s), "
          f"{'all examples' if limit is None else f'first {limit} examples per task'}\n")
    print("| task | n | metric | slmkit | lm-eval | diff (points) | slmkit s | lm-eval s | time ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    ratios = []
    for name, ours, theirs, t_ours, t_theirs in rows:
        ratios.append(t_ours / t_theirs)
        metrics = ("acc", "perplexity") if name.startswith("lambada") else ("acc", "acc_norm")
        for i, metric in enumerate(metrics):
            a, b = ours.get(metric), theirs.get(metric)
            diff = "–" if a is None or b is None else f"{100 * (a - b):+.2f}"
            times = (f"{t_ours:.1f} | {t_theirs:.1f} | {t_ours / t_theirs:.2f}×" if i == 0 else " | | ")
            print(f"| {name} | {ours['n']} | {metric} | {fmt(a)} | {fmt(b)} | {diff} | {times} |")
    ratios.sort()
    print(f"\nmedian wall-time ratio slmkit/lm-eval: {ratios[len(ratios) // 2]:.2f}×; "
          f"total {sum(r[3] for r in rows):.1f} s vs {sum(r[4] for r in rows):.1f} s")


if __name__ == "__main__":
    main()
