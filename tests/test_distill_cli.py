import json

import pytest
from tiny import save_tiny
from typer.testing import CliRunner

from slmkit.cli import app
from slmkit.errors import SlmError

runner = CliRunner()


@pytest.fixture
def pair(tmp_path):
    return save_tiny(tmp_path / "teacher", seed=1), save_tiny(tmp_path / "student", seed=2)


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=True)
    return result


def test_distill_command_trains_evaluates_and_saves(pair, tmp_path):
    teacher, student = pair
    out = tmp_path / "out"
    result = invoke("distill", "--teacher", teacher, "--student", student, "--loss", "jsd", "--beta", "0.3", "--temperature", "2",
                    "--ce-weight", "0.5", "--max-steps", "4", "--seqlen", "32", "--batch-size", "2", "--lr", "1e-3",
                    "--eval-data", "pydoc", "--eval-every", "2", "--eval-windows", "2", "--eval-seqlen", "64", "--out", out)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "slmkit.json").read_text())
    training = manifest["training"]
    assert training["steps"] == 4 and training["options"]["loss"] == "jsd" and training["options"]["beta"] == 0.3
    assert [e["step"] for e in training["evals"]] == [2, 4] and training["evals"][-1]["perplexity"] > 1
    from slmkit.models.loading import load

    load(str(out))


def test_distill_cache_then_distill_without_teacher(pair, tmp_path):
    teacher, student = pair
    cache = tmp_path / "cache.safetensors"
    assert invoke("distill-cache", "--teacher", teacher, "--data", "pydoc", "--top-k", "8", "--seqlen", "32",
                  "--max-tokens", "512", "--out", cache).exit_code == 0
    result = invoke("distill", "--student", student, "--teacher-cache", cache, "--max-steps", "2", "--seqlen", "32",
                    "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "slmkit.json").read_text())["training"]["steps"] == 2


def test_bad_options_are_one_line_errors(pair, tmp_path):
    teacher, student = pair
    result = invoke("distill", "--teacher", teacher, "--student", student, "--loss", "kl2", "--out", tmp_path / "o")
    assert isinstance(result.exception, SlmError) and "--loss" in str(result.exception) and "\n" not in str(result.exception)
    result = invoke("distill", "--student", student, "--out", tmp_path / "o")
    assert isinstance(result.exception, SlmError) and "teacher" in str(result.exception)


def test_finetune_lora_adapter_only_and_merged(tmp_path, shared_data):
    student = save_tiny(tmp_path / "m")
    data = shared_data / "instruct" / "alpaca_en_demo.json"
    result = invoke("finetune", student, "--data", data, "--lora", "--rank", "4", "--no-merge", "--max-steps", "2",
                    "--seqlen", "64", "--out", tmp_path / "adapter")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    result = invoke("finetune", student, "--data", data, "--max-steps", "2", "--seqlen", "64", "--out", tmp_path / "full")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "full" / "slmkit.json").read_text())["training"]["tokens"] == 2 * 64


def test_data_filter_command(tmp_path, shared_data):
    out = tmp_path / "c4.jsonl"
    result = invoke("data", "filter", shared_data / "c4" / "c4_demo.jsonl", "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.with_name("c4.jsonl.report.json").read_text())
    assert report["total"] == 300 and report["kept"] == len(out.read_text().splitlines()) == 300 - sum(report["removed"].values())
    assert "gopher_word_count" in result.output


def test_recipe_steps_validate_and_bundled_recipe_parses(shared_data):
    from importlib.resources import files

    import yaml

    from slmkit.recipe import parse_recipe
    from slmkit.steps import all_steps

    assert {"distill", "sft", "lora_sft"} <= set(all_steps())
    with pytest.raises(SlmError, match="loss"):
        parse_recipe({"model": "smollm2-135m", "steps": [{"distill": {"teacher": "smollm2-135m", "loss": "bogus"}}]})
    text = (files("slmkit") / "recipes" / "prune_then_distil.yaml").read_text().replace("../shared/data", str(shared_data))
    recipe = parse_recipe(yaml.safe_load(text))
    assert [s.name for s in recipe.steps] == ["depth_prune", "distill"]


def test_prune_then_distil_recipe_runs_end_to_end(tmp_path):
    from slmkit.runner import run

    teacher = save_tiny(tmp_path / "dense", num_hidden_layers=4)
    manifest = run({
        "model": str(teacher),
        "calibration": {"data": "pydoc", "nsamples": 2, "seqlen": 32},
        "steps": [{"depth_prune": {"layers": 1}},
                  {"distill": {"teacher": str(teacher), "max_steps": 3, "seqlen": 32, "lr": 1e-3, "precision": "no"}}],
        "eval": {"perplexity": {"data": "pydoc", "seqlen": 32, "max_windows": 2}, "profile": None},
    }, tmp_path / "out", show_progress=False)
    assert [s["step"] for s in manifest["steps"]] == ["depth_prune", "distill"]
    assert json.loads((tmp_path / "out" / "config.json").read_text())["num_hidden_layers"] == 3
