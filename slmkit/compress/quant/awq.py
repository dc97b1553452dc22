"""AWQ (Lin et al. 2023): protect salient input channels by scaling them up before rounding.

For each group of Linears sharing an input, s = mean|x|^α per input channel, α searched on a
grid to minimise the group's output error after quantizing W·diag(s) (inputs divided by s);
the best s is folded into the producer of the input (norm or previous Linear). Scales are
searched on float weights layer by layer through the layer-wise engine, then every decoder
Linear is rounded on its grid (RTN, or GPTQ with `quantizer: gptq`) and packed; with `gguf_type`
the search and the rounding use llama.cpp's grid.
"""

from __future__ import annotations

import torch

from slmkit.anatomy import anatomy_of, get_module, linear_weight
from slmkit.compress.layerwise import run_layerwise
from slmkit.compress.quant.ggml_plan import GridPlan
from slmkit.compress.quant.gptq import gptq_quantize
from slmkit.compress.quant.grid import QuantSpec, check_group_size, quantize_rtn
from slmkit.compress.quant.options import AWQOptions, GPTQOptions
from slmkit.compress.quant.rtn import rtn_quantize, spec_of
from slmkit.compress.quant.scaling import fold_scales, producer_of
from slmkit.modules.quant_linear import dequantize


def fake_quant(w: torch.Tensor, spec) -> torch.Tensor:
    """Round-trip through the grid: slmkit's (a QuantSpec) or llama.cpp's (a ggml GridType); None keeps w."""
    if spec is None:
        return w
    if isinstance(spec, QuantSpec):
        return dequantize(*quantize_rtn(w, spec))
    from slmkit.ggml.blocks import dequantize as grid_dequantize
    from slmkit.ggml.rtn import quantize

    return grid_dequantize(quantize(w, spec))


@torch.no_grad()
def search_scales(weights: list[torch.Tensor], x: torch.Tensor, absmean: torch.Tensor, spec,
                  grid: int = 20) -> torch.Tensor:
    """The per-input-channel scale s = absmean^α (α on a grid in [0, 1)) minimising ‖XWᵀ − (X/s)Q(W·s)ᵀ‖²;
    `spec` is one grid for every weight or a list of one per weight."""
    specs = spec if isinstance(spec, list) else [spec] * len(weights)
    x = x.float()
    reference = [x @ w.float().t() for w in weights]
    best, best_error = torch.ones_like(absmean, dtype=torch.float32), float("inf")
    for step in range(grid):
        alpha = step / grid
        s = absmean.float().clamp(min=1e-4).pow(alpha)
        s = s / (s.max() * s.min()).sqrt()
        error = sum(float((x / s @ fake_quant(w.float() * s, sp).t() - ref).pow(2).sum())
                    for w, sp, ref in zip(weights, specs, reference))
        if error < best_error:
            best, best_error = s, error
    return best


class AWQScaling:
    """Layer-wise client: searches and folds the scales of each group; quantization happens afterwards."""

    stats = {"absmean", "inputs"}
    sequential = True

    def __init__(self, model, spec, grid: int, search_tokens: int, plan: GridPlan | None = None) -> None:
        self.anatomy, self.spec, self.grid, self.search_tokens = anatomy_of(model), spec, grid, search_tokens
        self.plan = plan  # a file type's mix: each Linear's own ggml grid

    def apply(self, index, layer, stats) -> None:
        paths = list(stats)
        producer = producer_of(self.anatomy, layer, paths)
        if producer is None:
            return
        linears = [get_module(layer, p) for p in paths]
        first = stats[paths[0]]
        x = first.inputs()
        x = x[torch.linspace(0, len(x) - 1, min(len(x), self.search_tokens)).long()]  # evenly spread tokens
        spec = [self.plan.in_layer(index, p, m) for p, m in zip(paths, linears)] if self.plan else self.spec
        s = search_scales([linear_weight(m) for m in linears], x, first.absmean, spec, self.grid)
        fold_scales(self.anatomy, producer, linears, s)


def awq_quantize(model, tokenizer, options: AWQOptions, context):
    plan = spec = None
    if options.gguf_type:
        plan = GridPlan(model, options.gguf_type)
    else:
        spec = spec_of(options)
        check_group_size(model, spec.group_size)
    scaling = AWQScaling(model, spec, options.grid, options.search_tokens, plan)
    run_layerwise(model, scaling, context.calibration_ids(), description="awq")
    if options.quantizer == "gptq":
        grid = options.model_dump(include={"bits", "group_size", "symmetric", "gguf_type"})
        return gptq_quantize(model, tokenizer, GPTQOptions(**grid), context)
    return rtn_quantize(model, tokenizer, options)
