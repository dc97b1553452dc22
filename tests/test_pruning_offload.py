import pytest
import torch
from tiny import save_tiny, tiny_model, tiny_tokenizer
from transformers import AutoModelForCausalLM

import slmkit
from slmkit.compress.offload import compress_offloaded, load_skeleton
from slmkit.compress.pruning.options import MagnitudeOptions, SparseGPTOptions, WandaOptions
from slmkit.errors import SlmError
from slmkit.recipe import parse_recipe
from slmkit.steps import StepContext, get_step

NO_EVAL = {"perplexity": None, "profile": None}


def calibration():
    return torch.randint(0, 300, (4, 32), generator=torch.Generator().manual_seed(0))


def assert_same_weights(expected: dict, got: dict) -> None:
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0, msg=name)


def test_skeleton_holds_no_decoder_weights(tmp_path):
    model = load_skeleton(save_tiny(tmp_path / "src"))
    assert all(p.device.type == "meta" for n, p in model.named_parameters() if n.startswith("model.layers."))
    assert model.model.embed_tokens.weight.device.type == "cpu"


@pytest.mark.parametrize("family, method, options", [
    ("llama", "wanda", WandaOptions(sparsity=0.5)),
    ("llama", "wanda", WandaOptions(sparsity=0.5, owl=True, owl_m=3.0)),  # two engine passes over the offloaded layers
    ("qwen3", "sparsegpt", SparseGPTOptions(pattern="2:4")),
    ("gpt2", "magnitude", MagnitudeOptions(sparsity=0.5, scope="layer")),
])
def test_engine_gives_the_same_model_with_and_without_offload(tmp_path, family, method, options):
    source = save_tiny(tmp_path / "src", family)
    in_memory = tiny_model(family)
    get_step(method).function()(in_memory, None, options, StepContext(calibration=calibration()), show_progress=False)

    out = compress_offloaded(source, tmp_path / "out", method, options, StepContext(calibration=calibration()), show_progress=False)
    assert_same_weights(in_memory.state_dict(), AutoModelForCausalLM.from_pretrained(out).state_dict())


def test_an_offloaded_recipe_chains_its_steps_and_matches_the_in_memory_run(tmp_path):
    source = save_tiny(tmp_path / "src")
    steps = [{"magnitude": {"sparsity": 0.25}}, {"sparsegpt": {"sparsity": 0.5}}]
    recipe = {"model": str(source), "calibration": {"data": "pydoc", "nsamples": 4, "seqlen": 32}, "eval": NO_EVAL}
    slmkit.run({**recipe, "steps": steps}, tmp_path / "memory", show_progress=False)
    offloaded = [{name: {**options, "offload": True}} for step in steps for name, options in step.items()]
    manifest = slmkit.run({**recipe, "steps": offloaded}, tmp_path / "offload", show_progress=False)

    assert [s["options"].get("offload") for s in manifest["steps"]] == [True, True]
    assert (tmp_path / "offload" / "model-layer-00001.safetensors").is_file()  # written layer by layer
    assert_same_weights(AutoModelForCausalLM.from_pretrained(tmp_path / "memory").state_dict(),
                        AutoModelForCausalLM.from_pretrained(tmp_path / "offload").state_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memory", "offload", "src"]  # no scratch folders left


@pytest.mark.parametrize("patch, expected", [
    ({"steps": [{"wanda": {"offload": True}}, {"rtn": {}}]}, r"steps\[1\]\.rtn: with layer offload every step .*cannot run offloaded"),
    ({"steps": [{"wanda": {"offload": True}}, {"magnitude": {}}]}, r"steps\[1\]\.magnitude: .*set offload: true on it too"),
    ({"save": {"format": "compressed-tensors"}}, r"save\.format: layer offload writes format hf only"),
    ({"eval": {"profile": None}}, r"eval\.perplexity: evaluation loads the whole model"),
    ({"model": "org/name"}, r"model: layer offload reads a local folder; download org/name first"),
    ({"model": "{gguf}"}, r"model: layer offload reads safetensors, and a GGUF file is converted whole"),
])
def test_recipes_that_cannot_run_offloaded_fail_in_one_line(tmp_path, patch, expected):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    recipe = {"model": "smollm2-135m", "steps": [{"wanda": {"offload": True}}], "eval": NO_EVAL, **patch}
    recipe["model"] = recipe["model"].format(gguf=gguf)
    with pytest.raises(SlmError, match=expected) as err:
        parse_recipe(recipe)
    assert "\n" not in str(err.value)


def test_the_embedded_model_can_run_offloaded():
    assert parse_recipe({"model": "smollm2-135m", "steps": [{"sparsegpt": {"offload": True}}], "eval": NO_EVAL}).offload


def test_offload_refuses_a_compressed_folder(tmp_path):
    slmkit.save(tiny_model(), tiny_tokenizer(), tmp_path / "ct", format="compressed-tensors")
    with pytest.raises(SlmError, match="holds a compressed or factorized model"):
        compress_offloaded(tmp_path / "ct", tmp_path / "out", "wanda", {}, StepContext(calibration=calibration()))
