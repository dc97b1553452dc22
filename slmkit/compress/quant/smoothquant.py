"""SmoothQuant (Xiao et al. 2022): migrate activation outliers into the weights, then W8A8.

For the Linears fed by a norm (q/k/v and gate/up), s_j = max|x_j|^α / max|w_j|^(1−α) is
folded into the norm; then every decoder Linear gets int8 per-channel weights and quantizes
its inputs to int8 per token at run time.
"""

from __future__ import annotations

import torch

from slmkit.anatomy import anatomy_of, get_module, linear_weight
from slmkit.compress.layerwise import linear_groups, run_layerwise
from slmkit.compress.quant.grid import QuantSpec, quantize_rtn
from slmkit.compress.quant.options import SmoothQuantOptions
from slmkit.compress.quant.scaling import fold_scales
from slmkit.modules.quant_linear import replace_with_quant

W8 = QuantSpec(bits=8, group_size=0, symmetric=True)


class SmoothQuant:
    stats = {"absmax"}
    sequential = False

    def __init__(self, model, alpha: float) -> None:
        self.anatomy, self.alpha = anatomy_of(model), alpha

    def apply(self, index, layer, stats) -> None:
        attn_in, _, mlp_in, _ = linear_groups(self.anatomy)
        norms = {tuple(attn_in): self.anatomy.norms["input"],
                 tuple(mlp_in): self.anatomy.norms.get("pre_feedforward", self.anatomy.norms["post_attention"])}
        for paths, norm in norms.items():
            linears = [get_module(layer, p) for p in paths]
            act = stats[paths[0]].absmax.float().clamp(min=1e-5)
            weight = torch.stack([linear_weight(m).abs().amax(0) for m in linears]).amax(0).clamp(min=1e-5)
            s = (act.pow(self.alpha) / weight.pow(1 - self.alpha)).clamp(min=1e-5)
            fold_scales(self.anatomy, get_module(layer, norm), linears, s)
        for path in stats:
            codes, scale, zero = quantize_rtn(linear_weight(get_module(layer, path)), W8)
            replace_with_quant(layer, path, codes, scale, zero, 8, act_bits=8, group_size=0)


def smoothquant_quantize(model, tokenizer, options: SmoothQuantOptions, context):
    run_layerwise(model, SmoothQuant(model, options.alpha), context.calibration_ids(), description="smoothquant")
    return model
