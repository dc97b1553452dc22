"""Rebuild a model from a changed config and state dict, exactly as plain transformers would load it.

Structured steps change shapes (fewer layers, narrower projections). Instead of patching module
attributes (layer indices, head counts, cached sizes), they build a fresh model from the new
config and load the sliced weights, so what runs here is what `from_pretrained` will run.
"""

from __future__ import annotations

import copy

import torch
from transformers import AutoModelForCausalLM

from slmkit.errors import SlmError


def rebuild(model, config, state_dict: dict[str, torch.Tensor]):
    """A new model of `config` holding `state_dict` (tied weights re-tied), in eval mode, same dtype and device."""
    if getattr(model.config, "slmkit_layout", None):
        raise SlmError(f"cannot prune a model in the {model.config.slmkit_layout} layout; prune before low_rank")
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    with torch.device(device):
        new = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=False)
    missing, unexpected = new.load_state_dict(state_dict, strict=False)
    tied = set(getattr(new, "_tied_weights_keys", None) or {})
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise RuntimeError(f"rebuilt model does not match its weights: missing {missing[:3]}, unexpected {unexpected[:3]}")
    new.tie_weights()
    new.generation_config = copy.deepcopy(model.generation_config)
    return new.eval()


def per_layer_fields(config) -> list[str]:
    """Config attributes holding one entry per decoder layer (layer_types, no_rope_layers, ...)."""
    n = config.num_hidden_layers
    return [k for k, v in vars(config).items() if isinstance(v, (list, tuple)) and len(v) == n and k != "architectures"]
