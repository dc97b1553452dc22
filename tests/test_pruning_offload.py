import pytest
import torch
from transformers import AutoModelForCausalLM

from slmkit.compress.offload import compress_offloaded, load_skeleton
from slmkit.compress.pruning.options import SparseGPTOptions, WandaOptions
from slmkit.compress.pruning.sparsegpt import sparsegpt_prune
from slmkit.compress.pruning.wanda import wanda_prune
from slmkit.steps import StepContext
from tiny import save_tiny, tiny_model


def calibration():
    return torch.randint(0, 300, (4, 32), generator=torch.Generator().manual_seed(0))


def test_skeleton_holds_no_decoder_weights(tmp_path):
    model = load_skeleton(save_tiny(tmp_path / "src"))
    assert all(p.device.type == "meta" for n, p in model.named_parameters() if n.startswith("model.layers."))
    assert model.model.embed_tokens.weight.device.type == "cpu"


@pytest.mark.parametrize("family, method, options", [
    ("llama", "wanda", WandaOptions(sparsity=0.5)),
    ("llama", "wanda", WandaOptions(sparsity=0.5, owl=True, owl_m=3.0)),  # two engine passes over the offloaded layers
    ("qwen3", "sparsegpt", SparseGPTOptions(pattern="2:4")),
])
def test_engine_gives_the_same_model_with_and_without_offload(tmp_path, family, method, options):
    source = save_tiny(tmp_path / "src", family)
    in_memory = tiny_model(family)
    prune = wanda_prune if method == "wanda" else sparsegpt_prune
    prune(in_memory, None, options, StepContext(_calibration=calibration()), show_progress=False)

    out = compress_offloaded(source, tmp_path / "out", method, options, StepContext(_calibration=calibration()), show_progress=False)
    offloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    expected, got = in_memory.state_dict(), offloaded.state_dict()
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0, msg=name)
