"""Run a recipe: load → steps → save → evaluate, into an output folder that appears only when complete."""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from slmkit.data.generated import MODEL_SOURCES
from slmkit.failpoints import failpoint
from slmkit.models.source import resolve_model
from slmkit.outputs import check_target
from slmkit.recipe import Recipe, StepEntry, load_recipe, parse_recipe
from slmkit.steps import StepContext, get_step, origin_of


def as_recipe(recipe: Recipe | str | Path | dict) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return parse_recipe(recipe)
    return load_recipe(recipe)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def calibration_source(recipe: Recipe) -> str:
    """The recipe's calibration source; with layer offload the model cannot write its own text (that needs the
    whole model in memory), so the default falls back to pydoc (check_offload rejects an explicit one)."""
    source = recipe.calibration.data
    return "pydoc" if recipe.offload and source in MODEL_SOURCES else source


def step_context(recipe: Recipe, tokenizer) -> StepContext:
    return StepContext(
        seed=recipe.seed,
        calibration_source=calibration_source(recipe),
        nsamples=recipe.calibration.nsamples,
        seqlen=recipe.calibration.seqlen,
        tokenizer=tokenizer,
    )


def step_record(entry: StepEntry, start: float, notes: list[str]) -> dict:
    """What the manifest says about one step: its options, its time, and the lines it logged."""
    record = {"step": entry.name, "options": entry.options.model_dump(), "seconds": round(time.perf_counter() - start, 3)}
    return {**record, "log": notes} if notes else record


def apply_steps(model, tokenizer, recipe: Recipe) -> tuple[Any, list[dict]]:
    """Apply the recipe's steps in order; return the model and a log of what each did and took."""
    context = step_context(recipe, tokenizer)
    log = []
    for entry in recipe.steps:
        step = get_step(entry.name)
        context.model = model  # the model-written calibration text comes from the model as the step receives it
        start, logged = time.perf_counter(), len(context.log)
        result = step.function()(model, tokenizer, entry.options, context)
        model = result if result is not None else model
        log.append(step_record(entry, start, context.log[logged:]))
        failpoint("step")
    return model, log


def write_outputs(folder: Path, recipe: Recipe, step_log: list[dict], timings: dict, metrics: dict, baseline: dict) -> dict:
    """Write the manifest and report.md of a run into `folder`; return the manifest."""
    from slmkit.evaluate.report import run_report
    from slmkit.models.saving import versions, write_manifest

    timings["total"] = sum(timings.values())
    manifest = {
        "format": recipe.save.format,
        "source": recipe.model,
        "origin": origin_of([record["step"] for record in step_log]),
        "recipe": recipe.to_dict(),
        "seed": recipe.seed,
        "versions": versions(),
        "steps": step_log,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "metrics": metrics,
        "baseline": baseline,
    }
    write_manifest(folder, manifest)
    (folder / "report.md").write_text(run_report(manifest))
    return manifest


def run_offloaded(recipe: Recipe, out: Path, show_progress: bool = True, overwrite: bool = False) -> dict:
    """Run the steps with layer offload: each reads the previous one's folder a decoder layer at a time.

    The whole model is never in memory; recipe validation has ensured there is no evaluation to run."""
    from slmkit.compress.offload import compress_offloaded
    from slmkit.layouts.common import torch_dtype
    from slmkit.models.loading import model_folder
    from slmkit.outputs import atomic_folder

    source = Path(model_folder(resolve_model(recipe.model)))
    context = step_context(recipe, None)
    step_log = []
    start = time.perf_counter()
    with atomic_folder(out, overwrite) as tmp, tempfile.TemporaryDirectory(prefix=f".{out.name}.tmp-{os.getpid()}-steps-", dir=tmp.parent) as scratch:
        for i, entry in enumerate(recipe.steps):
            target = tmp if i == len(recipe.steps) - 1 else Path(scratch) / f"step-{i}"
            step_start, logged = time.perf_counter(), len(context.log)
            compress_offloaded(source, target, entry.name, entry.options, context, show_progress, torch_dtype(recipe.dtype))
            step_log.append(step_record(entry, step_start, context.log[logged:]))
            source = target
        return write_outputs(tmp, recipe, step_log, {"steps": time.perf_counter() - start}, {}, {})


def run(recipe: Recipe | str | Path | dict, out: str | Path, show_progress: bool = True, overwrite: bool = False) -> dict:
    """Execute a recipe and write `out/` (model, slmkit.json, report.md). Returns the manifest."""
    recipe = as_recipe(recipe)
    out = check_target(out, overwrite)  # before torch is even imported
    from slmkit import layouts
    from slmkit.models.loading import load
    from slmkit.outputs import atomic_folder

    seed_everything(recipe.seed)
    if recipe.offload:
        return run_offloaded(recipe, out, show_progress, overwrite)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    model, tokenizer = load(recipe.model, recipe.dtype)
    timings["load"] = time.perf_counter() - start

    baseline = {} if recipe.save.format == "gguf" else measure_baseline(model, tokenizer, recipe, show_progress)
    start = time.perf_counter()
    model, step_log = apply_steps(model, tokenizer, recipe)
    timings["steps"] = time.perf_counter() - start

    with atomic_folder(out, overwrite) as tmp:
        start = time.perf_counter()
        layouts.save(model, tokenizer, tmp, recipe.save.format)
        failpoint("save:layout")
        timings["save"] = time.perf_counter() - start
        if recipe.save.format == "gguf":  # what ships is a llama.cpp file: measure it, and the baseline, in llama.cpp
            del model
            metrics, baseline = evaluate_gguf(tokenizer, recipe, tmp / "model.gguf", show_progress)
        else:
            metrics = score_output(model, tokenizer, recipe, show_progress)
            del model  # profile in fresh processes; free this one's memory first
            metrics.update(profile_output(recipe, tmp, baseline))
        if "profile" in metrics:
            metrics["profile"]["model"] = str(out)
        return write_outputs(tmp, recipe, step_log, timings, metrics, baseline)


def suite_kwargs(recipe: Recipe, show_progress: bool) -> dict:
    ev = recipe.eval
    return dict(tasks=ev.tasks, trust=ev.trust, limit=ev.limit, data=ev.trust_data, seed=recipe.seed, show_progress=show_progress)


def measure_baseline(model, tokenizer, recipe: Recipe, show_progress: bool) -> dict:
    """Perplexity and suite scores of the uncompressed model, before the steps change it."""
    from slmkit.evaluate.perplexity import corpus_ids, perplexity_of_ids
    from slmkit.evaluate.suite import evaluate_suite

    ppl, ev, baseline = recipe.eval.perplexity, recipe.eval, {}
    if ev.baseline and ppl:
        baseline["perplexity"] = perplexity_of_ids(model, corpus_ids(tokenizer, ppl.data, ppl.seqlen, ppl.max_windows, ppl.from_end),
                                                   ppl.seqlen, ppl.max_windows, show_progress=show_progress).to_dict()
    if ev.baseline and (ev.tasks or ev.trust):
        baseline.update(evaluate_suite(model, tokenizer, **suite_kwargs(recipe, show_progress)))
    return baseline


def score_output(model, tokenizer, recipe: Recipe, show_progress: bool) -> dict:
    """The compressed model's perplexity and suite scores."""
    from slmkit.evaluate.perplexity import corpus_ids, perplexity_of_ids
    from slmkit.evaluate.suite import evaluate_suite

    ppl, ev, metrics = recipe.eval.perplexity, recipe.eval, {}
    if ppl:
        metrics["perplexity"] = perplexity_of_ids(model, corpus_ids(tokenizer, ppl.data, ppl.seqlen, ppl.max_windows, ppl.from_end),
                                                  ppl.seqlen, ppl.max_windows, show_progress=show_progress).to_dict()
    if ev.tasks or ev.trust:
        metrics.update(evaluate_suite(model, tokenizer, **suite_kwargs(recipe, show_progress)))
    return metrics


def profile_output(recipe: Recipe, folder: Path, baseline: dict) -> dict:
    """The saved model's profile, and the baseline's into `baseline`, each in a fresh process."""
    from slmkit.evaluate.profile import measure_in_subprocess

    prof = recipe.eval.profile
    if not prof:
        return {}
    if recipe.eval.baseline:
        baseline["profile"] = measure_in_subprocess(recipe.model, **prof.model_dump()).to_dict()
    return {"profile": measure_in_subprocess(str(folder), **prof.model_dump()).to_dict()}


def evaluate_gguf(tokenizer, recipe: Recipe, file: Path, show_progress: bool) -> tuple[dict, dict]:
    """(metrics, baseline) of a GGUF output, both measured in llama.cpp on the same tokens: the file itself, and
    the uncompressed model exported to F16 GGUF; plus the uncompressed model's transformers profile for reference."""
    from slmkit.evaluate.llamacpp import LlamaCppModel, perplexity_llamacpp
    from slmkit.evaluate.llamacpp_profile import dense_gguf, measure_llamacpp_in_subprocess
    from slmkit.evaluate.perplexity import corpus_ids
    from slmkit.evaluate.profile import measure_in_subprocess
    from slmkit.evaluate.suite import evaluate_suite

    ppl, prof, ev = recipe.eval.perplexity, recipe.eval.profile, recipe.eval
    files = {"metrics": file, **({"baseline": dense_gguf(recipe.model, "F16")} if ev.baseline else {})}
    results: dict[str, dict] = {"metrics": {}, "baseline": {}}
    ids = corpus_ids(tokenizer, ppl.data, ppl.seqlen, ppl.max_windows, ppl.from_end) if ppl else None
    for role, path in files.items():
        if ppl:
            results[role]["perplexity"] = perplexity_llamacpp(path, ids, ppl.seqlen, ppl.max_windows,
                                                              show_progress=show_progress).to_dict()
        if ev.tasks:
            results[role].update(evaluate_suite(LlamaCppModel(path), tokenizer, **suite_kwargs(recipe, show_progress)))
        if prof:
            results[role]["profile"] = measure_llamacpp_in_subprocess(str(path), **prof.model_dump()).to_dict()
    if prof and ev.baseline:
        results["baseline"]["profile_transformers"] = measure_in_subprocess(recipe.model, **prof.model_dump()).to_dict()
    return results["metrics"], results["baseline"]
