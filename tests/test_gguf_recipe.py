"""A recipe that saves a GGUF file is measured where it ships: in llama.cpp, beside the F16 export of its parent."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from tiny import save_tiny

from slmkit.errors import SlmError
from slmkit.recipe import parse_recipe


def recipe(model, **eval_section) -> dict:
    return {"model": str(model), "calibration": {"nsamples": 2, "seqlen": 64}, "steps": [{"rtn": {"gguf_type": "Q8_0"}}],
            "save": {"format": "gguf"},
            "eval": {"perplexity": {"seqlen": 64, "max_windows": 2},
                     "profile": {"prompt_tokens": 32, "decode_tokens": 8, "repeats": 1}, **eval_section}}


def test_gguf_output_is_scored_and_profiled_in_llamacpp(tmp_path):
    pytest.importorskip("llama_cpp")
    from slmkit.cli.run import print_summary
    from slmkit.evaluate.llamacpp import perplexity_llamacpp
    from slmkit.evaluate.perplexity import tokenize_corpus
    from slmkit.layouts.common import auto_tokenizer
    from slmkit.runner import run

    model = save_tiny(tmp_path / "m")
    manifest = run(recipe(model), tmp_path / "out", show_progress=False)
    file = tmp_path / "out" / "model.gguf"
    assert json.loads((tmp_path / "out" / "slmkit.json").read_text())["format"] == "gguf"
    assert manifest["metrics"]["profile"]["backend"] == "llama.cpp"
    assert manifest["baseline"]["profile"]["backend"] == "llama.cpp"
    assert manifest["metrics"]["profile"]["bytes_on_disk"] == file.stat().st_size
    assert manifest["baseline"]["profile"]["bytes_on_disk"] > file.stat().st_size  # F16 against Q8_0
    assert "decode_tokens_per_s" in manifest["baseline"]["profile_transformers"]
    ids = tokenize_corpus(auto_tokenizer(model), "pydoc")
    again = perplexity_llamacpp(file, ids, 64, 2, show_progress=False).perplexity
    assert manifest["metrics"]["perplexity"]["perplexity"] == pytest.approx(again, rel=1e-6)
    assert "Measured in llama.cpp" in (tmp_path / "out" / "report.md").read_text()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        print_summary(manifest, tmp_path / "out")
    assert "dense model in transformers" in printed.getvalue()  # the CLI's table says where its numbers come from


def test_gguf_output_refuses_the_trust_suite(tmp_path):
    model = save_tiny(tmp_path / "m")
    with pytest.raises(SlmError, match="eval.trust: a gguf output is evaluated in llama.cpp"):
        parse_recipe(recipe(model, trust=["bias"]))
