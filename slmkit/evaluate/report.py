"""Markdown report of a recipe run: the compressed model beside its uncompressed parent."""

from __future__ import annotations

from slmkit.evaluate.profile import MEASURED

ROWS = [  # (label, path in metrics, formatter, higher is better)
    ("perplexity", ("perplexity", "perplexity"), "{:.3f}", False),
    *[(q.metadata["label"], ("profile", q.name), q.metadata["format"], q.metadata["higher_is_better"]) for q in MEASURED],
]
MB_FIELDS = {q.name for q in MEASURED if q.metadata["megabytes"]}


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


def column_names(manifest: dict) -> tuple[str, str]:
    """(baseline, output) column names of a run: a from-scratch model is compared with its recipe's pretrained model."""
    if manifest.get("origin") == "scratch":
        return f"pretrained {manifest['source']}", "from scratch"
    return "dense", manifest.get("origin") if manifest.get("origin") not in (None, "dense") else "compressed"


def run_report(manifest: dict) -> str:
    """report.md for one `slm run` output."""
    rows = comparison_rows(manifest.get("baseline", {}), manifest.get("metrics", {}))
    lines = [f"# slmkit report: {manifest['source']}", ""]
    lines += ["## Steps", "", "| step | options | seconds |", "|---|---|---|"]
    for s in manifest["steps"]:
        opts = ", ".join(f"{k}={v}" for k, v in s["options"].items())
        lines.append(f"| {s['step']} | {opts} | {s['seconds']:.1f} |")
    notes = [f"- {s['step']}: {line}" for s in manifest["steps"] for line in s.get("log", [])]
    lines += ["", *notes] if notes else []
    base, out = column_names(manifest)
    lines += ["", f"## {base} vs {out} (measured in the same run)", ""]
    lines += [f"| metric | {base} | {out} | ratio |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    ppl = manifest.get("metrics", {}).get("perplexity")
    prof = manifest.get("metrics", {}).get("profile")
    lines.append("")
    if ppl:
        spec = manifest["recipe"]["eval"]["perplexity"]
        where = "the last" if spec.get("from_end") else "the first"
        lines.append(f"Perplexity: {where} {ppl['windows']} windows × {ppl['seqlen']} tokens of `{spec['data']}`.")
    if prof:
        lines.append(f"Speed: median of {manifest['recipe']['eval']['profile']['repeats']} runs after warm-up, "
                     f"{prof['threads']} threads, prefill {prof['prompt_tokens']} tokens, decode {prof['decode_tokens']} greedy tokens, batch 1.")
    lines += runtime_note(manifest)
    lines += run_suite_sections(manifest)
    lines.append(f"Seed {manifest['seed']}; versions: " + ", ".join(f"{k} {v}" for k, v in manifest.get("versions", {}).items()))
    return "\n".join(lines) + "\n"


def runtime_note(manifest: dict) -> list[str]:
    """Where the numbers come from when the output is a GGUF file: llama.cpp, with transformers for reference."""
    if manifest.get("format") != "gguf":
        return []
    lines = ["", "Measured in llama.cpp (llama-cpp-python): the compressed GGUF file, and the dense model exported "
                 "to F16 GGUF, on the same tokens."]
    ref = manifest.get("baseline", {}).get("profile_transformers")
    if ref:
        lines.append(f"For reference, the dense model in transformers ({manifest['recipe']['dtype']}): prefill "
                     f"{ref['prefill_tokens_per_s']:.1f} tokens/s, decode {ref['decode_tokens_per_s']:.2f} tokens/s.")
    return lines


def run_suite_sections(manifest: dict) -> list[str]:
    """Task and trust tables of a run report: dense vs compressed, measured in the same run."""
    metrics, base = manifest.get("metrics", {}), manifest.get("baseline", {})
    lines = []
    if metrics.get("tasks"):
        lines += ["", "## Zero-shot tasks", "", "| task | metric | dense | compressed | delta (points) |", "|---|---|---|---|---|"]
        for name, m in metrics["tasks"].items():
            ref = (base.get("tasks") or {}).get(name, {})
            for key in ("acc", "acc_norm", "perplexity"):
                if key in m:
                    r = ref.get(key)
                    delta = "–" if r is None else (f"{100 * (m[key] - r):+.2f}" if key != "perplexity" else f"{m[key] - r:+.3f}")
                    lines.append(f"| {name} (n={m['n']}) | {key} | {num(r)} | {m[key]:.4f} | {delta} |")
    if metrics.get("trust"):
        mine, ref = flatten_trust(metrics["trust"]), flatten_trust(base.get("trust") or {})
        lines += ["", "## Trust", "", "| metric | dense | compressed | delta |", "|---|---|---|---|"]
        for key, value in mine.items():
            r = ref.get(key)
            lines.append(f"| {key} | {num(r)} | {value:.4f} | {'–' if r is None else f'{value - r:+.4f}'} |")
    return lines + [""] if lines else []


# --- `slm report DIR [DIR…]`: many evaluated models side by side, as report.md and a self-contained report.html ---

TRUST_SKIP = {"n", "seconds", "bins", "seed", "canaries", "candidates", "repeats", "steps", "exposure_max", "rate",
              "clean_acc", "clean_acc_norm", "perturbations", "before", "by_bias_type", "by_entity_type", "task",
              "accuracy", "mean_confidence"}
LOWER_IS_BETTER = ("ece", "brier", "drop", "stereotype", "bias_score", "exposure", "extraction", "completion")


def entry_from(name: str, source: str, metrics: dict, parent: str | None, origin: str | None) -> dict:
    prof, size = metrics.get("profile") or {}, metrics.get("size") or {}
    ppl = metrics.get("perplexity")
    return {
        "name": name, "source": source, "parent": parent, "origin": origin,
        "tasks": metrics.get("tasks") or {}, "trust": metrics.get("trust") or {},
        "perplexity": ppl.get("perplexity") if isinstance(ppl, dict) else ppl,
        "parameters": prof.get("parameters") or size.get("parameters"),
        "nonzero_parameters": prof.get("nonzero_parameters") or size.get("nonzero_parameters"),
        "nonzero_m": (prof.get("nonzero_parameters") or size.get("nonzero_parameters") or 0) / 1e6 or None,
        "size_mb": (prof.get("bytes_on_disk") or size.get("bytes_in_memory") or 0) / 1e6 or None,
        "prefill_tps": prof.get("prefill_tokens_per_s"), "decode_tps": prof.get("decode_tokens_per_s"),
    }


def load_entries(dirs: list[str]) -> list[dict]:
    """One entry per evaluated model: `slm eval --out` folders, and `slm run` outputs (plus their dense baseline)."""
    import json
    from pathlib import Path

    from slmkit.errors import SlmError

    entries: list[dict] = []
    for d in dirs:
        path = Path(d) / "slmkit.json"
        if not path.is_file():
            raise SlmError(f"{d}: no slmkit.json here (valid: folders written by `slm eval --out` or `slm run`)")
        manifest = json.loads(path.read_text())
        name = Path(d).resolve().name
        if manifest.get("kind") == "eval":
            entries.append(entry_from(name, manifest["source"], manifest.get("metrics", {}), manifest.get("parent"),
                                      manifest.get("origin")))
            continue
        dense = f"{manifest.get('source', '?')} (dense)"
        baseline = manifest.get("baseline") or {}
        if baseline and not any(e["name"] == dense for e in entries):
            entries.append(entry_from(dense, manifest.get("source", "?"), baseline, None, "dense"))
        entries.append(entry_from(name, manifest.get("source", "?"), manifest.get("metrics", {}),
                                  dense if baseline else manifest.get("source"), manifest.get("origin")))
    by_source = {e["source"]: e["name"] for e in entries if e["parent"] is None}
    for e in entries:  # an eval folder's parent names a model; point it at that model's entry
        if e["parent"] and e["parent"] not in {x["name"] for x in entries}:
            e["parent"] = by_source.get(e["parent"])
    return entries


def quality(entry: dict) -> float | None:
    accs = [m["acc"] for m in entry["tasks"].values() if "acc" in m]
    return sum(accs) / len(accs) if accs else None


def flatten_trust(trust: dict, prefix: str = "") -> dict[str, float]:
    """Scalar trust metrics as 'suite.path.metric': value (counts, timings and breakdowns left out)."""
    flat = {}
    for key, value in trust.items():
        if key in TRUST_SKIP:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_trust(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def trust_deltas(entries: list[dict]) -> dict[str, dict[str, float]]:
    """{model: {metric: model - dense parent}} for every entry whose parent is in the report."""
    by_name = {e["name"]: e for e in entries}
    deltas = {}
    for e in entries:
        parent = by_name.get(e["parent"] or "")
        if not parent:
            continue
        mine, theirs = flatten_trust(e["trust"]), flatten_trust(parent["trust"])
        common = {k: mine[k] - theirs[k] for k in mine if k in theirs}
        if common:
            deltas[e["name"]] = common
    return deltas


def pareto(points: list[tuple[float, float, str]], higher_x: bool) -> list[tuple[float, float, str]]:
    """Points not dominated in (x, quality); x is better when higher if `higher_x`, else when lower."""
    front = []
    for x, y, n in points:
        dominated = any((ox >= x if higher_x else ox <= x) and oy >= y and (ox, oy) != (x, y) for ox, oy, _ in points)
        if not dominated:
            front.append((x, y, n))
    return sorted(front)


def front_nd(points: list[tuple[float, ...]]) -> list[bool]:
    """For points whose coordinates are all better when higher: True where no other point is at least as good everywhere."""
    def dominates(a, b):
        return a != b and all(x >= y for x, y in zip(a, b))
    return [not any(dominates(other, p) for other in points) for p in points]


def tradeoff_plot(entries: list[dict], plt) -> str | None:
    """Quality vs size with decode speed as colour, marker by origin; the 3-way Pareto front (smaller,
    better, faster) circled. Quality is mean zero-shot accuracy where tasks ran, else perplexity."""
    use_acc = any(quality(e) is not None for e in entries)
    score = quality if use_acc else (lambda e: e["perplexity"])
    pts = [e for e in entries if e["size_mb"] and e["decode_tps"] and score(e) is not None]
    if len(pts) < 2:
        return None
    front = front_nd([(-e["size_mb"], score(e) if use_acc else -score(e), e["decode_tps"]) for e in pts])
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    markers = dict(zip(sorted({e["origin"] or "–" for e in pts}), "osD^vP*X"))
    for origin, marker in markers.items():
        mine = [e for e in pts if (e["origin"] or "–") == origin]
        art = ax.scatter([e["size_mb"] for e in mine], [score(e) for e in mine], c=[e["decode_tps"] for e in mine],
                         cmap="viridis", vmin=min(e["decode_tps"] for e in pts), vmax=max(e["decode_tps"] for e in pts),
                         marker=marker, s=60, label=origin)
    for e, on_front in zip(pts, front):
        ax.annotate(e["name"], (e["size_mb"], score(e)), fontsize=8, xytext=(4, 4), textcoords="offset points")
        if on_front:
            ax.scatter([e["size_mb"]], [score(e)], s=220, facecolors="none", edgecolors="r")
    fig.colorbar(art, ax=ax, label="decode tokens/s")
    ax.set_xlabel("size (MB)")
    ax.set_ylabel("mean zero-shot acc" if use_acc else "perplexity (lower is better)")
    ax.legend(title="origin (red ring: Pareto front)", fontsize=8)
    data = png_base64(fig)
    plt.close(fig)
    return data


def png_base64(fig) -> str:
    import base64
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plots(entries: list[dict]) -> dict[str, str]:
    """Title -> base64 PNG for each plot the data supports."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    tradeoff = tradeoff_plot(entries, plt)
    if tradeoff:
        out["quality vs size vs decode speed, by origin"] = tradeoff
    for key, label, higher in (("size_mb", "size (MB)", False), ("nonzero_m", "non-zero parameters (M)", False),
                               ("decode_tps", "decode tokens/s", True)):
        pts = [(e[key], quality(e), e["name"]) for e in entries if e[key] and quality(e) is not None]
        if not pts:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter([p[0] for p in pts], [p[1] for p in pts])
        for x, y, n in pts:
            ax.annotate(n, (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
        front = pareto(pts, higher)
        ax.plot([p[0] for p in front], [p[1] for p in front], "r--", label="Pareto front")
        ax.set_xlabel(label)
        ax.set_ylabel("mean zero-shot acc")
        ax.legend()
        out[f"quality vs {label}"] = png_base64(fig)
        plt.close(fig)
    task_names = sorted({t for e in entries for t in e["tasks"]})
    if task_names:
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(task_names) * max(1, len(entries)) / 2), 4))
        width = 0.8 / len(entries)
        for i, e in enumerate(entries):
            xs = [j + i * width for j in range(len(task_names))]
            ax.bar(xs, [e["tasks"].get(t, {}).get("acc", 0) for t in task_names], width,
                   yerr=[e["tasks"].get(t, {}).get("acc_stderr", 0) for t in task_names], label=e["name"])
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(task_names))], task_names)
        ax.set_ylabel("acc")
        ax.legend(fontsize=8)
        out["per-task accuracy"] = png_base64(fig)
        plt.close(fig)
    deltas = trust_deltas(entries)
    if deltas:
        metrics = sorted({m for d in deltas.values() for m in d})
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(metrics) * len(deltas) + 1.5))
        height = 0.8 / len(deltas)
        for i, (name, d) in enumerate(deltas.items()):
            ax.barh([j + i * height for j in range(len(metrics))], [d.get(m, 0) for m in metrics], height, label=name)
        ax.set_yticks(range(len(metrics)), metrics, fontsize=8)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel("model − dense parent")
        ax.legend(fontsize=8)
        out["trust deltas vs dense parent"] = png_base64(fig)
        plt.close(fig)
    return out


def num(value, fmt: str = "{:.4f}") -> str:
    return "–" if value is None else fmt.format(value)


def report_tables(entries: list[dict]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for the task, efficiency and trust tables."""
    tables = []
    task_names = sorted({t for e in entries for t in e["tasks"]})
    if task_names:
        header = ["model"] + [f"{t} acc / acc_norm" for t in task_names] + ["mean acc"]
        rows = []
        for e in entries:
            cells = []
            for t in task_names:
                m = e["tasks"].get(t)
                if not m:
                    cells.append("–")
                elif "acc_norm" in m:
                    cells.append(f"{m['acc']:.4f} ± {m['acc_stderr']:.4f} / {m['acc_norm']:.4f}")
                else:
                    cells.append(f"{m['acc']:.4f} ± {m['acc_stderr']:.4f} (ppl {m.get('perplexity', 0):.2f})")
            rows.append([e["name"]] + cells + [num(quality(e))])
        tables.append(("Zero-shot tasks", header, rows))
    header = ["model", "origin", "parameters", "non-zero", "size (MB)", "prefill tok/s", "decode tok/s", "perplexity"]
    rows = [[e["name"], e["origin"] or "–", num(e["parameters"], "{:,.0f}"), num(e["nonzero_parameters"], "{:,.0f}"), num(e["size_mb"], "{:.1f}"),
             num(e["prefill_tps"], "{:.1f}"), num(e["decode_tps"], "{:.2f}"), num(e["perplexity"], "{:.3f}")] for e in entries]
    tables.append(("Efficiency", header, rows))
    flat = {e["name"]: flatten_trust(e["trust"]) for e in entries}
    metrics = sorted({m for f in flat.values() for m in f})
    if metrics:
        rows = [[m] + [num(flat[e["name"]].get(m)) for e in entries] for m in metrics]
        tables.append(("Trust", ["metric"] + [e["name"] for e in entries], rows))
    deltas = trust_deltas(entries)
    if deltas:
        metrics = sorted({m for d in deltas.values() for m in d})
        rows = [[m, "lower" if any(w in m for w in LOWER_IS_BETTER) else "higher"] +
                [num(deltas[n].get(m), "{:+.4f}") for n in deltas] for m in metrics]
        tables.append(("Trust deltas vs dense parent", ["metric", "better"] + list(deltas), rows))
    return tables


def render_markdown(entries: list[dict]) -> str:
    lines = ["# slmkit comparison report", "", f"Models: {', '.join(e['name'] for e in entries)}.", ""]
    for title, header, rows in report_tables(entries):
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows] + [""]
    lines.append("Accuracy ± sample standard error; quality in the plots is the mean `acc` over tasks. "
                 "The HTML report holds the plots (quality vs size and vs speed with the Pareto front, per-task bars, trust deltas).")
    return "\n".join(lines) + "\n"


def render_html(entries: list[dict]) -> str:
    """One self-contained page: inline CSS, tables, plots as data: URIs (nothing fetched from the network)."""
    from html import escape

    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">', "<title>slmkit comparison report</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
             "img{max-width:100%}</style>", "</head>", "<body>", "<h1>slmkit comparison report</h1>"]
    for title, png in plots(entries).items():
        parts += [f"<h2>{escape(title)}</h2>", f'<img alt="{escape(title)}" src="data:image/png;base64,{png}">']
    for title, header, rows in report_tables(entries):
        parts += [f"<h2>{escape(title)}</h2>", "<table>", "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>"]
        parts += ["<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows]
        parts.append("</table>")
    parts += ["<p>Accuracy ± sample standard error; quality is the mean acc over tasks.</p>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def write_report(dirs: list[str], out: str | None = None) -> tuple[str, str]:
    """Write report.md and report.html into `out` (default: the first folder); return their paths."""
    from pathlib import Path

    entries = load_entries(dirs)
    folder = Path(out or dirs[0])
    folder.mkdir(parents=True, exist_ok=True)
    md, html = folder / "report.md", folder / "report.html"
    for path, text in ((md, render_markdown(entries)), (html, render_html(entries))):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return str(md), str(html)
