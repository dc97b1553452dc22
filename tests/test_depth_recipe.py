"""The bundled half-size recipe: validates, and takes SmolLM2-135M to about half its non-embedding parameters."""

from pathlib import Path

import pytest

import slmkit
from slmkit.recipe import load_recipe

RECIPE = Path(slmkit.__file__).parent / "recipes" / "half_size.yaml"


def test_half_size_recipe_validates():
    recipe = load_recipe(RECIPE)
    assert [s.name for s in recipe.steps] == ["depth_prune", "width_prune"]


@pytest.mark.integration
def test_half_size_recipe_halves_non_embedding_parameters(tmp_path):
    from transformers import AutoModelForCausalLM

    from slmkit.evaluate.profile import count_parameters
    from slmkit.runner import apply_steps

    recipe = load_recipe(RECIPE).model_copy(update={"calibration": load_recipe(RECIPE).calibration.model_copy(
        update={"nsamples": 4, "seqlen": 128})})
    model, tokenizer = slmkit.load(recipe.model)
    embed = model.get_input_embeddings().weight.numel()
    dense = count_parameters(model)[0] - embed
    model, _ = apply_steps(model, tokenizer, recipe)
    kept = (count_parameters(model)[0] - embed) / dense
    assert 0.45 < kept < 0.55
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert reloaded.config.num_hidden_layers == 24 and reloaded.config.intermediate_size == 768
