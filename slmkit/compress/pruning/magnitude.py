"""Magnitude pruning: the baseline every pruning method is measured against."""

from __future__ import annotations

import torch

from slmkit.compress.pruning.mask import prune_mask
from slmkit.compress.pruning.options import MagnitudeOptions
from slmkit.models.anatomy import decoder_linears, linear_weight


@torch.no_grad()
def magnitude_prune(model, tokenizer, options: MagnitudeOptions, context=None):
    """Zero the lowest-|w| weights of each decoder Linear (embeddings and LM head untouched)."""
    for module in decoder_linears(model).values():
        weight = linear_weight(module)
        weight[prune_mask(weight.abs(), options.sparsity, options.n_of_m, options.scope)] = 0
    return model
