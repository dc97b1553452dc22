"""Every on-disk layout as one codec (detect / save / load), and the dispatch between them.

Loading asks the codecs of `slmkit.formats.CODECS` in order; saving picks the codec from the
format the user named and what the model holds (packed, factorized or plain layers).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from slmkit.errors import SlmError
from slmkit.formats import CODECS, SAVE_FORMATS


def codec(name: str) -> ModuleType:
    return importlib.import_module(CODECS[name])


def detect(path: str | Path) -> ModuleType:
    """The codec that claims `path` (a folder or a file); a one-line error if none does."""
    path = Path(path)
    for name in CODECS:
        module = codec(name)
        if module.detect(path):
            return module
    raise SlmError(f"{path} is not a model slmkit can read (no config.json, not a GGUF file)")


def load(path: str | Path, dtype: str = "float32"):
    """(model, tokenizer) from a folder or file in any layout slmkit knows."""
    return detect(path).load(Path(path), dtype)


def codec_for_saving(model, format: str) -> ModuleType:
    """The codec that writes `model` in the named format."""
    from slmkit.modules.factorized import FactorizedLinear
    from slmkit.modules.quant_linear import QuantLinear

    if format not in SAVE_FORMATS:
        raise SlmError(f"unknown format '{format}' (valid: {', '.join(SAVE_FORMATS)})")
    kinds = {type(m) for m in model.modules()}
    if format == "gguf":
        return codec("gguf")
    if format == "compressed-tensors":
        return codec("pack_quantized" if QuantLinear in kinds else "sparse_bitmask")
    if format == "hf" and FactorizedLinear in kinds:
        return codec("low_rank")
    return codec("hf")


def save(model, tokenizer, path: str | Path, format: str = "hf") -> None:
    """Write `model` into `path` (an existing empty folder) in the named format."""
    if format == "hf_merged":
        codec("low_rank").save_merged(model, tokenizer, Path(path))
        return
    codec_for_saving(model, format).save(model, tokenizer, Path(path))
