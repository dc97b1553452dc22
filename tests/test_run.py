import json

import pytest
import torch
from transformers import AutoModelForCausalLM

import slmkit
from slmkit.anatomy import decoder_linears, linear_weight
from slmkit.compress.pruning.options import MagnitudeOptions
from slmkit.errors import SlmError
from slmkit.steps import register_step

QUICK_EVAL = {
    "perplexity": {"data": "pydoc", "seqlen": 32, "max_windows": 2},
    "profile": {"prompt_tokens": 32, "decode_tokens": 8, "repeats": 1},
}


def recipe_for(folder, **extra):
    return {"model": str(folder), "steps": [{"magnitude": {"sparsity": 0.5}}], "eval": QUICK_EVAL, **extra}


def test_run_writes_a_plain_hf_folder_with_manifest_and_report(tiny_folder, tmp_path):
    out = tmp_path / "out"
    manifest = slmkit.run(recipe_for(tiny_folder), out)
    model = AutoModelForCausalLM.from_pretrained(out)  # plain transformers, no slmkit
    for module in decoder_linears(model).values():
        assert (linear_weight(module) == 0).float().mean().item() == pytest.approx(0.5)
    saved = json.loads((out / "slmkit.json").read_text())
    assert saved["recipe"]["steps"] == [{"magnitude": {"sparsity": 0.5, "scope": "row"}}]
    assert saved["versions"]["torch"] == torch.__version__
    assert saved["metrics"]["perplexity"]["windows"] == 2
    assert saved["metrics"]["profile"]["nonzero_parameters"] < saved["baseline"]["profile"]["nonzero_parameters"]
    assert saved["steps"][0]["seconds"] >= 0
    report = (out / "report.md").read_text()
    assert "| perplexity |" in report and "| decode tokens/s |" in report
    assert manifest["metrics"] == saved["metrics"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]


class ExplodeOptions(MagnitudeOptions):
    pass


def explode_later(model, tokenizer, options, context):
    """A step whose model saves fine but fails when evaluated: the failure hits mid-output."""

    def hook(*_):
        raise RuntimeError("evaluation failed on purpose")

    model.register_forward_hook(hook)
    return model


def test_a_failure_while_writing_leaves_no_output_folder(tiny_folder, tmp_path):
    register_step("explode_for_test", ExplodeOptions, f"{__name__}:explode_later", "test only")
    recipe = {"model": str(tiny_folder), "steps": [{"explode_for_test": {}}],
              "eval": {"perplexity": {"seqlen": 32, "max_windows": 1}, "profile": None, "baseline": False}}
    with pytest.raises(RuntimeError, match="on purpose"):
        slmkit.run(recipe, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def test_refuses_to_overwrite_a_foreign_folder(tiny_folder, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(SlmError, match="holds files slmkit did not write .e.g. notes.txt.*--overwrite"):
        slmkit.run(recipe_for(tiny_folder), out)
    assert (out / "notes.txt").read_text() == "keep me"


def test_rerun_replaces_an_earlier_output(tiny_folder, tmp_path):
    out = tmp_path / "out"
    for sparsity in (0.25, 0.75):
        slmkit.run({"model": str(tiny_folder), "steps": [{"magnitude": {"sparsity": sparsity}}],
                    "eval": {"perplexity": None, "profile": None}}, out)
    model = AutoModelForCausalLM.from_pretrained(out)
    for module in decoder_linears(model).values():  # the second run's weights, not the first's
        assert (linear_weight(module) == 0).float().mean().item() == pytest.approx(0.75)
    assert json.loads((out / "slmkit.json").read_text())["recipe"]["steps"] == [{"magnitude": {"sparsity": 0.75, "scope": "row"}}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tiny"]  # no temporary sibling left
