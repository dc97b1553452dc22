"""Output formats a model can be saved in, by name (torch-free, so recipes validate fast).

Each maps to a "module:function" taking (model, tokenizer, folder) that writes the weights,
config and tokenizer into an existing, empty folder.
"""

from __future__ import annotations

import importlib
from typing import Callable

SAVE_FORMATS: dict[str, str] = {
    "hf": "slmkit.models.saving:save_hf",
    "compressed-tensors": "slmkit.models.compressed_tensors:save_compressed_tensors",
    "hf_merged": "slmkit.compress.structured.lowrank:save_merged",
}
GGUF_TYPES = ("F32", "F16", "Q8_0", "Q4_0")  # tensor types `slm export --format gguf` writes


def saver(name: str) -> Callable:
    module, _, func = SAVE_FORMATS[name].partition(":")
    return getattr(importlib.import_module(module), func)
