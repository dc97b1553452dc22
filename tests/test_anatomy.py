import pytest
import torch
from tiny import FAMILIES, tiny_model

from slmkit.anatomy import anatomy_of, decoder_linears, get_module, linear_weight
from slmkit.errors import SlmError


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_maps_its_parts(family):
    model = tiny_model(family)
    anatomy = anatomy_of(model)
    layers = anatomy.layer_list(model)
    assert len(layers) == 2
    embed = get_module(model, anatomy.embed)
    assert isinstance(embed, torch.nn.Embedding)
    assert get_module(model, anatomy.lm_head).weight.shape[0] == model.config.vocab_size
    get_module(model, anatomy.final_norm)
    for layer in layers:
        for path in anatomy.norms.values():
            get_module(layer, path)
        for module in anatomy.linears(layer).values():
            w = linear_weight(module)
            assert w.dim() == 2
    hidden = model.config.hidden_size if hasattr(model.config, "hidden_size") else model.config.n_embd
    linears = decoder_linears(model)
    assert len(linears) == 2 * (len(anatomy.attn) + len(anatomy.mlp))
    # Linears that read the residual stream take `hidden` inputs, in [out, in] layout.
    for role in ("q", "qkv"):
        if role in anatomy.attn:
            assert linear_weight(get_module(layers[0], anatomy.attn[role])).shape[1] == hidden


def test_linear_weight_writes_through_conv1d():
    model = tiny_model("gpt2")
    module = get_module(anatomy_of(model).layer_list(model)[0], "mlp.c_fc")
    w = linear_weight(module)
    w[0, 0] = 123.0
    assert module.weight[0, 0].item() == 123.0  # Conv1D stores [in, out]


def test_unsupported_architecture_is_one_line_naming_it():
    class Config:
        model_type = "mamba"

    with pytest.raises(SlmError) as err:
        anatomy_of(Config())
    message = str(err.value)
    assert "mamba" in message and "llama" in message and "\n" not in message
