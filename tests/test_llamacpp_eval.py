"""llama.cpp as an evaluation backend: on one F16 GGUF file, perplexity and zero-shot scores from
llama.cpp's logits agree with the transformers path (same windows, same requests)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import SHARED_DATA, tiny_model, tiny_tokenizer

from slmkit.errors import SlmError
from slmkit.evaluate.llamacpp import LlamaCppModel, gguf_tokenizer, perplexity_llamacpp
from slmkit.evaluate.perplexity import perplexity_of_ids, tokenize_corpus
from slmkit.evaluate.tasks import load_task
from slmkit.evaluate.zeroshot import evaluate_task
from slmkit.layouts.gguf import save as export_gguf
from slmkit.models.loading import load
from slmkit.models.source import gguf_file

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (make install)")
WIKI = SHARED_DATA / "wikitext2" / "wiki.test.raw"
ARC = SHARED_DATA / "zeroshot" / "llmfoundry" / "arc_easy.jsonl"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def f16_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "tiny-f16.gguf"
    return export_gguf(tiny_model("llama", seed=3), tiny_tokenizer(), path, "F16")


def test_perplexity_matches_transformers_on_the_same_windows(f16_file):
    net, tokenizer = load(str(f16_file))
    ids = tokenize_corpus(gguf_tokenizer(f16_file), str(WIKI))
    assert ids.equal(tokenize_corpus(tokenizer, str(WIKI)))  # the same tokens reach both backends
    ours = perplexity_llamacpp(f16_file, ids, seqlen=128, max_windows=6, show_progress=False)
    ref = perplexity_of_ids(net, ids, seqlen=128, max_windows=6, show_progress=False)
    assert (ours.windows, ours.tokens) == (ref.windows, ref.tokens) == (6, 768)
    assert abs(ours.perplexity / ref.perplexity - 1) < 0.005


def test_task_scores_match_transformers(f16_file):
    net, tokenizer = load(str(f16_file))
    task = load_task("arc_easy", str(ARC), limit=30)
    lm = LlamaCppModel(f16_file)
    ours, ours_scores = evaluate_task(lm, gguf_tokenizer(f16_file), task, show_progress=False)
    ref, ref_scores = evaluate_task(net, tokenizer, task, show_progress=False)
    assert abs(ours["acc"] - ref["acc"]) <= 0.01 and abs(ours["acc_norm"] - ref["acc_norm"]) <= 0.01
    for a, b in zip(ours_scores.scores, ref_scores.scores):
        assert [s.tokens for s in a] == [s.tokens for s in b]
        assert [s.logprob for s in a] == pytest.approx([s.logprob for s in b], abs=0.02)


def test_backend_needs_a_gguf_file(tiny_folder):
    with pytest.raises(SlmError, match="GGUF"):
        gguf_file(str(tiny_folder))


def test_unloadable_gguf_is_one_line(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(SlmError, match="llama.cpp cannot load"):
        LlamaCppModel(bad)


def test_cli_eval_and_profile_llamacpp(f16_file, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLMKIT_PROGRESS": "0"}
    run = [sys.executable, "-m", "slmkit.cli"]
    out = subprocess.run(run + ["eval", str(f16_file), "--backend", "llama.cpp", "--ppl", str(WIKI), "--seqlen", "128",
                                "--max-windows", "2", "--json"], capture_output=True, text=True, env=env, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["backend"] == "llama.cpp" and result["windows"] == 2 and result["perplexity"] > 1
    out = subprocess.run(run + ["profile", str(f16_file), "--backend", "llama.cpp", "--prompt-tokens", "32",
                                "--decode-tokens", "8", "--repeats", "1", "--threads", "1", "--json"],
                         capture_output=True, text=True, env=env, check=True)
    profile = json.loads(out.stdout.strip().splitlines()[-1])["model"]
    assert profile["bytes_on_disk"] == f16_file.stat().st_size
    assert profile["peak_rss_bytes"] > 0 and profile["decode_tokens_per_s"] > 0 and profile["prefill_tokens_per_s"] > 0


@pytest.mark.slow
@pytest.mark.integration
def test_smollm2_f16_export_agrees_with_transformers():
    from slmkit.evaluate.llamacpp_profile import dense_gguf

    path = dense_gguf("smollm2-135m", "F16")
    net, tokenizer = load(str(path))
    ids = tokenize_corpus(tokenizer, str(WIKI))
    ours = perplexity_llamacpp(path, ids, seqlen=2048, max_windows=2, show_progress=False)
    ref = perplexity_of_ids(net, ids, seqlen=2048, max_windows=2, show_progress=False)
    assert abs(ours.perplexity / ref.perplexity - 1) < 0.005
    task = load_task("arc_easy", str(ARC), limit=200)
    lm_metrics, _ = evaluate_task(LlamaCppModel(path), gguf_tokenizer(path), task, show_progress=False)
    ref_metrics, _ = evaluate_task(net, tokenizer, task, show_progress=False)
    print(f"perplexity {ours.perplexity:.4f} vs {ref.perplexity:.4f}; acc {lm_metrics['acc']:.4f} vs {ref_metrics['acc']:.4f}; "
          f"acc_norm {lm_metrics['acc_norm']:.4f} vs {ref_metrics['acc_norm']:.4f}")
    assert abs(lm_metrics["acc"] - ref_metrics["acc"]) <= 0.01
    assert abs(lm_metrics["acc_norm"] - ref_metrics["acc_norm"]) <= 0.01
