"""Calibration benchmark: which calibration text makes GPTQ/AWQ/importance-RTN onto Q4_0 generalise.

For smollm2-135m, each method (rtn, rtn --importance, gptq, awq; all `gguf_type` Q4_0) is run through
slmkit's step functions on each calibration source, and scored against the dense model on two texts the
default calibration never sees: WikiText-2 test and the C4 demo (24 windows of 512 tokens each; as
llama-perplexity --kl-divergence does, the second half of every window is scored with the first half as
context). Reported: mean KL divergence to the dense model and perplexity. The GgmlLinear modules decode
exactly what the GGUF file holds, so these are the file's logits (on an fp32 base instead of F16).
GPTQ's ratio to importance-RTN on the same calibration is the proxy for "GPTQ vs llama.cpp's imatrix".

    python bench/calibration.py                                  # every method x pydoc, mixed, c4
    python bench/calibration.py --methods gptq rtn-imatrix --sources mixed --gptq damp=0.05

Dense log-probabilities are cached under bench/results/calibration/; each row's result is kept in
results.json (keyed by method, source, options) so a rerun only computes new rows.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch
from common import DATA, ROOT

RESULTS = ROOT / "bench" / "results" / "calibration"
MODEL = "smollm2-135m"
EVAL = {"wikitext2": DATA / "wikitext2" / "wiki.test.raw", "c4": DATA / "c4" / "c4_demo.jsonl"}
SOURCES = {"pydoc": "pydoc", "mixed": "mixed", "generated": "generated", "c4": str(EVAL["c4"])}
METHODS = {"rtn": ("rtn", {}), "rtn-imatrix": ("rtn", {"importance": True}), "gptq": ("gptq", {}), "awq": ("awq", {})}
WINDOWS, SEQLEN = 24, 512


def eval_ids(tokenizer, path) -> torch.Tensor:
    """The first WINDOWS x SEQLEN tokens of a text, documents joined by blank lines (the perplexity protocol)."""
    from slmkit.data.corpus import corpus_text

    ids = tokenizer(corpus_text(str(path)), add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    return ids[: WINDOWS * SEQLEN].view(WINDOWS, SEQLEN)


@torch.no_grad()
def scored_logprobs(model, ids: torch.Tensor, batch: int = 4):
    """Log-probabilities of the scored half of each window, one [b, SEQLEN/2, vocab] chunk at a time."""
    for start in range(0, ids.shape[0], batch):
        logits = model(ids[start:start + batch]).logits[:, SEQLEN // 2 - 1:-1].float()
        yield torch.log_softmax(logits, dim=-1)


def dense_logprobs(model, name: str, ids: torch.Tensor) -> list[torch.Tensor]:
    """The dense model's scored log-probabilities (fp16 on disk, computed once)."""
    path = RESULTS / f"dense-{name}-{WINDOWS}x{SEQLEN}.pt"
    if path.is_file():
        return torch.load(path)
    chunks = [lp.half() for lp in scored_logprobs(model, ids)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    torch.save(chunks, path)
    return chunks


@torch.no_grad()
def score(model, ids: torch.Tensor, dense: list[torch.Tensor]) -> dict:
    """Mean KL(dense || quantized) per scored token and the quantized model's perplexity."""
    kl, nll, count = 0.0, 0.0, 0
    for i, (lq, lp) in enumerate(zip(scored_logprobs(model, ids), dense)):
        lp = lp.float()
        kl += (lp.exp() * (lp - lq)).sum().item()
        targets = ids[4 * i:4 * i + lq.shape[0], SEQLEN // 2:]
        nll -= lq.gather(-1, targets[..., None]).sum().item()
        count += targets.numel()
    return {"kld": kl / count, "ppl": float(torch.tensor(nll / count).exp())}


def quantize(model, tokenizer, method: str, source: str, extra: dict, nsamples: int, seed: int):
    """A Q4_0 copy of the model by one method, calibrated on one source."""
    from slmkit.steps import StepContext, get_step

    name, options = METHODS[method]
    step = get_step(name)
    context = StepContext(seed=seed, calibration_source=SOURCES[source], nsamples=nsamples, seqlen=SEQLEN,
                          tokenizer=tokenizer, model=model)
    context.calibration_ids()  # written by the dense model, before any copy is changed
    quantized = copy.deepcopy(model)
    context.model = quantized
    return step.function()(quantized, tokenizer, step.options(gguf_type="Q4_0", **options, **extra), context)


def parse_extra(pairs: list[str]) -> dict:
    """key=value options for the method (numbers and booleans parsed)."""
    extra = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        extra[key] = json.loads(value) if value not in ("", None) and value[0] in "0123456789-tf[" else value
    return extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--sources", nargs="+", default=["pydoc", "mixed", "c4"], choices=list(SOURCES))
    parser.add_argument("--nsamples", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gptq", nargs="*", default=[], help="extra GPTQ options, key=value")
    parser.add_argument("--awq", nargs="*", default=[], help="extra AWQ options, key=value")
    args = parser.parse_args()

    from slmkit.models.loading import load

    model, tokenizer = load(MODEL)
    ids = {name: eval_ids(tokenizer, path) for name, path in EVAL.items()}
    dense = {name: dense_logprobs(model, name, ids[name]) for name in EVAL}
    results_path = RESULTS / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for source in args.sources:
        for method in args.methods:
            extra = parse_extra(getattr(args, method.split("-")[0], []) if method in ("gptq", "awq") else [])
            key = f"{method}|{source}|{args.nsamples}|{args.seed}|{json.dumps(extra, sort_keys=True)}"
            if key not in results:
                start = time.perf_counter()
                quantized = quantize(model, tokenizer, method, source, extra, args.nsamples, args.seed)
                row = {name: score(quantized, ids[name], dense[name]) for name in EVAL}
                results[key] = {**row, "seconds": round(time.perf_counter() - start, 1)}
                results_path.write_text(json.dumps(results, indent=1))
            r = results[key]
            print(f"{method:12s} {source:8s} {json.dumps(extra):28s} wiki KLD {r['wikitext2']['kld']:.4f} "
                  f"ppl {r['wikitext2']['ppl']:7.2f} | c4 KLD {r['c4']['kld']:.4f} ppl {r['c4']['ppl']:7.2f}", flush=True)
    if "dense" not in results:
        results["dense"] = {name: score(model, ids[name], dense[name])["ppl"] for name in EVAL}
        results_path.write_text(json.dumps(results, indent=1))
    print(f"dense perplexity: wiki {results['dense']['wikitext2']:.2f} | c4 {results['dense']['c4']:.2f}")


if __name__ == "__main__":
    main()
