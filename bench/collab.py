"""SLM-LLM collaboration benchmark: speculative decoding, cascade cost-accuracy, and a load test of `slm serve`.

    python bench/collab.py            # quick mode (minutes)
    python bench/collab.py --full     # more prompts, tokens, questions, the 32 x 20 load test
    python bench/collab.py --full --skip speculative privacy cascade --max-batch 1   # load test only, no batching

Speculative decoding: target = dense SmolLM2-135M; drafts = int8 and int4 copies of it made by slmkit (the same
tokenizer), run by slmkit's speculative loop and by transformers' assisted generation on the
same pair. Cascade: LAMBADA last-word completion (a 135M model answers lettered multiple choice
at chance, so there confidence says nothing); the local SLM is a 20% magnitude-pruned SmolLM2
(slmkit's `magnitude` step), the "LLM" is the dense model behind a second `slm serve` reached over
HTTP; the threshold is calibrated on one half and applied to the other. Load test: concurrent
OpenAI clients against `slm serve`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import torch
from common import DATA, ROOT  # (also puts the checkout on sys.path)

from slmkit.collab.cascade import confidence, cost_accuracy_curve, is_correct, pick_threshold, plot_curve
from slmkit.collab.speculative import speculative_generate
from slmkit.data.records import read_records
from slmkit.generation import SamplingParams, chat_prompt_ids, generate_ids
from slmkit.models.loading import load
from slmkit.serve.engine import TransformersEngine

PROMPTS = ["Explain why the sky is blue in two sentences.", "Write a short poem about the sea.",
           "What are three benefits of regular exercise?", "Describe how a bicycle works.",
           "Give me a recipe for pancakes.", "What is the capital of France and why is it famous?"]


def slmkit_draft(model, tokenizer, method: str, **options):
    """A draft made by one of slmkit's own compression steps (the toolkit's job: make the draft)."""
    from slmkit.steps import StepContext, get_step

    step = get_step(method)
    context = StepContext(tokenizer=tokenizer, calibration_source=str(DATA / "c4" / "c4_demo.jsonl"), nsamples=16, seqlen=512)
    return step.function()(copy.deepcopy(model), tokenizer, step.options(**options), context)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_speculative(full: bool) -> list[dict]:
    target, tokenizer = load("smollm2-135m")
    n_prompts, n_tokens = (6, 128) if full else (4, 64)
    params = SamplingParams(max_new_tokens=n_tokens, stop_token_ids=())  # fixed length: comparable speeds
    prompts = [chat_prompt_ids(tokenizer, p) for p in PROMPTS[:n_prompts]]
    baseline = [timed(lambda ids=ids: generate_ids(target, ids, params)) for ids in prompts]
    base_time = sum(t for _, t in baseline)
    tokens = sum(len(o) for o, _ in baseline)
    rows = [{"method": "target alone (slmkit loop)", "draft": "-", "tok_s": tokens / base_time, "speedup": 1.0,
             "acceptance": "-", "identical": "-"}]
    hf = [timed(lambda ids=ids: target.generate(ids, max_new_tokens=n_tokens, min_new_tokens=n_tokens, do_sample=False))
          for ids in prompts]
    hf_time = sum(t for _, t in hf)
    rows.append({"method": "target alone (transformers generate)", "draft": "-", "tok_s": tokens / hf_time,
                 "speedup": base_time / hf_time, "acceptance": "-", "identical": "-"})
    drafts = {"slmkit rtn int8": slmkit_draft(target, tokenizer, "rtn", bits=8),
              "slmkit gptq int4 g64": slmkit_draft(target, tokenizer, "gptq", bits=4, group_size=64)}
    for name, draft in drafts.items():
        spec, accepted, proposed = [], 0, 0
        for ids in prompts:
            (out, stats), seconds = timed(lambda ids=ids, draft=draft: speculative_generate(target, draft, ids, params, k=3))
            spec.append((out, seconds))
            accepted, proposed = accepted + stats.accepted, proposed + stats.proposed
        same = all(o == b for (o, _), (b, _) in zip(spec, baseline))
        spec_time = sum(t for _, t in spec)
        rows.append({"method": "slmkit speculative (adaptive k)", "draft": name, "tok_s": tokens / spec_time,
                     "speedup": base_time / spec_time, "acceptance": accepted / proposed, "identical": same})
        assisted = [timed(lambda ids=ids, draft=draft: target.generate(ids, assistant_model=draft, max_new_tokens=n_tokens,
                                                          min_new_tokens=n_tokens, do_sample=False)) for ids in prompts]
        same_hf = all(torch.equal(o, b) for (o, _), (b, _) in zip(assisted, hf))  # vs transformers' own greedy
        a_time = sum(t for _, t in assisted)
        rows.append({"method": "transformers assisted generation", "draft": name, "tok_s": tokens / a_time,
                     "speedup": base_time / a_time, "acceptance": "n/a", "identical": same_hf})
    return rows


def lambada_items(n: int) -> list[dict]:
    rows = read_records(DATA / "zeroshot/llmfoundry/lambada_openai.jsonl")
    return [{"prompt": row["context"], "answer": row["continuation"]} for row in rows[:n]]


def start_server(model: str, port: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "slmkit.cli", "serve", model, "--port", str(port), *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"slm serve {model} did not start")


def bench_cascade(full: bool, upstream_url: str, out_dir: Path) -> dict:
    from slmkit.compress.pruning.magnitude import magnitude_prune
    from slmkit.compress.pruning.options import MagnitudeOptions

    questions = lambada_items(400 if full else 60)
    net, tokenizer = load("smollm2-135m")
    local = TransformersEngine(magnitude_prune(net, tokenizer, MagnitudeOptions(sparsity=0.2)), tokenizer, "local")
    params = SamplingParams(max_new_tokens=3, stop_token_ids=local.stop_token_ids)
    records = []
    with httpx.Client(timeout=120) as http:
        for q in questions:
            ids = local.text_ids(q["prompt"])
            answer = [t for t in local.stream(ids, params) if t not in local.stop_token_ids]
            reply = http.post(f"{upstream_url}/completions", json={
                "model": "llm", "prompt": q["prompt"], "max_tokens": 3, "temperature": 0}).json()
            records.append({"confidence": confidence(local.answer_logprobs(ids, answer), "mean"),
                            "local": is_correct(local.decode(answer), q["answer"]),
                            "upstream": is_correct(reply["choices"][0]["text"], q["answer"])})
    half = len(records) // 2
    calib, test = records[:half], records[half:]
    curve = cost_accuracy_curve([r["confidence"] for r in calib], [r["local"] for r in calib], [r["upstream"] for r in calib])
    upstream_acc_calib = sum(r["upstream"] for r in calib) / len(calib)
    try:
        chosen = pick_threshold(curve, target_accuracy=0.95 * upstream_acc_calib)
    except Exception:  # noqa: BLE001 - no threshold reaches it: take the budget rule instead
        chosen = pick_threshold(curve, budget=0.5)
    plot_curve(curve, out_dir / "cascade_curve.png", chosen, title="cascade, LAMBADA (calibration half)")
    escalate = [r["confidence"] < chosen.threshold for r in test]
    cascade_acc = sum(r["upstream"] if e else r["local"] for r, e in zip(test, escalate)) / len(test)
    return {"questions": len(records), "test": len(test), "threshold": chosen.threshold,
            "local_acc": sum(r["local"] for r in test) / len(test), "upstream_acc": sum(r["upstream"] for r in test) / len(test),
            "cascade_acc": cascade_acc, "upstream_share": sum(escalate) / len(test)}


def bench_privacy(full: bool) -> list[dict]:
    """Per-type precision/recall on held-out templates of the rule detectors with the learned tagger (all training records)."""
    from slmkit.collab.pii_tagger import evaluate_detector, split_by_template, train_tagger
    from slmkit.collab.privacy import PrivacyProxy

    records = json.loads((DATA / "safety/pii/presidio_synth_dataset_v2.json").read_text())
    train, test = split_by_template(records, 0.2)
    net, tokenizer = load("smollm2-135m")
    tagger = train_tagger(net, tokenizer, train, epochs=12 if full else 8)
    both = evaluate_detector(PrivacyProxy(tagger).detect, test)
    restored = 0
    for r in test:  # an upstream that echoes the redacted text: every placeholder must come back
        redacted, redaction = PrivacyProxy(tagger).redact(r["full_text"])
        restored += redaction.restore(redacted) == r["full_text"]
    from slmkit.collab.pii_tagger import LEARNED_TYPES
    from slmkit.collab.privacy import ENTITY_RULES, RULE_TYPES

    entity_rule_types = {label for label, _, _ in ENTITY_RULES}
    kind = lambda k: ("rules" if k in RULE_TYPES else "rules+tagger" if k in entity_rule_types  # noqa: E731
                      else "tagger" if k in LEARNED_TYPES else "none (not detected)")
    rows = [{"entity": k, "support": v["support"], "precision": v["precision"], "recall": v["recall"], "detector": kind(k)}
            for k, v in both.items() if v["support"]]
    rows.append({"entity": "echo round-trip restored", "support": len(test), "precision": "-",
                 "recall": restored / len(test), "detector": "all"})
    return rows, len(train), len(test)


def bench_load(url: str, pid: int, clients: int, requests: int, max_tokens: int) -> dict:
    import openai
    import psutil

    proc = psutil.Process(pid)
    rss_cold = proc.memory_info().rss
    warm = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=600)
    warm.chat.completions.create(model="llm", messages=[{"role": "user", "content": "Hello."}], max_tokens=max_tokens)
    rss_before = proc.memory_info().rss
    latencies, errors = [], []
    lock = threading.Lock()

    def client_loop(i: int) -> None:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=600)
        for j in range(requests):
            start = time.perf_counter()
            try:
                client.chat.completions.create(model="llm", messages=[{"role": "user", "content": f"Say hello to user {i}-{j}."}],
                                               max_tokens=max_tokens, temperature=0)
                with lock:
                    latencies.append(time.perf_counter() - start)
            except Exception as err:  # noqa: BLE001 - counted
                with lock:
                    errors.append(type(err).__name__)

    start = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    time.sleep(2)
    rss_after = proc.memory_info().rss
    stats = httpx.get(f"{url}/stats", timeout=10).json()
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else [float("nan")] * 19
    return {"clients": clients, "requests": clients * requests, "max_tokens": max_tokens, "max_batch": stats["max_batch"],
            "mean_batch": stats["mean_batch_size"], "errors": len(errors),
            "p50_s": statistics.median(latencies) if latencies else float("nan"), "p95_s": q[18], "wall_s": wall,
            "req_s": len(latencies) / wall, "rss_cold_mb": rss_cold / 2**20, "rss_before_mb": rss_before / 2**20,
            "rss_after_mb": rss_after / 2**20}


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--port", type=int, default=18731)
    parser.add_argument("--out", default="/tmp/slmkit-bench-collab")
    parser.add_argument("--skip", nargs="*", default=[], choices=["speculative", "privacy", "cascade", "load"])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest on shared cores)")
    parser.add_argument("--max-batch", type=int, default=None, help="the server's --max-batch (default: its own)")
    parser.add_argument("--load-requests", type=int, default=None, help="requests per load-test client (default 20 full, 2 quick)")
    args = parser.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    results = {}
    if "speculative" not in args.skip:
        rows = bench_speculative(args.full)
        results["speculative"] = rows
        print("## speculative decoding (target = dense SmolLM2-135M, greedy)\n" + table(rows) + "\n", flush=True)
    if "privacy" not in args.skip:
        rows, n_train, n_test = bench_privacy(args.full)
        results["privacy"] = rows
        print(f"## privacy proxy, presidio synth v2 ({n_train} train / {n_test} held-out records, split by template)\n"
              + table(rows) + "\n", flush=True)
    if not {"cascade", "load"} <= set(args.skip):
        batching = ["--max-batch", str(args.max_batch)] if args.max_batch else []
        server = start_server("smollm2-135m", args.port, "--name", "llm", *batching)
        url = f"http://127.0.0.1:{args.port}/v1"
        try:
            if "cascade" not in args.skip:
                res = bench_cascade(args.full, url, out_dir)
                results["cascade"] = res
                print("## cascade on LAMBADA (local = 20% magnitude-pruned SmolLM2, upstream = dense SmolLM2 over HTTP)\n"
                      + table([res]) + "\n", flush=True)
            if "load" not in args.skip:
                clients, requests, max_tokens = (32, 20, 8) if args.full else (32, 2, 4)
                requests = args.load_requests or requests
                res = bench_load(url, server.pid, clients, requests, max_tokens)
                results["load"] = res
                print("## load test (slm serve smollm2-135m, transformers backend)\n" + table([res]) + "\n", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
