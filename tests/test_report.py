import base64
import json
import os
import subprocess
import sys
from html.parser import HTMLParser

import slmkit
from slmkit.evaluate.report import flatten_trust, front_nd, load_entries, pareto, trust_deltas, write_report

ENV = dict(os.environ, SLMKIT_PROGRESS="0", HF_HUB_OFFLINE="1")
VOID = {"meta", "img", "br", "hr", "link", "input"}


class Checker(HTMLParser):
    """Checks that tags nest and close, and collects every URL-bearing attribute and image source."""

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.urls, self.images = [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href", "action", "data"):
            if key in attrs:
                self.urls.append(attrs[key])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def manifest(folder, **data):
    folder.mkdir()
    (folder / "slmkit.json").write_text(json.dumps(data))
    return str(folder)


def fake_dirs(tmp_path):
    dense_metrics = {"tasks": {"arc": {"acc": 0.6, "acc_stderr": 0.02, "acc_norm": 0.55, "n": 100}},
                     "trust": {"calibration": {"arc": {"ece": 0.05, "brier": 0.5, "n": 100}}},
                     "profile": {"parameters": 100, "nonzero_parameters": 100, "bytes_on_disk": 4e8,
                                 "prefill_tokens_per_s": 500.0, "decode_tokens_per_s": 19.0}}
    small = {"tasks": {"arc": {"acc": 0.5, "acc_stderr": 0.02, "acc_norm": 0.5, "n": 100}},
             "trust": {"calibration": {"arc": {"ece": 0.09, "brier": 0.6, "n": 100}}},
             "profile": {"parameters": 100, "nonzero_parameters": 50, "bytes_on_disk": 2e8,
                         "prefill_tokens_per_s": 700.0, "decode_tokens_per_s": 30.0}}
    run = manifest(tmp_path / "pruned", source="smollm2-135m", metrics=small, baseline=dense_metrics, steps=[])
    other = manifest(tmp_path / "other", kind="eval", source="other-model", parent=None,
                     metrics={"tasks": {"arc": {"acc": 0.4, "acc_stderr": 0.02, "n": 100}}, "size": {"bytes_in_memory": 3e8, "nonzero_parameters": 80}})
    return [run, other]


def test_html_report_is_valid_with_embedded_images_and_no_urls(tmp_path):
    md, html = write_report(fake_dirs(tmp_path), str(tmp_path / "report"))
    page = open(html).read()
    checker = Checker()
    checker.feed(page)
    checker.close()
    assert page.startswith("<!DOCTYPE html>") and not checker.errors and not checker.stack
    assert len(checker.images) == 6  # size x quality x speed; quality vs size, vs non-zero parameters, vs speed; tasks; trust
    for src in checker.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(u.startswith("data:") for u in checker.urls)
    assert "http://" not in page and "https://" not in page
    text = open(md).read()
    assert "| pruned |" in text and "smollm2-135m (dense)" in text and "+0.0400" in text  # ece delta


def test_entries_parents_and_deltas(tmp_path):
    entries = load_entries(fake_dirs(tmp_path))
    assert [e["name"] for e in entries] == ["smollm2-135m (dense)", "pruned", "other"]
    assert entries[1]["parent"] == "smollm2-135m (dense)" and entries[2]["parent"] is None
    deltas = trust_deltas(entries)
    assert deltas["pruned"]["calibration.arc.ece"] == 0.09 - 0.05
    assert flatten_trust({"calibration": {"arc": {"ece": 0.1, "n": 5}}}) == {"calibration.arc.ece": 0.1}


def test_pareto_front():
    points = [(1.0, 0.5, "a"), (2.0, 0.6, "b"), (2.5, 0.55, "c"), (3.0, 0.7, "d")]
    assert [p[2] for p in pareto(points, higher_x=False)] == ["a", "b", "d"]  # c is bigger and worse than b
    assert [p[2] for p in pareto(points, higher_x=True)] == ["d"]


def test_scratch_compressed_and_distilled_side_by_side(tmp_path):
    def profile(mb, tps):
        return {"bytes_on_disk": mb * 1e6, "decode_tokens_per_s": tps, "parameters": 1, "nonzero_parameters": 1}

    dirs = [manifest(tmp_path / name, kind="eval", source=name, parent=None, origin=origin,
                     metrics={"perplexity": {"perplexity": ppl}, "profile": profile(mb, tps)})
            for name, origin, ppl, mb, tps in (("scratch-20m", "scratch", 40.0, 80, 90.0), ("gptq-q4", "compressed", 16.0, 92, 190.0),
                                                 ("student", "distilled", 25.0, 150, 60.0), ("worse", "compressed", 30.0, 95, 100.0))]
    entries = load_entries(dirs)
    assert [e["origin"] for e in entries] == ["scratch", "compressed", "distilled", "compressed"]
    md, html = write_report(dirs, str(tmp_path / "report"))
    assert "| scratch-20m | scratch |" in open(md).read()
    assert "quality vs size vs decode speed, by origin" in open(html).read()


def test_three_way_front():
    # (-size, quality, speed): the last is dominated by the second (smaller, better and faster)
    assert front_nd([(-80, -40, 90), (-92, -16, 190), (-150, -25, 60), (-95, -30, 100)]) == [True, True, False, False]


def test_eval_out_then_report_from_the_cli(tiny_folder, tmp_path):
    task = tmp_path / "mc.jsonl"
    task.write_text(json.dumps({"query": "Is it?", "choices": ["no", "yes"], "gold": 1}) + "\n")
    out = tmp_path / "ev"
    cmd = [sys.executable, "-m", "slmkit.cli"]
    result = subprocess.run(cmd + ["eval", str(tiny_folder), "--tasks", f"mc={task}", "--out", str(out)],
                            capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "results.json").read_text())["tasks"]["mc"]["n"] == 1
    result = subprocess.run(cmd + ["report", str(out)], capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr
    assert "| mc acc / acc_norm |" in (out / "report.md").read_text() and (out / "report.html").is_file()


def test_recipe_eval_runs_tasks_on_dense_and_compressed(tiny_folder, tmp_path):
    task = tmp_path / "mc.jsonl"
    task.write_text("".join(json.dumps({"query": f"Item {i}:", "choices": ["a", "b c"], "gold": i % 2}) + "\n" for i in range(4)))
    recipe = {"model": str(tiny_folder), "steps": [{"magnitude": {"sparsity": 0.5}}],
              "eval": {"perplexity": None, "profile": None, "tasks": {"mc": str(task)}, "trust": ["calibration"]}}
    result = slmkit.run(recipe, tmp_path / "out")
    assert result["metrics"]["tasks"]["mc"]["n"] == 4 and result["baseline"]["tasks"]["mc"]["n"] == 4
    assert "ece" in result["metrics"]["trust"]["calibration"]["mc"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Zero-shot tasks" in report and "calibration.mc.ece" in report
