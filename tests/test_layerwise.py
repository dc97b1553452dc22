import pytest
import torch
from tiny import FAMILIES, tiny_model

from slmkit.anatomy import get_module
from slmkit.compress.layerwise import LinearStats, run_layerwise


class Recorder:
    """A no-op algorithm that records statistics and each layer's outputs."""

    def __init__(self, stats=("sqnorm", "gram"), sequential=False):
        self.stats, self.sequential = set(stats), sequential
        self.seen, self.outputs = [], []

    def apply(self, index, layer, stats):
        self.seen.append((index, sorted(stats)))
        self.last_stats = stats

    def after_layer(self, index, layer, inputs, outputs):
        self.outputs.append(torch.cat(outputs))


@pytest.mark.parametrize("family", FAMILIES)
def test_noop_pass_reproduces_the_models_hidden_states(family):
    model = tiny_model(family)
    ids = torch.randint(0, 300, (5, 16), generator=torch.Generator().manual_seed(0))
    recorder = Recorder()
    run_layerwise(model, recorder, ids, batch_size=2, show_progress=False)
    with torch.no_grad():
        hidden = model(ids, output_hidden_states=True).hidden_states
    # hidden_states[i + 1] is layer i's output (the last one after the final norm in HF).
    for i, out in enumerate(recorder.outputs[:-1]):
        torch.testing.assert_close(out, hidden[i + 1], rtol=1e-5, atol=1e-5)
    assert [i for i, _ in recorder.seen] == list(range(model.config.num_hidden_layers))


def test_sequential_mode_visits_groups_in_execution_order():
    model = tiny_model("llama")
    recorder = Recorder(sequential=True)
    run_layerwise(model, recorder, torch.randint(0, 300, (2, 8)), show_progress=False)
    groups = [paths for _, paths in recorder.seen[:4]]
    assert groups == [["self_attn.k_proj", "self_attn.q_proj", "self_attn.v_proj"], ["self_attn.o_proj"],
                      ["mlp.gate_proj", "mlp.up_proj"], ["mlp.down_proj"]]


def test_statistics_match_direct_computation():
    x = torch.randn(3, 50, 7)
    stats = LinearStats(7, {"sqnorm", "gram", "absmax", "absmean", "inputs"})
    for chunk in x.split(1):
        stats.update(chunk)
    flat = x.reshape(-1, 7).double()
    torch.testing.assert_close(stats.sqnorm, flat.pow(2).sum(0))
    torch.testing.assert_close(stats.gram, flat.T @ flat / 150)
    torch.testing.assert_close(stats.absmax, flat.abs().amax(0).float())
    torch.testing.assert_close(stats.absmean, flat.abs().mean(0))
    assert stats.tokens == 150 and stats.inputs().shape == (150, 7)


def test_changes_made_to_a_layer_reach_the_next_layers_inputs():
    model = tiny_model("llama")
    ids = torch.randint(0, 300, (2, 8))

    class ZeroFirstLayerMlp(Recorder):
        def apply(self, index, layer, stats):
            super().apply(index, layer, stats)
            if index == 0:
                get_module(layer, "mlp.down_proj").weight.data.zero_()

    algo = ZeroFirstLayerMlp(stats=("sqnorm",))
    run_layerwise(model, algo, ids, show_progress=False)
    with torch.no_grad():
        hidden = model(ids, output_hidden_states=True).hidden_states  # model now has the change too
    torch.testing.assert_close(algo.outputs[0], hidden[1], rtol=1e-5, atol=1e-5)
