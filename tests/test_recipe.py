import subprocess
import sys
import time

import pytest

from slmkit.errors import SlmError
from slmkit.recipe import load_recipe, parse_recipe

GOOD = {"model": "smollm2-135m", "steps": [{"magnitude": {"sparsity": 0.25}}]}


def test_valid_recipe_round_trips():
    recipe = parse_recipe(GOOD)
    assert recipe.steps[0].name == "magnitude" and recipe.steps[0].options.sparsity == 0.25
    assert parse_recipe(recipe.to_dict()).to_dict() == recipe.to_dict()


@pytest.mark.parametrize(
    "patch, expected",
    [
        ({"stepz": []}, r"stepz: unknown key \(valid: model, dtype"),
        ({"steps": [{"wandx": {}}]}, r"steps\[0\]: unknown step 'wandx' \(valid: .*magnitude"),
        ({"steps": [{"magnitude": {"sparsty": 0.5}}]}, r"steps\[0\].magnitude.sparsty: unknown key \(valid: sparsity, scope"),
        ({"steps": [{"magnitude": {"sparsity": "lots"}}]}, r"steps\[0\].magnitude.sparsity: .*number"),
        ({"steps": [{"magnitude": {"sparsity": 1.5}}]}, r"sparsity: .*less than 1"),
        ({"calibration": {"data": "no/such/file.jsonl"}}, r"calibration.data: data file not found"),
        ({"eval": {"perplexity": {"data": "missing.txt"}}}, r"eval.perplexity.data: data file not found"),
        ({"save": {"format": "pickle"}}, r"save.format: unknown format 'pickle' \(valid: hf"),
        ({"model": "./no-such-model"}, r"model: model not found"),
        ({"dtype": "int3"}, r"dtype: "),
    ],
)
def test_recipe_errors_name_the_key_and_choices(patch, expected):
    with pytest.raises(SlmError, match=expected) as err:
        parse_recipe({**GOOD, **patch})
    assert "\n" not in str(err.value)


def test_yaml_errors_and_missing_recipe(tmp_path):
    with pytest.raises(SlmError, match="recipe not found"):
        load_recipe(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(SlmError, match="invalid YAML"):
        load_recipe(bad)


def test_cli_recipe_error_is_fast_one_line_and_torch_free(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("model: smollm2-135m\nsteps:\n  - magnitude: {sparsity: 0.5, bogus: 1}\n")
    code = (
        "import sys, time; t = time.perf_counter()\n"
        "from slmkit.cli import main\n"
        f"sys.argv = ['slm', 'run', {str(bad)!r}, '--out', {str(tmp_path / 'o')!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "print('torch' in sys.modules, code, time.perf_counter() - t)\n"
    )
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    wall = time.perf_counter() - start
    torch_loaded, exit_code, inner = result.stdout.split()
    assert torch_loaded == "False" and exit_code == "1"
    assert float(inner) < 1.0, f"validation took {inner}s"
    assert wall < 5
    assert result.stderr.strip().count("\n") == 0
    assert "steps[0].magnitude.bogus: unknown key" in result.stderr
    assert not (tmp_path / "o").exists()


def test_the_recipe_seed_is_the_default_seed_of_training_steps():
    recipe = parse_recipe({"model": "smollm2-135m", "seed": 7, "steps": [
        {"distill": {"teacher": "smollm2-135m"}}, {"distill": {"teacher": "smollm2-135m", "seed": 3}}, "magnitude"]})
    assert [getattr(s.options, "seed", None) for s in recipe.steps] == [7, 3, None]
    assert recipe.to_dict()["steps"][0]["distill"]["seed"] == 7  # the manifest records the seed used
