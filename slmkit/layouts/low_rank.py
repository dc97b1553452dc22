"""The low-rank layout: a Hugging Face folder whose factorized projections are stored as two Linears.

config.json records the factorization (`slmkit_layout: low_rank`, and `slmkit_low_rank`:
{module: [rank, in, out, conv1d]}), so loading builds the family's model, puts FactorizedLinear
modules back in those places and loads the factor weights. `merge` multiplies the factors back
for a plain folder that any transformers install loads.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from slmkit.anatomy import get_module, set_module
from slmkit.errors import SlmError
from slmkit.layouts import hf
from slmkit.layouts.common import auto_config, auto_tokenizer, config_json, empty_model, load_state, read_safetensors
from slmkit.modules.factorized import FactorizedLinear

NAME = "low_rank"
CONFIG_KEYS = ("slmkit_layout", "slmkit_low_rank")


def detect(path: Path) -> bool:
    return path.is_dir() and config_json(path).get("slmkit_layout") == NAME


def save(model: nn.Module, tokenizer, folder: Path) -> None:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def load(path: Path, dtype: str = "float32"):
    config = auto_config(path)
    ranks = getattr(config, "slmkit_low_rank", None)
    if not ranks:
        raise SlmError(f"{path} is marked low_rank but its config.json records no ranks")
    model = empty_model(config, dtype)
    for name, (rank, in_features, out_features, conv1d) in ranks.items():
        bias = getattr(get_module(model, name), "bias", None) is not None
        with torch.device("meta"):
            set_module(model, name, FactorizedLinear(in_features, out_features, rank, bias, bool(conv1d)))
    return load_state(model, read_safetensors(path), path, dtype), auto_tokenizer(path)


def merge(model: nn.Module) -> nn.Module:
    """Multiply every factorization back into a dense projection (in place); the model is plain again."""
    for name, module in list(model.named_modules()):
        if isinstance(module, FactorizedLinear):
            set_module(model, name, module.merged())
    for key in CONFIG_KEYS:
        if hasattr(model.config, key):
            delattr(model.config, key)
    return model


def save_merged(model: nn.Module, tokenizer, folder: Path) -> None:
    """Save format `hf_merged`: the factors multiplied back, written as a plain Hugging Face folder."""
    hf.save(merge(copy.deepcopy(model)), tokenizer, folder)
