import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from tiny import tiny_model

from slmkit.errors import SlmError
from slmkit.evaluate.scorer import Score, encode_pair, score_groups, score_naive
from slmkit.evaluate.tasks import load_task, parse_task_specs
from slmkit.evaluate.zeroshot import evaluate_task, lambada_metrics, mean_stderr, multiple_choice_metrics

ENV = dict(os.environ, SLMKIT_PROGRESS="0", HF_HUB_OFFLINE="1")

MC = [
    {"query": "Question: which word names a colour?", "choices": ["red", "table", "quickly", "seven"], "gold": 0},
    {"query": "The function returns a list of ", "choices": ["items", "values in the dictionary", "x"], "gold": 1},
    {"query": "Is the sky blue?", "choices": ["no", "yes"], "gold": 1},
]
PARTIAL = [{"context_options": ["The cat sat on the mat because it", "The dog sat on the mat because the cat"],
            "continuation": "was tired.", "gold": 0}]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_fast_scorer_matches_naive_per_choice_scorer(tokenizer, family):
    model = tiny_model(family)
    groups = [[(r["query"], " " + c) for c in r["choices"]] for r in MC]
    groups += [[(o, " " + p["continuation"]) for o in p["context_options"]] for p in PARTIAL]
    groups += [[("", "A sentence with no context."), ("", "Another one.")]]
    fast = score_groups(model, tokenizer, groups, show_progress=False)
    for group, scores in zip(groups, fast):
        naive = score_naive(model, tokenizer, group)
        assert [s.tokens for s in scores] == [s.tokens for s in naive]
        assert [s.greedy for s in scores] == [s.greedy for s in naive]
        np.testing.assert_allclose([s.logprob for s in scores], [s.logprob for s in naive], atol=1e-4, rtol=0)
        assert np.argmax([s.logprob for s in scores]) == np.argmax([s.logprob for s in naive])


def test_encode_pair_splits_like_the_harness(tokenizer):
    ctx, cont = encode_pair(tokenizer, "Answer: ", "yes")  # the trailing space moves to the continuation
    assert ctx == tokenizer.encode("Answer:")
    assert ctx + cont == tokenizer.encode("Answer: yes")
    ctx, cont = encode_pair(tokenizer, "", "hello world")
    assert ctx == [tokenizer.eos_token_id] and cont == tokenizer.encode("hello world", add_special_tokens=False)


def test_acc_norm_divides_by_characters_and_acc_bytes_by_utf8_bytes(tmp_path):
    # choice 0: 4 chars / 8 bytes ("éééé"), choice 1: 6 chars / 6 bytes; summed log-likelihoods -4.4 and -6.0
    task = load_task("t", write_jsonl(tmp_path / "t.jsonl", [{"query": "q", "choices": ["éééé", "abcdef"], "gold": 0}]))
    scores = [[Score(-4.4, False, 2), Score(-6.0, False, 2)]]
    metrics = multiple_choice_metrics(task, scores)
    assert metrics["acc"] == 1.0  # -4.4 > -6.0
    assert metrics["acc_norm"] == 0.0  # -1.1 per char < -1.0 per char
    assert metrics["acc_bytes"] == 1.0  # -0.55 per byte > -1.0 per byte


def test_stderr_is_the_sample_standard_error():
    values = [1, 0, 1, 1, 0, 1, 0, 1]
    mu = sum(values) / len(values)
    expected = math.sqrt(sum((v - mu) ** 2 for v in values) / (len(values) - 1)) / math.sqrt(len(values))
    assert mean_stderr(values) == pytest.approx(expected)


def test_lambada_metrics():
    scores = [[Score(-1.0, True, 1)], [Score(-3.0, False, 2)]]
    assert lambada_metrics(scores) == {"acc": 0.5, "acc_stderr": pytest.approx(0.5), "perplexity": pytest.approx(math.exp(2.0))}


def test_layouts(tmp_path):
    mc = load_task("mc", write_jsonl(tmp_path / "mc.jsonl", MC), limit=2)
    assert len(mc.examples) == 2 and mc.examples[0].requests[1] == (MC[0]["query"], " table")
    partial = load_task("wg", write_jsonl(tmp_path / "wg.jsonl", PARTIAL))
    assert partial.examples[0].requests[1] == (PARTIAL[0]["context_options"][1], " was tired.")
    write_jsonl(tmp_path / "valid.jsonl", [{"goal": "Open a jar", "sol1": "twist the lid", "sol2": "eat the lid"}])
    (tmp_path / "valid-labels.lst").write_text("0\n")
    piqa = load_task("piqa", str(tmp_path / "valid.jsonl"))
    assert piqa.examples[0].requests[0] == ("Question: Open a jar\nAnswer:", " twist the lid")
    hs = load_task("hs", write_jsonl(tmp_path / "hs.jsonl", [{"activity_label": "Roof", "ctx_a": "A man is on a roof.",
                   "ctx_b": "he", "endings": ["falls [title] down.", "b", "c", "d"], "label": "2"}]))
    assert hs.examples[0].requests[0] == ("Roof: A man is on a roof. He", " falls. down.") and hs.examples[0].gold == 2
    lam = load_task("lambada", write_jsonl(tmp_path / "l.jsonl", [{"context": "I don't care about", "continuation": "signs"}]))
    assert lam.kind == "lambada" and lam.examples[0].requests == [("I don't care about", " signs")]


@pytest.mark.parametrize("rows, message", [
    ([{"text": "x"}], "unknown task layout"),
    ([{"query": "q", "choices": ["a"], "gold": 3}], "not a choice index"),
])
def test_bad_task_files_fail_with_one_line(tmp_path, rows, message):
    with pytest.raises(SlmError, match=message):
        load_task("t", write_jsonl(tmp_path / "t.jsonl", rows))
    with pytest.raises(SlmError, match="not NAME=PATH"):
        parse_task_specs("arc_easy")


def test_shared_task_files_load(shared_data):
    zs = shared_data / "zeroshot"
    original = load_task("piqa", str(zs / "piqa" / "valid.jsonl"), limit=200)
    converted = load_task("piqa", str(zs / "llmfoundry" / "piqa.jsonl"), limit=200)
    assert [e.gold for e in original.examples] == [e.gold for e in converted.examples]
    for name in ("arc_easy", "arc_challenge", "boolq", "lambada_openai"):
        assert len(load_task(name, str(zs / "llmfoundry" / f"{name}.jsonl"), limit=5).examples) == 5
    assert load_task("hs", str(zs / "hellaswag" / "hellaswag_val.jsonl"), limit=3).examples[0].gold == 3


def test_evaluate_task_reports_every_metric(tokenizer, tmp_path):
    task = load_task("mc", write_jsonl(tmp_path / "mc.jsonl", MC))
    metrics, scored = evaluate_task(tiny_model("llama"), tokenizer, task, show_progress=False)
    for key in ("acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "acc_bytes"):
        assert 0 <= metrics[key] <= 1
    assert metrics["n"] == 3 and len(scored.logprobs()) == 3


def test_cli_eval_tasks_json(tiny_folder, tmp_path):
    path = write_jsonl(tmp_path / "mc.jsonl", MC)
    result = subprocess.run([sys.executable, "-m", "slmkit.cli", "eval", str(tiny_folder), "--tasks", f"mc={path}",
                             "--limit", "2", "--trust", "calibration", "--json"], capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["tasks"]["mc"]["n"] == 2 and "acc_norm_stderr" in payload["tasks"]["mc"]
    assert 0 <= payload["trust"]["calibration"]["mc"]["ece"] <= 1
