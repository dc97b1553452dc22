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
    """Every decoder Linear rounded by llama.cpp's reference quantizer onto its grid for `gguf_type`, kept as GgmlLinear."""
    from slmkit.compress.quant.ggml_plan import GridPlan
    from slmkit.ggml.rtn import quantize
    from slmkit.modules.ggml_linear import replace_with_ggml

    plan = GridPlan(model, gguf_type)
    for name, module in decoder_linears(model).items():
        t = plan.of(name, module)
        if t is not None:
            replace_with_ggml(model, name, quantize(linear_weight(module), t))
    return model


class ImportanceRTN:
    """Layer-wise client: each Linear rounded by llama.cpp's imatrix rule, importance = mean x_j² of its inputs.

    As llama-imatrix does, the statistics come from the float model: a layer is rounded only after
    its float outputs have become the next layer's inputs (after_layer), never from rounded activations."""

    stats = {"sqnorm"}
    sequential = False

    def __init__(self, plan, tokens: int) -> None:
        self.plan, self.tokens = plan, tokens
        self.pending: dict = {}

    def apply(self, index, layer, stats) -> None:
        self.pending = {path: (s.sqnorm / self.tokens).float() for path, s in stats.items()}

    def after_layer(self, index, layer, inputs, outputs) -> None:
        from slmkit.anatomy import get_module
        from slmkit.ggml.rtn import quantize
        from slmkit.modules.ggml_linear import replace_with_ggml

        for path, importance in self.pending.items():
            module = get_module(layer, path)
            t = self.plan.in_layer(index, path, module)
            if t is not None:
                replace_with_ggml(layer, path, quantize(linear_weight(module), t, importance))
        self.pending = {}


def importance_rtn(model, gguf_type: str, context):
    """Importance-weighted RTN onto `gguf_type` from the calibration batch (llama-imatrix + llama-quantize --imatrix)."""
    from slmkit.compress.layerwise import run_layerwise
    from slmkit.compress.quant.ggml_plan import GridPlan
    from slmkit.errors import SlmError

    plan = GridPlan(model, gguf_type)
    unweighted = sorted(g.name for g in plan.grids(model) if g.has_min and not g.is_k)
    if unweighted:
        raise SlmError(f"--gguf-type {gguf_type} puts some layers on {', '.join(unweighted)}, whose importance-weighted "
                       "rounding is not built; drop --importance or choose a type whose layers avoid it")
    ids = context.calibration_ids()
    run_layerwise(model, ImportanceRTN(plan, ids.numel()), ids, description="importance-rtn")
    return model
