"""Quantization benchmark: slmkit vs llmcompressor on smollm2-135m, torchao as the kernel peer.

For each method (RTN/GPTQ/AWQ at W4 g64 and W8, SmoothQuant W8A8): wall time and peak RSS of
the whole quantize-and-save process, WikiText-2 perplexity (seqlen 2048), size of the saved
weights; then prefill/decode speed of packed int8/int4 models against fp32 in slmkit's decode
loop, and torchao int8/int4 weight-only in the same loop. Both tools get the same calibration
tokens (C4 demo). Results are cached per row in bench/results/quantization/ so a rerun resumes.

    python bench/quantization.py            # quick: 32 x 512 calibration, 2 eval windows, 5 methods
    python bench/quantization.py --full     # 128 x 2048 calibration, all eval windows
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from common import DATA, LLMCOMPRESSOR  # noqa: E402

CALIB = DATA / "c4" / "c4_demo.jsonl"
WIKI = DATA / "wikitext2" / "wiki.test.raw"
RESULTS = ROOT / "bench" / "results" / "quantization"
MODEL = "smollm2-135m"
SLM = [sys.executable, "-m", "slmkit.cli"]

# name: (slm compress options, peer method)
METHODS = {
    "rtn-w4g64": (["--method", "rtn", "--bits", "4", "--group-size", "64"], "rtn-w4g64"),
    "gptq-w4g64": (["--method", "gptq", "--bits", "4", "--group-size", "64"], "gptq-w4g64"),
    "awq-w4g64": (["--method", "awq", "--bits", "4", "--group-size", "64"], "awq-w4g64"),
    "rtn-w8": (["--method", "rtn", "--bits", "8"], "rtn-w8"),
    "gptq-w8": (["--method", "gptq", "--bits", "8"], "gptq-w8"),
    "awq-w8": (["--method", "awq", "--bits", "8"], "awq-w8"),
    "smoothquant-w8a8": (["--method", "smoothquant"], "smoothquant-w8a8"),
}
QUICK = ["rtn-w4g64", "gptq-w4g64", "awq-w4g64", "rtn-w8", "smoothquant-w8a8"]


def run_timed(cmd: list[str], env: dict | None = None) -> tuple[float, int, str, str]:
    """(wall seconds, peak RSS bytes of this child alone, stdout, stderr); raises with the child's last error line."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True,
                                env={**os.environ, "SLMKIT_PROGRESS": "0", "PYTHONPATH": str(ROOT), **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode:
        lines = [l for l in stderr.strip().splitlines() if l.strip()] or ["no output"]
        raise RuntimeError(lines[-1])
    return wall, usage.ru_maxrss * 1024, stdout, stderr


REPORT_ONLY = False


def cached(name: str, compute) -> dict:
    path = RESULTS / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    if REPORT_ONLY:
        return {"error": "not measured in this run"}
    try:
        value = compute()
    except Exception as err:  # a failing row is recorded, not fatal
        value = {"error": str(err)[:300]}
    path.write_text(json.dumps(value, indent=1))
    return value


def peer(python: Path, *args: str) -> tuple[float, int, dict]:
    wall, rss, out, _ = run_timed([str(python), str(ROOT / "bench" / "quant_peer.py"), *args])
    return wall, rss, json.loads(out.strip().splitlines()[-1])


def slmkit_perplexity(folder: str, seqlen: int, windows: int | None) -> float:
    code = ("import sys, json, torch; torch.set_num_threads(2); from slmkit.models.loading import load; "
            "from slmkit.evaluate.perplexity import perplexity; m, t = load(sys.argv[1]); "
            "r = perplexity(m, t, sys.argv[2], seqlen=int(sys.argv[3]), max_windows=None if sys.argv[4] == 'all' else int(sys.argv[4]), show_progress=False); "
            "print(json.dumps({'perplexity': r.perplexity}))")
    _, _, out, _ = run_timed([sys.executable, "-c", code, folder, str(WIKI), str(seqlen), str(windows or "all")])
    return json.loads(out.strip().splitlines()[-1])["perplexity"]


def decode_loops(model: str, tokens: int, repeats: int) -> dict:
    """fp32 decode tokens/s of slmkit's loop and of HF `generate`, medians, in one fresh process."""
    code = f"""
import json, statistics, time, torch
torch.set_num_threads(2)
from slmkit.models.loading import load
from slmkit.generation import SamplingParams, stream_tokens
m, t = load({model!r})
ids = torch.randint(100, 40000, (1, 32), generator=torch.Generator().manual_seed(0))
def ours():
    it = stream_tokens(m, ids, SamplingParams(max_new_tokens={tokens} + 1)); next(it)
    start = time.perf_counter(); n = sum(1 for _ in it); return n / (time.perf_counter() - start)
def hf():
    start = time.perf_counter()
    m.generate(ids, max_new_tokens={tokens}, min_new_tokens={tokens}, do_sample=False)
    return {tokens} / (time.perf_counter() - start)
ours(), hf()
print(json.dumps({{"slmkit": statistics.median(ours() for _ in range({repeats})),
                  "hf_generate": statistics.median(hf() for _ in range({repeats}))}}))
"""
    _, _, out, _ = run_timed([sys.executable, "-c", code])
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--methods", default=None, help=f"comma-separated subset of {', '.join(METHODS)}")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--speed-only", action="store_true", help="only the speed rows, for models already quantized")
    parser.add_argument("--report", action="store_true", help="print the table from cached rows only, measure nothing")
    args = parser.parse_args()
    global REPORT_ONLY
    REPORT_ONLY = args.report
    args.speed_only = args.speed_only or args.report
    nsamples, seqlen, windows = (128, 2048, None) if args.full else (32, 512, 2)
    mode = "full" if args.full else "quick"
    global RESULTS
    RESULTS = RESULTS / mode
    RESULTS.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    import torch

    from slmkit.data.calibration import calibration_batch
    from slmkit.evaluate.profile import measure_in_subprocess, weights_bytes
    from slmkit.models.loading import load, model_folder
    from slmkit.models.source import resolve_model

    dense_dir = model_folder(resolve_model(MODEL))
    calib_path = RESULTS / "calibration_ids.pt"
    if not calib_path.is_file():
        _, tokenizer = load(MODEL)
        torch.save(calibration_batch(tokenizer, str(CALIB), nsamples, seqlen, 0), calib_path)
    python = None if args.no_peer else LLMCOMPRESSOR.python if args.report else LLMCOMPRESSOR.ensure()
    calib_opts = ["--calib", str(CALIB), "--nsamples", str(nsamples), "--seqlen", str(seqlen)]

    rows = {"fp32": {"ours": cached("fp32", lambda: {"perplexity": slmkit_perplexity(MODEL, 2048, windows),
                                                      "bytes": weights_bytes(dense_dir)})}}
    methods = args.methods.split(",") if args.methods else list(METHODS) if args.full else QUICK
    if args.speed_only:  # report the rows already measured, compute none
        methods = [m for m in METHODS if (RESULTS / f"{m}.json").is_file() or (RESULTS / f"peer-{m}.json").is_file()]
    for name in methods:
        options, peer_method = METHODS[name]
        out_dir = RESULTS / "models" / name

        def ours(options=options, out_dir=out_dir):
            wall, rss, _, _ = run_timed([*SLM, "compress", MODEL, *options, *calib_opts, "--out", str(out_dir)])
            return {"seconds": wall, "peak_rss": rss, "bytes": weights_bytes(out_dir),
                    "perplexity": slmkit_perplexity(str(out_dir), 2048, windows)}

        def theirs(name=name, peer_method=peer_method):
            peer_dir = RESULTS / "models" / f"peer-{name}"
            wall, rss, _ = peer(python, "quantize", peer_method, dense_dir, str(calib_path), str(peer_dir))
            _, _, result = peer(python, "ppl", str(peer_dir), str(WIKI), "2048", str(windows or 100000))
            return {"seconds": wall, "peak_rss": rss, "bytes": weights_bytes(peer_dir), **result}

        skip = lambda: {"error": "not run in this session"}  # noqa: E731
        rows[name] = {"ours": cached(name, skip if args.speed_only else ours)} if not args.speed_only or (RESULTS / f"{name}.json").is_file() else {"ours": {}}
        if python is not None and (not args.speed_only or (RESULTS / f"peer-{name}.json").is_file()):
            rows[name]["peer"] = cached(f"peer-{name}", theirs)

    speed_kw = dict(prompt_tokens=128, decode_tokens=16, repeats=3, threads=2)
    speeds = {"fp32": cached("speed-fp32", lambda: measure_in_subprocess(MODEL, **speed_kw).to_dict())}
    for name in ("rtn-w8", "rtn-w4g64", "smoothquant-w8a8"):
        if (RESULTS / "models" / name).is_dir():
            speeds[name] = cached(f"speed-{name}", lambda n=name: measure_in_subprocess(str(RESULTS / "models" / n), **speed_kw).to_dict())
    loops = cached("speed-loops", lambda: decode_loops(MODEL, speed_kw["decode_tokens"], speed_kw["repeats"]))
    torchao = {} if python is None else cached("speed-torchao", lambda: peer(python, "speed", dense_dir, "128", "16", "3")[2])
    print_table(rows, speeds, torchao, mode, nsamples, seqlen, windows)
    if not isinstance(torchao, dict) or "error" in loops:
        print(f"\nfp32 decode loops: error: {loops['error']}")
    else:
        print(f"\nfp32 decode, same process: slmkit loop {loops['slmkit']:.1f} tok/s, HF generate {loops['hf_generate']:.1f} tok/s "
              f"(ratio {loops['slmkit'] / loops['hf_generate']:.2f})")


def fmt(value, spec=".2f"):
    return "—" if value is None else format(value, spec)


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def print_table(rows, speeds, torchao, mode, nsamples, seqlen, windows) -> None:
    fp32_bytes = rows["fp32"]["ours"].get("bytes")
    print(f"\n## quantization ({mode}: calibration {nsamples} x {seqlen} C4 demo; WikiText-2 seqlen 2048, "
          f"{windows or 'all'} windows)\n")
    print("| method | ppl slmkit | ppl llmcompressor | ratio | time s slmkit | time s peer | ratio | peak RSS MB slmkit | peer | "
          "size MB slmkit | peer | size / fp32 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        o, p = row["ours"], row.get("peer", {})
        if "error" in p:
            p = {"err": p["error"]}
        cells = [name, fmt(o.get("perplexity")), fmt(p.get("perplexity")) if "err" not in p else f"error: {p['err']}",
                 fmt(ratio(o.get("perplexity"), p.get("perplexity")), ".3f"),
                 fmt(o.get("seconds"), ".0f"), fmt(p.get("seconds"), ".0f"), fmt(ratio(o.get("seconds"), p.get("seconds"))),
                 fmt(o.get("peak_rss") and o["peak_rss"] / 1e6, ".0f"), fmt(p.get("peak_rss") and p["peak_rss"] / 1e6, ".0f"),
                 fmt(o.get("bytes") and o["bytes"] / 1e6, ".1f"), fmt(p.get("bytes") and p["bytes"] / 1e6, ".1f"),
                 fmt(ratio(o.get("bytes"), fp32_bytes), ".3f")]
        if "error" in o:
            cells[1] = f"error: {o['error']}"
        print("| " + " | ".join(cells) + " |")
    base = speeds.get("fp32", {})
    print("\n| model (slmkit decode loop) | prefill tok/s | decode tok/s | decode / fp32 | bytes in memory MB | memory / fp32 |")
    print("|---|---|---|---|---|---|")
    for name, s in speeds.items():
        if "error" in s:
            print(f"| {name} | error: {s['error']} | | | | |")
            continue
        print(f"| slmkit {name} | {fmt(s['prefill_tokens_per_s'], '.1f')} | {fmt(s['decode_tokens_per_s'], '.1f')} | "
              f"{fmt(ratio(s['decode_tokens_per_s'], base.get('decode_tokens_per_s')))} | {s['bytes_in_memory'] / 1e6:.1f} | "
              f"{fmt(ratio(s['bytes_in_memory'], base.get('bytes_in_memory')), '.3f')} |")
    peer_base = torchao.get("fp32", {})
    for name, s in torchao.items():
        if name == "error":
            print(f"| torchao | error: {s} | | | | |")
        elif "error" in s:
            print(f"| torchao {name} | error: {s['error']} | | | | |")
        else:
            print(f"| torchao {name} (peer process) | {fmt(s['prefill_tokens_per_s'], '.1f')} | {fmt(s['decode_tokens_per_s'], '.1f')} | "
                  f"{fmt(ratio(s['decode_tokens_per_s'], peer_base.get('decode_tokens_per_s')))} | | |")


if __name__ == "__main__":
    main()
