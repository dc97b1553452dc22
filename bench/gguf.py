"""GGUF benchmark: slmkit's GGUF files against llama.cpp's own llama-quantize, measured by llama.cpp's tools.

On smollm2-135m: a dense F16 export is the base; llama-quantize rounds it to each type plain and with
an imatrix that llama-imatrix computes on slmkit's default calibration text; slmkit writes the same
types with RTN, importance-RTN, GPTQ and AWQ (`slm compress --gguf-type T`). Every file is scored by
llama-perplexity on WikiText-2 test (24 chunks x 512: perplexity, mean KL divergence to the F16 base,
same top token) and timed by llama-bench (pp512, tg128). Rows are cached in bench/results/gguf/.

    python bench/gguf.py --no-speed                        # quality rows for Q4_0, Q4_1, Q5_0, Q8_0
    python bench/gguf.py --speed-only                      # llama-bench on the cached files (a quiet machine, alone)
    python bench/gguf.py --types Q4_0,Q4_K_M --no-speed    # other types; one slmkit rejects is noted and skipped
    python bench/gguf.py --report                          # the table from cached results, measuring nothing
    python bench/gguf.py --check-bytes Q4_0                # slmkit's rounding of the F16 base (importance: llama-imatrix's
                                                           # values) byte for byte against llama-quantize's two files
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from common import DATA, ROOT
from llamacpp_tools import ensure_tools

# This file is called gguf.py: drop bench/ from the path so `import gguf` finds the gguf package, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

MODEL = "smollm2-135m"
WIKI = DATA / "wikitext2" / "wiki.test.raw"
RESULTS = ROOT / "bench" / "results" / "gguf"
FILES = RESULTS / "files"
CHUNKS, CTX = 24, 512
SLM = [sys.executable, "-m", "slmkit.cli"]
ENV = {**os.environ, "SLMKIT_PROGRESS": "0", "PYTHONPATH": str(ROOT)}

# row name: ("llama.cpp" | "slmkit", options)
METHODS = {
    "llama-quantize": ("llama.cpp", []),
    "llama-quantize --imatrix": ("llama.cpp", ["--imatrix"]),
    "rtn": ("slmkit", ["--method", "rtn"]),
    "rtn --importance": ("slmkit", ["--method", "rtn", "--importance"]),
    "gptq": ("slmkit", ["--method", "gptq"]),
    "awq": ("slmkit", ["--method", "awq"]),
}
PEER, PEER_IMATRIX = "llama-quantize", "llama-quantize --imatrix"


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def sh(cmd: list, log: Path | None = None) -> tuple[float, list[float], str]:
    """Run cmd; (wall seconds, load average at the start, stdout + stderr). Raises with the last output line."""
    start_load, start = load(), time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=ENV)
    wall = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    if log is not None:
        log.write_text(output)
    if proc.returncode:
        lines = [line for line in output.strip().splitlines() if line.strip()] or ["no output"]
        raise RuntimeError(f"{Path(str(cmd[0])).name} exited {proc.returncode}: {lines[-1].strip()}")
    return wall, start_load, output


def cached(path: Path, compute, report_only: bool) -> dict:
    """A row's JSON, computed once; a failing computation is recorded as the row's error."""
    if path.is_file():
        return json.loads(path.read_text())
    if report_only:
        return {"error": "not measured"}
    try:
        value = compute()
    except Exception as err:  # a failing row is recorded, not fatal
        value = {"error": str(err)[:300]}
    path.write_text(json.dumps(value, indent=1))
    return value


def file_stem(method: str, gtype: str) -> str:
    return f"{method.replace(' --', '-')}-{gtype}"


# ---- base, calibration text, imatrix ----------------------------------------------------------------


def base(tools: dict, report_only: bool) -> dict:
    """The F16 export and its logits (base.kld), which every row's KL divergence is taken against."""
    gguf, kld = FILES / "base-F16.gguf", FILES / "base.kld"

    def compute():
        seconds, at, _ = sh([*SLM, "export", MODEL, "--format", "gguf", "--type", "F16", "--out", gguf, "--overwrite"])
        _, _, out = sh([tools["llama-perplexity"], "-m", gguf, "-f", WIKI, "--chunks", CHUNKS, "-c", CTX,
                        "--kl-divergence-base", kld], FILES / "base.log")
        found = re.search(r"Final estimate: PPL = ([\d.]+)", out)
        return {"bytes": gguf.stat().st_size, "make_s": round(seconds, 1), "make_load": at,
                "ppl": float(found.group(1)) if found else None}

    return cached(RESULTS / "base.json", compute, report_only)


def calibration_text() -> tuple[Path, int]:
    """slmkit's default calibration windows (recipe defaults, as the compress steps draw them), decoded to text."""
    path = RESULTS / "calibration.txt"
    from slmkit.api import load as load_model
    from slmkit.recipe import Recipe
    from slmkit.runner import step_context

    recipe = Recipe(model=MODEL)
    if not path.is_file():
        model, tokenizer = load_model(MODEL)
        context = step_context(recipe, tokenizer)
        context.model = model  # the default source is partly written by the model, as in `slm compress`
        ids = context.calibration_ids()
        path.write_text("\n".join(tokenizer.decode(window) for window in ids.tolist()))
    return path, recipe.calibration.nsamples


def imatrix(tools: dict) -> Path:
    """llama-imatrix on the base file over slmkit's calibration text, in chunks of slmkit's window length."""
    out = FILES / "imatrix.gguf"
    if not out.is_file():
        text, nsamples = calibration_text()
        sh([tools["llama-imatrix"], "-m", FILES / "base-F16.gguf", "-f", text, "-c", CTX, "--chunks", nsamples,
            "-o", out], FILES / "imatrix.log")
    return out


# ---- rows -------------------------------------------------------------------------------------------


def make(tools: dict, method: str, gtype: str) -> dict:
    """Write one row's file; its size and the wall time (and load average) of making it."""
    side, options = METHODS[method]
    gguf = FILES / f"{file_stem(method, gtype)}.gguf"
    if side == "llama.cpp":
        extra = ["--imatrix", imatrix(tools)] if options else []
        cmd = [tools["llama-quantize"], *extra, FILES / "base-F16.gguf", gguf, gtype]
    else:
        cmd = [*SLM, "compress", MODEL, *options, "--gguf-type", gtype, "--out", gguf, "--overwrite"]
    seconds, at, _ = sh(cmd, FILES / f"{file_stem(method, gtype)}.make.log")
    return {"file": gguf.name, "bytes": gguf.stat().st_size, "make_s": round(seconds, 1), "make_load": at}


def quality(tools: dict, gguf: Path) -> dict:
    """llama-perplexity against the base logits: perplexity, mean KL divergence, same top token %."""
    _, _, out = sh([tools["llama-perplexity"], "-m", gguf, "--chunks", CHUNKS, "-c", CTX, "--kl-divergence",
                    "--kl-divergence-base", FILES / "base.kld"], gguf.with_suffix(".ppl.log"))
    patterns = {"ppl": r"Mean PPL\(Q\)\s*:\s*([\d.]+)", "kld": r"Mean\s+KLD:\s*([\d.]+)",
                "same_top": r"Same top p:\s*([\d.]+)"}
    values = {}
    for key, pattern in patterns.items():
        found = re.search(pattern, out)
        if not found:
            raise RuntimeError(f"llama-perplexity printed no {key} for {gguf.name}")
        values[key] = float(found.group(1))
    return values


def speed(tools: dict, gguf: Path) -> dict:
    """llama-bench -p 512 -n 128 -r 3: tokens/s (mean, stddev) of prefill and decode, and the load average."""
    _, at, out = sh([tools["llama-bench"], "-m", gguf, "-p", 512, "-n", 128, "-r", 3, "-o", "json"])
    tests = json.loads(out[out.index("["): out.rindex("]") + 1])
    values = {"bench_load": at}
    for test in tests:
        key = "pp512" if test["n_gen"] == 0 else "tg128"
        values[key], values[f"{key}_sd"] = round(test["avg_ts"], 2), round(test["stddev_ts"], 2)
    return values


def rejected(error: str | None, gtype: str) -> bool:
    """Whether slmkit refused the type itself (a one-line option error), not failed on the model."""
    return bool(error) and "--gguf-type" in error and gtype in error


def row(tools: dict, method: str, gtype: str, args) -> dict:
    """One (method, type) row: made and scored once, cached; llama-bench merged in when asked."""
    path = RESULTS / f"{file_stem(method, gtype)}.json"

    def compute():
        made = make(tools, method, gtype)
        return {**made, **quality(tools, FILES / made["file"])}

    result = {"method": method, "type": gtype, **cached(path, compute, args.report or args.speed_only)}
    want_speed = not (args.no_speed or args.report) and "error" not in result and "tg128" not in result
    if want_speed:
        try:
            result.update(speed(tools, FILES / result["file"]))
        except Exception as err:  # recorded beside the row's quality numbers
            result["speed_error"] = str(err)[:300]
        path.write_text(json.dumps({k: v for k, v in result.items() if k not in ("method", "type")}, indent=1))
    return result


def measure(tools: dict, types: list[str], args) -> list[dict]:
    """All rows: for each type the two llama-quantize files, then slmkit's methods unless slmkit rejects the type."""
    rows = []
    for gtype in types:
        skip = None
        for method, (side, _) in METHODS.items():
            if side == "slmkit" and skip:
                rows.append({"method": method, "type": gtype, "error": skip})
                continue
            rows.append(row(tools, method, gtype, args))
            if side == "slmkit" and rejected(rows[-1].get("error"), gtype):
                skip = f"slmkit rejects {gtype}: {rows[-1]['error']}"
                rows[-1]["error"] = skip
    return rows


# ---- report -----------------------------------------------------------------------------------------


def fmt(value, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def find(rows: list[dict], method: str, gtype: str) -> dict:
    return next((r for r in rows if r["method"] == method and r["type"] == gtype), {})


def table_line(r: dict, rows: list[dict]) -> str:
    if "error" in r:
        return f"| {r['type']} | {r['method']} | {r['error'][:120]} |" + " |" * 9
    peer, ref = find(rows, PEER, r["type"]), find(rows, PEER_IMATRIX, r["type"])
    size_ratio = r["bytes"] / peer["bytes"] if peer.get("bytes") else None
    kld_ratio = r["kld"] / ref["kld"] if ref.get("kld") else None
    speed = [f"{fmt(r.get(k), '.1f')} ± {fmt(r.get(k + '_sd'), '.1f')}" if k in r else "pending" for k in ("pp512", "tg128")]
    return (f"| {r['type']} | {r['method']} | {r['ppl']:.3f} | {r['kld']:.4f} | {fmt(kld_ratio, '.2f')} | "
            f"{r['same_top']:.2f} | {r['bytes']:,} | {r['bytes'] / 1e6:.2f} | {fmt(size_ratio, '.4f')} | "
            f"{speed[0]} | {speed[1]} | {r['make_s']:.1f} |")


def print_table(rows: list[dict], base_row: dict) -> None:
    print(f"\nsmollm2-135m, llama-perplexity on WikiText-2 test ({CHUNKS} chunks x {CTX}); KLD and same-top against the "
          f"F16 export (PPL {fmt(base_row.get('ppl'), '.3f')}, {base_row.get('bytes', 0):,} bytes)\n")
    print("| type | method | PPL | mean KLD | KLD / llama.cpp imatrix | same top % | bytes | MB | size / llama-quantize "
          "| pp512 t/s | tg128 t/s | make s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(table_line(r, rows))


def notes(rows: list[dict]) -> list[str]:
    made = [f"{r['method']} {r['type']} {r['make_load']}" for r in rows if "make_load" in r]
    benched = [f"{r['method']} {r['type']} {r['bench_load']}" for r in rows if "bench_load" in r]
    return [
        "The embedded model comes from a Q4_1 file: its weights already lie on Q4_1 grids, so Q4_1 rows are near-lossless "
        "and say nothing about rounding quality.",
        "The imatrix is llama-imatrix's, on slmkit's default calibration windows decoded to text, in chunks of the same "
        "length; slmkit's calibrated rows use the same default calibration.",
        "make s: wall time to write the file (slmkit: the whole `slm compress` process, model load and calibration "
        "included; llama.cpp: llama-quantize alone, imatrix not included).",
        "Load average (1, 5, 15 min) when each file was made: " + ("; ".join(made) or "none"),
        "Load average when llama-bench ran: " + ("; ".join(benched) or "speed columns pending (not measured)"),
    ]


def verdict(ok: bool | None) -> str:
    return "pending" if ok is None else ("pass" if ok else "FAIL")


def targets(rows: list[dict]) -> list[str]:
    """The targets, pass/fail per row: size, GPTQ and importance-RTN KLD against the imatrix peer, decode speed."""
    lines = []
    for r in rows:
        if METHODS[r["method"]][0] != "slmkit" or "error" in r:
            continue
        peer, ref = find(rows, PEER, r["type"]), find(rows, PEER_IMATRIX, r["type"])
        tag = f"{r['type']} {r['method']}"
        if peer.get("bytes"):
            size = r["bytes"] / peer["bytes"]
            lines.append(f"size within 0.5% of llama-quantize's file, {tag}: {size:.4f} {verdict(abs(size - 1) <= 0.005)}")
        kld = r["kld"] / ref["kld"] if ref.get("kld") else None
        if r["method"] == "gptq" and r["type"] in ("Q4_0", "Q5_0", "Q4_K_M"):
            lines.append(f"GPTQ KLD <= 0.75 x llama.cpp imatrix KLD, {tag}: {fmt(kld, '.3f')} "
                         f"{verdict(None if kld is None else kld <= 0.75)}")
        if r["method"] == "rtn --importance":
            better = " (lower than llama.cpp's)" if kld is not None and kld < 0.98 else ""
            lines.append(f"importance-RTN KLD within 2% of llama.cpp imatrix KLD (ratio <= 1.02), {tag}: "
                         f"{fmt(kld, '.3f')} {verdict(None if kld is None else kld <= 1.02)}{better}")
        lines.append(f"tg128 within noise of llama-quantize's file, {tag}: {speed_verdict(r, peer)}")
    return lines


def speed_verdict(r: dict, peer: dict) -> str:
    """Within noise: the difference of the means at most twice their combined llama-bench standard deviation."""
    if "tg128" not in r or "tg128" not in peer:
        return "pending"
    noise = 2 * (r["tg128_sd"] ** 2 + peer["tg128_sd"] ** 2) ** 0.5
    diff = r["tg128"] - peer["tg128"]
    return f"{diff:+.1f} t/s (noise {noise:.1f}) {verdict(abs(diff) <= noise)}"


# ---- direct check: slmkit's rounding of the same F16 input, with llama-imatrix's values ---------------------------


def imatrix_values(path: Path) -> dict:
    """llama-imatrix's GGUF output as llama-quantize reads it: per weight tensor, in_sum2 / counts."""
    import torch
    from gguf import GGUFReader

    tensors = {t.name: torch.from_numpy(t.data.astype("float32").reshape(-1)) for t in GGUFReader(path).tensors}
    return {name[: -len(".in_sum2")]: tensors[name] / tensors[name[: -len(".in_sum2")] + ".counts"]
            for name in tensors if name.endswith(".in_sum2")}


def check_bytes(gtype: str) -> None:
    """Round each F16 base tensor with slmkit.ggml.rtn (with llama-imatrix's importance for the imatrix file) and
    compare the bytes with llama-quantize's files of the same type."""
    for method in (PEER, PEER_IMATRIX):
        peer_file = FILES / f"{file_stem(method, gtype)}.gguf"
        if not peer_file.is_file():
            raise SystemExit(f"--check-bytes {gtype}: run the {gtype} rows first ({peer_file.name} is missing)")
        importance = imatrix_values(FILES / "imatrix.gguf") if method == PEER_IMATRIX else None
        same, differ = compare_file(peer_file, importance)
        print(f"{peer_file.name}: {len(same)} of {len(same) + len(differ)} grid tensors byte-identical to slmkit's "
              f"rounding of the F16 base{' with llama-imatrix importance' if importance else ''}")
        for line in differ:
            print("  " + line)


def compare_file(peer_file: Path, importance: dict | None) -> tuple[list[str], list[str]]:
    import torch
    from gguf import GGUFReader

    from slmkit.errors import SlmError
    from slmkit.ggml.blocks import pack
    from slmkit.ggml.rtn import quantize
    from slmkit.ggml.types import GRID_TYPES

    base_tensors = {t.name: t for t in GGUFReader(FILES / "base-F16.gguf").tensors}
    same, differ = [], []
    for tensor in GGUFReader(peer_file).tensors:
        grid = GRID_TYPES.get(tensor.tensor_type.name)
        if grid is None:
            continue
        w = torch.from_numpy(base_tensors[tensor.name].data.astype("float32"))
        vector = importance.get(tensor.name) if importance else None
        try:
            ours = pack(quantize(w, grid, vector)).numpy().reshape(-1)
        except SlmError as err:  # a rounding slmkit does not build: reported, not compared
            differ.append(f"{tensor.name} ({grid.name}): not compared, {err}")
            continue
        theirs = tensor.data.reshape(-1)
        bad = int((ours != theirs).sum())
        imp = "importance" if vector is not None else "plain"
        (differ if bad else same).append(f"{tensor.name} ({grid.name}, {imp}): {bad} of {theirs.size} bytes differ")
    return same, differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--types", default="Q4_0,Q4_1,Q5_0,Q8_0", help="comma-separated GGUF file types, e.g. Q4_K_M")
    parser.add_argument("--no-speed", action="store_true", help="quality only: skip llama-bench")
    parser.add_argument("--speed-only", action="store_true", help="llama-bench on the cached files, merged into the rows")
    parser.add_argument("--report", action="store_true", help="print the table from cached rows, measure nothing")
    parser.add_argument("--sdist", type=Path, help="build llama.cpp's tools from this unpacked llama-cpp-python sdist")
    parser.add_argument("--check-bytes", metavar="TYPE", help="slmkit's rounding of the F16 base vs llama-quantize's bytes")
    args = parser.parse_args()
    if args.check_bytes:
        return check_bytes(args.check_bytes.upper())
    if args.no_speed and args.speed_only:
        raise SystemExit("--no-speed and --speed-only contradict each other")
    FILES.mkdir(parents=True, exist_ok=True)
    tools = {} if args.report else ensure_tools(args.sdist)
    base_row = base(tools, args.report or args.speed_only)
    if "error" in base_row and not args.report:
        raise SystemExit(f"base F16 file: {base_row['error']}")
    rows = measure(tools, [t.strip().upper() for t in args.types.split(",") if t.strip()], args)
    print_table(rows, base_row)
    print("\nTargets:\n" + "\n".join(f"- {line}" for line in targets(rows)))
    print("\nNotes:\n" + "\n".join(f"- {line}" for line in notes(rows)))


if __name__ == "__main__":
    main()
