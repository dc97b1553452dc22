"""The plain Hugging Face layout: config.json + safetensors + tokenizer, what `from_pretrained` loads.

It is the fallback: any folder with a config.json that no other codec claims. Loading goes
through transformers itself (sharded files, legacy weight names and all), with the shared
policy on top: no remote code, and no weight silently left at its random initialisation.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from slmkit.errors import SlmError
from slmkit.layouts.common import auto_tokenizer, config_json, first_line, torch_dtype
from slmkit.modules.quant_linear import QuantLinear

NAME = "hf"


def detect(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def save(model: nn.Module, tokenizer, folder: Path) -> None:
    if any(isinstance(m, QuantLinear) for m in model.modules()):
        raise SlmError("a quantized model cannot be saved as a plain Hugging Face folder; save it as compressed-tensors")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def load(path: Path, dtype: str = "float32"):
    """(model, tokenizer) through transformers, refusing folders whose weights do not cover the config."""
    from transformers import AutoModelForCausalLM

    config_json(path)  # a corrupt config.json or one asking for remote code fails here, naming the file
    tokenizer = auto_tokenizer(path)
    try:
        model, info = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype(dtype), trust_remote_code=False,
                                                           output_loading_info=True)
    except Exception as err:  # corrupt weights, unknown architecture, unreadable files: many kinds
        raise SlmError(f"could not load model from {path}: {first_line(err)}") from err
    problems = [f"missing tensor {k}" for k in info.get("missing_keys", [])]
    problems += [f"tensor {k} has another shape" for k, *_ in info.get("mismatched_keys", [])]
    if problems:
        raise SlmError(f"{path}: weights do not match its config ({problems[0]})")
    return model.eval(), tokenizer


SAFETENSORS_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}


def file_bytes(shapes: dict[str, tuple[int, ...]], dtype: str = "float32") -> int:
    """The exact size of model.safetensors that `save` writes for a model of these tensors (each
    storage once) in one dtype; transformers writes one file up to its 50 GB shard size."""
    from slmkit.layouts.common import safetensors_bytes

    kind = SAFETENSORS_DTYPES[dtype]
    return safetensors_bytes({name: (kind, shape) for name, shape in shapes.items()}, {"format": "pt"})
