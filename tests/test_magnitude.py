import pytest
import torch
from tiny import FAMILIES, tiny_model

from slmkit.anatomy import anatomy_of, decoder_linears, get_module, linear_weight
from slmkit.compress.pruning.magnitude import magnitude_prune
from slmkit.compress.pruning.options import MagnitudeOptions


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("sparsity", [0.3, 0.5])
def test_row_scope_zeroes_exactly_the_requested_share_of_each_row(family, sparsity):
    model = tiny_model(family)
    anatomy = anatomy_of(model)
    embed_before = get_module(model, anatomy.embed).weight.clone()
    magnitude_prune(model, None, MagnitudeOptions(sparsity=sparsity, scope="row"))
    for name, module in decoder_linears(model).items():
        w = linear_weight(module)
        zeros_per_row = (w == 0).sum(dim=1)
        assert torch.all(zeros_per_row == int(w.shape[1] * sparsity)), name
    assert torch.equal(get_module(model, anatomy.embed).weight, embed_before)


def test_layer_scope_is_exact_and_removes_the_smallest():
    model = tiny_model("llama")
    originals = {n: linear_weight(m).clone() for n, m in decoder_linears(model).items()}
    magnitude_prune(model, None, MagnitudeOptions(sparsity=0.4, scope="layer"))
    for name, module in decoder_linears(model).items():
        w, orig = linear_weight(module), originals[name]
        assert (w == 0).sum().item() == int(w.numel() * 0.4)
        kept_min = orig[w != 0].abs().min()
        pruned_max = orig[w == 0].abs().max()
        assert pruned_max <= kept_min
