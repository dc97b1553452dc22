"""Markdown report of a recipe run: the compressed model beside its uncompressed parent."""

from __future__ import annotations

ROWS = [
    # (label, path in metrics, formatter, higher is better)
    ("perplexity", ("perplexity", "perplexity"), "{:.3f}", False),
    ("parameters", ("profile", "parameters"), "{:,.0f}", False),
    ("non-zero parameters", ("profile", "nonzero_parameters"), "{:,.0f}", False),
    ("weights on disk (MB)", ("profile", "bytes_on_disk"), "{:.1f}", False),
    ("tensors in memory (MB)", ("profile", "bytes_in_memory"), "{:.1f}", False),
    ("peak RSS (MB)", ("profile", "peak_rss_bytes"), "{:.0f}", False),
    ("prefill tokens/s", ("profile", "prefill_tokens_per_s"), "{:.1f}", True),
    ("decode tokens/s", ("profile", "decode_tokens_per_s"), "{:.2f}", True),
]
MB_FIELDS = {"bytes_on_disk", "bytes_in_memory", "peak_rss_bytes"}


def lookup(metrics: dict, path: tuple[str, str]) -> float | None:
    section = metrics.get(path[0]) or {}
    value = section.get(path[1])
    if value is None:
        return None
    return value / 1e6 if path[1] in MB_FIELDS else value


def comparison_rows(baseline: dict, metrics: dict) -> list[tuple[str, str, str, str]]:
    """(label, baseline, model, model/baseline) for each metric present in the model's results."""
    rows = []
    for label, path, fmt, _ in ROWS:
        value = lookup(metrics, path)
        if value is None:
            continue
        ref = lookup(baseline, path)
        ratio = f"{value / ref:.3f}×" if ref else "–"
        rows.append((label, fmt.format(ref) if ref is not None else "–", fmt.format(value), ratio))
    return rows


def run_report(manifest: dict) -> str:
    """report.md for one `slm run` output."""
    rows = comparison_rows(manifest.get("baseline", {}), manifest.get("metrics", {}))
    lines = [f"# slmkit report: {manifest['source']}", ""]
    lines += ["## Steps", "", "| step | options | seconds |", "|---|---|---|"]
    for s in manifest["steps"]:
        opts = ", ".join(f"{k}={v}" for k, v in s["options"].items())
        lines.append(f"| {s['step']} | {opts} | {s['seconds']:.1f} |")
    lines += ["", "## Dense vs compressed (measured in the same run)", ""]
    lines += ["| metric | dense | compressed | ratio |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    ppl = manifest.get("metrics", {}).get("perplexity")
    prof = manifest.get("metrics", {}).get("profile")
    lines.append("")
    if ppl:
        lines.append(f"Perplexity: {ppl['windows']} windows × {ppl['seqlen']} tokens of `{manifest['recipe']['eval']['perplexity']['data']}`.")
    if prof:
        lines.append(f"Speed: median of {manifest['recipe']['eval']['profile']['repeats']} runs after warm-up, "
                     f"{prof['threads']} threads, prefill {prof['prompt_tokens']} tokens, decode {prof['decode_tokens']} greedy tokens, batch 1.")
    lines.append(f"Seed {manifest['seed']}; versions: " + ", ".join(f"{k} {v}" for k, v in manifest.get("versions", {}).items()))
    return "\n".join(lines) + "\n"
