"""Structured compression of SmolLM2-135M: depth, width and low-rank at 25% and 50% of the
non-embedding parameters removed, against the dense model measured in the same run.

For every setting: WikiText-2 perplexity (paper protocol, seqlen 2048), parameters, bytes on disk,
prefill and decode tokens/s (each model profiled in a fresh process, the dense model again right after
it), as ratios to the dense model.
No peer tool is involved: the reference is the dense model. Calibration: C4 sample.

    python bench/structured.py            # quick: 8 perplexity windows, fewer settings
    python bench/structured.py --full     # all of WikiText-2 and every setting (incl. the perplexity score)
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import tempfile
import time
from pathlib import Path

from common import DATA, ROOT  # noqa: E402  (also puts the checkout on sys.path)

WIKITEXT = DATA / "wikitext2" / "wiki.test.raw"
C4 = DATA / "c4" / "c4_demo.jsonl"


def settings(full: bool) -> list[tuple[str, str, str, dict]]:
    """(label, target removal of non-embedding parameters, step, options), most telling first.
    Depth removes that fraction of layers; MLP channels hold 3/4 of a layer's parameters, so the MLP
    ratio is target / 0.75; low-rank keeps `rank_ratio` of every factorized Linear's parameters."""
    quick = [
        ("depth last", "25%", "depth_prune", dict(ratio=0.25, score="last")),
        ("depth block_influence", "25%", "depth_prune", dict(ratio=0.25, score="block_influence")),
        ("width mlp (50% of channels)", "37.5%", "width_prune", dict(mlp_ratio=0.5)),
        ("low-rank plain svd", "50%", "low_rank", dict(rank_ratio=0.5, activation_aware="none")),
        ("low-rank svd-llm", "50%", "low_rank", dict(rank_ratio=0.5, activation_aware="svd-llm")),
        ("low-rank asvd", "50%", "low_rank", dict(rank_ratio=0.5, activation_aware="asvd")),
        ("depth angular block", "25%", "depth_prune", dict(ratio=0.25, score="angular", contiguous=True)),
        ("depth last", "50%", "depth_prune", dict(ratio=0.5, score="last")),
        ("depth block_influence", "50%", "depth_prune", dict(ratio=0.5, score="block_influence")),
        ("width mlp", "25%", "width_prune", dict(mlp_ratio=0.333)),
        ("width mlp", "50%", "width_prune", dict(mlp_ratio=0.667)),
        ("low-rank svd-llm", "25%", "low_rank", dict(rank_ratio=0.75, activation_aware="svd-llm")),
        ("low-rank svd-llm global ranks", "25%", "low_rank", dict(rank_ratio=0.75, activation_aware="svd-llm", allocation="global")),
    ]
    if not full:
        return quick
    more = [
        ("depth angular", "25%", "depth_prune", dict(ratio=0.25, score="angular")),
        ("depth ppl", "25%", "depth_prune", dict(ratio=0.25, score="ppl")),
        ("depth angular block", "50%", "depth_prune", dict(ratio=0.5, score="angular", contiguous=True)),
        ("depth ppl", "50%", "depth_prune", dict(ratio=0.5, score="ppl")),
        ("width mlp+heads+hidden", "50%", "width_prune", dict(mlp_ratio=0.5, heads_ratio=1 / 3, hidden_ratio=0.1)),
        ("low-rank plain svd", "25%", "low_rank", dict(rank_ratio=0.75, activation_aware="none")),
        ("low-rank asvd", "25%", "low_rank", dict(rank_ratio=0.75, activation_aware="asvd")),
    ]
    return quick + more


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="whole WikiText-2 test set and every setting")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--only", default=None, help="run only settings whose label contains this")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "structured.json")
    parser.add_argument("--reuse-dense", type=Path, default=None,
                        help="take the dense perplexity and profile from an earlier run's JSON (to run settings in parts)")
    args = parser.parse_args()

    import torch

    from slmkit.evaluate.perplexity import perplexity_of_ids, tokenize_corpus
    from slmkit.evaluate.profile import Profile, compare, count_parameters, measure_in_subprocess
    from slmkit.layouts import hf
    from slmkit.models.loading import load
    from slmkit.steps import StepContext, get_step

    torch.manual_seed(0)
    dense, tokenizer = load(args.model)
    ids = tokenize_corpus(tokenizer, str(WIKITEXT))
    windows = None if args.full else 8
    profile_kwargs = dict(prompt_tokens=512, decode_tokens=32 if not args.full else 128, repeats=3 if not args.full else 5)
    context = StepContext(tokenizer=tokenizer, calibration_source=str(C4), nsamples=8 if not args.full else 64, seqlen=512)
    context.calibration_ids()

    def ppl(model) -> float:
        return perplexity_of_ids(model, ids, 2048, windows, show_progress=False).perplexity

    embed = dense.get_input_embeddings().weight.numel()
    dense_params = count_parameters(dense)[0]
    if args.reuse_dense:
        earlier = json.loads(args.reuse_dense.read_text())
        dense_ppl, dense_profile = earlier["rows"][0]["ppl"], Profile(**earlier["dense_profile"])
    else:
        dense_ppl = ppl(dense)
        dense_profile = measure_in_subprocess(args.model, **profile_kwargs)
    print(f"dense: ppl {dense_ppl:.2f}, {dense_params:,} parameters ({dense_params - embed:,} non-embedding), "
          f"prefill {dense_profile.prefill_tokens_per_s:.0f} tok/s, decode {dense_profile.decode_tokens_per_s:.1f} tok/s",
          flush=True)
    results = [dict(setting="dense", target="0%", ppl=dense_ppl, removed=0.0, ratios={}, seconds=0.0)]
    scratch = Path(tempfile.mkdtemp(prefix="slmkit-bench-structured-"))
    try:
        for label, target, step, options in settings(args.full):
            if args.only and args.only not in label:
                continue
            spec = get_step(step)
            start = time.perf_counter()
            model = spec.function()(copy.deepcopy(dense), tokenizer, spec.options(**options), context)
            seconds = time.perf_counter() - start
            params = count_parameters(model)[0]
            removed = 1 - (params - embed) / (dense_params - embed)
            row = dict(setting=label, target=target, options=options, ppl=ppl(model), removed=removed, seconds=seconds)
            folder = scratch / "model"
            hf.save(model, tokenizer, folder)
            del model
            # The dense model is profiled again right after each compressed one, so a ratio never
            # compares measurements taken under different machine load.
            profile = measure_in_subprocess(str(folder), **profile_kwargs)
            row["ratios"] = compare(measure_in_subprocess(args.model, **profile_kwargs), profile)
            shutil.rmtree(folder)
            results.append(row)
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(dict(dense_profile=dense_profile.to_dict(), rows=results), indent=1, default=str))
            print(f"{label} {target}: ppl {row['ppl']:.2f}, removed {removed:.1%}, "
                  f"prefill x{row['ratios']['prefill_tokens_per_s']:.2f}, decode x{row['ratios']['decode_tokens_per_s']:.2f}",
                  flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(dict(dense_profile=dense_profile.to_dict(), rows=results), indent=1, default=str))
    print_table(results, windows)


def print_table(results: list[dict], windows) -> None:
    print(f"\nWikiText-2 perplexity (seqlen 2048, {windows or 'all'} windows); ratios vs dense in the same run")
    print("| setting | target | non-emb. removed | perplexity | params × | bytes × | prefill × | decode × | compress s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in results:
        r = row["ratios"]

        def f(key, r=r):
            return f"{r[key]:.2f}" if key in r else "1.00"

        print(f"| {row['setting']} | {row['target']} | {row['removed']:.1%} | {row['ppl']:.2f} | {f('parameters')} | "
              f"{f('bytes_on_disk')} | {f('prefill_tokens_per_s')} | {f('decode_tokens_per_s')} | {row['seconds']:.0f} |")


if __name__ == "__main__":
    main()
