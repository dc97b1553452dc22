"""Round-to-nearest weight quantization: the baseline every calibrated method is measured against."""

from __future__ import annotations

import torch

from slmkit.anatomy import decoder_linears, linear_weight
from slmkit.compress.quant.grid import QuantSpec, check_group_size, quantize_rtn
from slmkit.compress.quant.options import WeightQuantOptions
from slmkit.modules.quant_linear import replace_with_quant


def spec_of(options: WeightQuantOptions) -> QuantSpec:
    return QuantSpec(options.bits, options.group_size, options.symmetric)


@torch.no_grad()
def rtn_quantize(model, tokenizer, options: WeightQuantOptions, context=None):
    """Replace every decoder Linear by a packed QuantLinear of its rounded weights."""
    if getattr(options, "importance", False):
        return importance_rtn(model, options.gguf_type, context)
    if getattr(options, "gguf_type", None):
        return rtn_onto_ggml(model, options.gguf_type)
    spec = spec_of(options)
    check_group_size(model, spec.group_size)
    for name, module in decoder_linears(model).items():
        codes, scale, zero = quantize_rtn(linear_weight(module), spec)
        replace_with_quant(model, name, codes, scale, zero, spec.bits, group_size=spec.group_size)
    return model


@torch.no_grad()
def rtn_onto_ggml(model, gguf_type: str):
    """Every decoder Linear rounded by llama.cpp's reference quantizer onto `gguf_type`, kept as GgmlLinear."""
    from slmkit.compress.quant.ggml_grid import check_model_rows
    from slmkit.ggml.rtn import quantize
    from slmkit.modules.ggml_linear import replace_with_ggml

    t = check_model_rows(model, gguf_type)
    for name, module in decoder_linears(model).items():
        replace_with_ggml(model, name, quantize(linear_weight(module), t))
    return model


class ImportanceRTN:
    """Layer-wise client: each Linear rounded by llama.cpp's imatrix rule, importance = mean x_j² of its inputs."""

    stats = {"sqnorm"}
    sequential = True

    def __init__(self, t, tokens: int) -> None:
        self.t, self.tokens = t, tokens

    def apply(self, index, layer, stats) -> None:
        from slmkit.anatomy import get_module
        from slmkit.ggml.rtn import quantize
        from slmkit.modules.ggml_linear import replace_with_ggml

        for path, s in stats.items():
            importance = (s.sqnorm / self.tokens).float()
            replace_with_ggml(layer, path, quantize(linear_weight(get_module(layer, path)), self.t, importance))


def importance_rtn(model, gguf_type: str, context):
    """Importance-weighted RTN onto `gguf_type` from the calibration batch (llama-imatrix + llama-quantize --imatrix)."""
    from slmkit.compress.layerwise import run_layerwise
    from slmkit.compress.quant.ggml_grid import check_model_rows

    t = check_model_rows(model, gguf_type)
    ids = context.calibration_ids()
    run_layerwise(model, ImportanceRTN(t, ids.numel()), ids, description="importance-rtn")
    return model
