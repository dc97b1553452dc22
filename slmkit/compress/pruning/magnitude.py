"""Magnitude pruning: the baseline every pruning method is measured against."""

from __future__ import annotations

import torch

from slmkit.anatomy import anatomy_of, linear_weight
from slmkit.compress.mask import prune_mask
from slmkit.compress.pruning.options import MagnitudeOptions
from slmkit.progress import progress_bar


@torch.no_grad()
def magnitude_prune(model, tokenizer, options: MagnitudeOptions, context=None, show_progress: bool = True, offload=None):
    """Zero the lowest-|w| weights of each decoder Linear (embeddings and LM head untouched).

    With `offload` (compress/offload.py) each decoder layer is read from disk, pruned, written and freed in turn."""
    anatomy = anatomy_of(model)
    layers = anatomy.layer_list(model)
    with progress_bar("magnitude", total=len(layers), enabled=show_progress) as advance:
        for index, layer in enumerate(layers):
            if offload is not None:
                offload.load(index, layer)
            for module in anatomy.linears(layer).values():
                weight = linear_weight(module)
                weight[prune_mask(weight.abs(), options.sparsity, options.kept_of_m, options.scope)] = 0
            if offload is not None:
                offload.release(index, layer)
            advance()
    return model
