"""GPTQ (Frantar et al. 2022) as a client of the OBS sweep and the layer-wise engine.

`GroupQuantizer` is the `ColumnQuantizer` the sweep calls: it fixes each group's grid at the
group's first column from the error-updated weights and records the integer codes. With
act-order, columns are visited by decreasing H_jj; groups are then computed once from the
original weights ("static groups"), so every group stays a contiguous run of input channels
and the packed layout needs no permutation index.
"""

from __future__ import annotations

import itertools

import torch

from slmkit.anatomy import get_module, linear_weight
from slmkit.compress.layerwise import paths_by_input, run_layerwise
from slmkit.compress.obs import obs_sweep
from slmkit.compress.quant.ggml_grid import GgmlColumnQuantizer
from slmkit.compress.quant.ggml_kgrid import KColumnQuantizer
from slmkit.compress.quant.ggml_plan import GridPlan
from slmkit.compress.quant.grid import QuantSpec, check_group_size, grid_params, to_codes
from slmkit.compress.quant.options import GPTQOptions
from slmkit.compress.quant.rtn import spec_of
from slmkit.errors import SlmError
from slmkit.modules.ggml_linear import replace_with_ggml
from slmkit.modules.quant_linear import replace_with_quant


class GroupQuantizer:
    """Quantizes columns on a per-group grid and keeps their codes in original column order."""

    def __init__(self, spec: QuantSpec, weight: torch.Tensor, perm: torch.Tensor | None = None) -> None:
        rows, cols = weight.shape
        self.spec, self.g = spec, spec.group_of(cols)
        self.perm = perm if perm is not None else torch.arange(cols)
        self.scale = torch.zeros(rows, cols // self.g)
        self.zero = torch.zeros(rows, cols // self.g)
        self.codes = torch.zeros(rows, cols, dtype=torch.uint8)
        self.static = perm is not None
        # obs_sweep calls prepare() at every multiple of group_size; static groups need no calls after column 0.
        self.group_size = 0 if self.static else spec.group_size
        if self.static:
            for g in range(cols // self.g):
                self.scale[:, g], self.zero[:, g] = grid_params(weight[:, g * self.g : (g + 1) * self.g], spec)

    def prepare(self, column: int, weights: torch.Tensor) -> None:
        if not self.static:
            g = column // self.g
            self.scale[:, g], self.zero[:, g] = grid_params(weights[:, : self.g], self.spec)

    def quantize(self, column: int, w: torch.Tensor) -> torch.Tensor:
        original = int(self.perm[column])
        g = original // self.g
        codes = to_codes(w, self.scale[:, g], self.zero[:, g], self.spec.maxq)
        self.codes[:, original] = codes.to(torch.uint8)
        return (codes - self.zero[:, g]) * self.scale[:, g]


def gptq_codes(weight: torch.Tensor, hessian: torch.Tensor, spec, act_order: bool = False,
               damp: float = 0.01, blocksize: int = 128, sparsity: float = 0.0,
               pruned_of_m: tuple[int, int] | None = None,
               segments: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GPTQ one weight [out, in] given its input Hessian; returns (codes, scale, zero) like `quantize_rtn`,
    or, when `spec` is a ggml GridType, the GridTensor the GGUF file will hold."""
    W = weight.detach().float()
    perm = None
    if act_order and pruned_of_m is None:  # an N:M pattern needs consecutive inputs: no reordering then
        perm = torch.argsort(torch.diag(hessian), descending=True)
    if isinstance(spec, QuantSpec):
        quantizer = GroupQuantizer(spec, W, perm)
    elif spec.is_k:
        quantizer = KColumnQuantizer(spec, W, perm)
    else:
        quantizer = GgmlColumnQuantizer(spec, W, perm, importance=torch.diag(hessian).float())
    H = hessian if perm is None else hessian[perm][:, perm]
    Wp = W if perm is None else W[:, perm]
    obs_sweep(Wp, H, sparsity=sparsity, pruned_of_m=pruned_of_m, quantizer=quantizer, blocksize=blocksize, damp=damp,
              segments=segments)
    if not isinstance(spec, QuantSpec):
        return quantizer.result()
    return quantizer.codes, quantizer.scale, quantizer.zero.to(torch.uint8)


class GPTQ:
    """Layer-wise client: each group of Linears sharing an input is quantized in turn (true sequential)."""

    stats = {"gram"}
    sequential = True

    def __init__(self, options: GPTQOptions, plan: GridPlan | None = None) -> None:
        self.options, self.plan = options, plan
        self.spec = None if plan is not None else spec_of(options)
        kept, of = (int(v) for v in options.pattern.split(":")) if options.pattern else (0, 0)
        self.pruned_of_m = (of - kept, of) if options.pattern else None

    def _by_grid(self, index, layer, paths: list[str]) -> list[tuple]:
        """(spec, paths) groups: one for slmkit's grid; per ggml type when a file type's mix gives them different ones."""
        if self.plan is None:
            return [(self.spec, paths)]
        groups: dict = {}
        for p in paths:
            groups.setdefault(self.plan.in_layer(index, p, get_module(layer, p)), []).append(p)
        return [(g, ps) for g, ps in groups.items() if g is not None]  # None: a layer the file keeps in float

    def apply(self, index, layer, stats) -> None:
        # Linears reading the same input (q/k/v, gate/up) share H, and GPTQ treats rows
        # independently given H: one sweep over their stacked rows is the same computation as
        # one sweep each, with a third of the Cholesky factorisations and column-loop steps.
        o = self.options
        for shared in paths_by_input(stats):
            for spec, paths in self._by_grid(index, layer, shared):
                weights = [linear_weight(get_module(layer, p)) for p in paths]
                sizes = [w.shape[0] for w in weights]
                result = gptq_codes(torch.cat([w.detach().float() for w in weights]), stats[paths[0]].gram,
                                    spec, o.act_order, o.damp, o.blocksize, o.sparsity, self.pruned_of_m, segments=sizes)
                if self.plan is not None:
                    for path, start, size in zip(paths, [0, *itertools.accumulate(sizes)], sizes):
                        replace_with_ggml(layer, path, result.map_rows(lambda x, a=start, n=size: x[a:a + n]))
                    continue
                codes, scale, zero = result
                for path, c, s, z in zip(paths, codes.split(sizes), scale.split(sizes), zero.split(sizes)):
                    replace_with_quant(layer, path, c, s, z, spec.bits, group_size=spec.group_size)


def gptq_quantize(model, tokenizer, options: GPTQOptions, context):
    plan = None
    if options.gguf_type:
        plan = GridPlan(model, options.gguf_type)
        if (options.sparsity or options.pattern) and any(g.has_min for g in plan.grids(model)):
            raise SlmError(f"--gguf-type {options.gguf_type}: a grid with a min cannot store pruned weights as exact zeros; "
                           "prune with Q4_0, Q5_0, Q8_0 or Q6_K")
    else:
        check_group_size(model, options.group_size)
    run_layerwise(model, GPTQ(options, plan), context.calibration_ids(), description="gptq")
    return model
