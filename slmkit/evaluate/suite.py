"""One entry point for `slm eval` and recipes: zero-shot tasks and trust evaluations into one results dict."""

from __future__ import annotations

import time
from pathlib import Path

from slmkit.data.shared import shared_data_dir
from slmkit.errors import SlmError
from slmkit.evaluate.trust import SUITES

TRUST_FILES = {  # under the shared data folder (slmkit.data.shared)
    "truthfulqa": "safety/truthfulqa/TruthfulQA.csv",
    "crows_pairs": "safety/bias/crows_pairs_anonymized.csv",
    "bbq": "safety/bias/bbq",
    "pii": "safety/pii/presidio_synth_dataset_v2.json",
}


def check_trust(names: list[str]) -> list[str]:
    for name in names:
        if name not in SUITES:
            raise SlmError(f"unknown trust evaluation '{name}' (valid: {', '.join(SUITES)})")
    return names


def evaluate_suite(model, tokenizer, tasks: dict[str, str] | None = None, trust: list[str] | None = None,
                   limit: int | None = None, data: str | Path | None = None, seed: int = 0,
                   show_progress: bool = True) -> dict:
    """{"tasks": {name: metrics}, "trust": {suite: results}} for the given task files and trust suites."""
    from slmkit.evaluate.tasks import load_task
    from slmkit.evaluate.zeroshot import evaluate_task

    trust = check_trust(list(trust or []))
    loaded = {name: load_task(name, path, limit) for name, path in (tasks or {}).items()}  # fail before any work
    mc = [name for name, t in loaded.items() if t.kind == "multiple_choice"]
    if {"calibration", "robustness"} & set(trust) and not mc:
        raise SlmError("calibration and robustness need a multiple-choice task: pass --tasks NAME=PATH")
    results: dict = {"tasks": {}, "trust": {}}
    scored = {}
    for name, task in loaded.items():
        results["tasks"][name], scored[name] = evaluate_task(model, tokenizer, task, show_progress)
    root = shared_data_dir(data)
    for suite in trust:
        start = time.perf_counter()
        results["trust"][suite] = run_trust(suite, model, tokenizer, loaded, scored, results["tasks"], mc, root,
                                            limit, seed, show_progress)
        results["trust"][suite]["seconds"] = round(time.perf_counter() - start, 3)
    return results


def run_trust(suite, model, tokenizer, loaded, scored, metrics, mc, root: Path, limit, seed, show_progress) -> dict:
    if suite == "calibration":
        from slmkit.evaluate.trust.calibration import calibration
        return {name: calibration(scored[name].logprobs(), scored[name].golds()) for name in mc}
    if suite == "robustness":
        from slmkit.evaluate.trust.robustness import robustness
        return robustness(model, tokenizer, loaded[mc[0]], metrics[mc[0]], seed=seed, show_progress=show_progress)
    if suite == "truthfulness":
        from slmkit.evaluate.trust.truthfulness import truthfulness
        return truthfulness(model, tokenizer, root / TRUST_FILES["truthfulqa"], limit, show_progress)
    if suite == "bias":
        from slmkit.evaluate.trust.bias import bbq, crows_pairs
        bbq_files = sorted((root / TRUST_FILES["bbq"]).glob("*.jsonl"))
        if not bbq_files:
            raise SlmError(f"no BBQ *.jsonl files in {root / TRUST_FILES['bbq']}")
        return {"crows_pairs": crows_pairs(model, tokenizer, root / TRUST_FILES["crows_pairs"], limit, show_progress),
                "bbq": bbq(model, tokenizer, bbq_files, limit, show_progress)}
    from slmkit.data.corpus import pydoc_documents
    from slmkit.evaluate.trust.privacy import canary_memorization, pii_completion
    filler = [doc[:400] for doc in pydoc_documents()[:64]]
    return {"canaries": canary_memorization(model, tokenizer, filler, seed=seed, show_progress=show_progress),
            "pii": pii_completion(model, tokenizer, root / TRUST_FILES["pii"], limit or 200, show_progress)}
