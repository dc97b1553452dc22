"""Per-input-channel scaling folded into the operation that produces a Linear's input.

Y = W x = (W · diag(s)) (x / s): the weight columns are multiplied by s and the producer of x
(a norm, or a Linear whose output feeds only this input) divides its output by s, so the
model computes the same function. Used by AWQ and SmoothQuant.
"""

from __future__ import annotations

import torch
from torch import nn

from slmkit.anatomy import Anatomy, get_module, is_conv1d, linear_weight
from slmkit.compress.layerwise import linear_groups


def producer_of(anatomy: Anatomy, layer: nn.Module, paths: list[str]) -> nn.Module | None:
    """The module whose output is exactly the input of the Linears at `paths`, when scaling can be folded into it."""
    attn_in, o, mlp_in, down = linear_groups(anatomy)
    if paths == attn_in:
        return get_module(layer, anatomy.norms["input"])
    if paths == mlp_in:
        return get_module(layer, anatomy.norms.get("pre_feedforward", anatomy.norms["post_attention"]))
    if paths == o and "v" in anatomy.attn:
        v, out = get_module(layer, anatomy.attn["v"]), get_module(layer, o[0])
        if linear_weight(v).shape[0] == linear_weight(out).shape[1]:  # no grouped-query repetition in between
            return v
    if paths == down and "gate" in anatomy.mlp:  # act(gate) * up is linear in up
        return get_module(layer, anatomy.mlp["up"])
    return None


@torch.no_grad()
def fold_scales(anatomy: Anatomy, producer: nn.Module, linears: list[nn.Module], s: torch.Tensor) -> None:
    """Divide the producer's output channels by s and multiply the consumers' input columns by s."""
    s = s.float()
    if isinstance(producer, nn.Linear) or is_conv1d(producer):
        linear_weight(producer).div_(s[:, None])
        if getattr(producer, "bias", None) is not None:
            producer.bias.div_(s)
    elif anatomy.family.startswith("gemma"):  # Gemma norms scale by (1 + weight)
        producer.weight.copy_((1 + producer.weight) / s - 1)
    else:
        producer.weight.div_(s)
        if getattr(producer, "bias", None) is not None:
            producer.bias.div_(s)
    for module in linears:
        linear_weight(module).mul_(s[None, :])
