"""Load any causal LM as (model, tokenizer): embedded, local folder, GGUF file or hub id.

GGUF files are dequantized once through transformers' GGUF support and cached as a plain
safetensors folder, so later loads take seconds instead of a full conversion.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as transformers_logging

from slmkit.errors import SlmError
from slmkit.models.embedded import EMBEDDED
from slmkit.models.source import ModelSource, resolve_model

transformers_logging.disable_progress_bar()  # slmkit draws its own bars
transformers_logging.set_verbosity_error()

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# Folders whose manifest names a special layout (e.g. factorized layers) register a loader here:
# it takes (folder, dtype) and returns (model, tokenizer); a "module:function" string is imported when used.
FOLDER_LOADERS: dict = {
    "low_rank": "slmkit.compress.structured.lowrank:load_low_rank",
}


def cache_dir() -> Path:
    """Where converted models live: $SLMKIT_CACHE, else ~/.cache/slmkit."""
    return Path(os.environ.get("SLMKIT_CACHE", Path.home() / ".cache" / "slmkit"))


def torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise SlmError(f"unknown dtype {name!r} (choose from {', '.join(DTYPES)})")
    return DTYPES[name]


def load(spec: str, dtype: str = "float32") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a model and its tokenizer, in eval mode, from any supported spec."""
    return load_folder(model_folder(resolve_model(spec)), dtype)


def model_folder(source: ModelSource) -> str:
    """A loadable folder (or hub id) for a source; GGUF files are converted and cached first."""
    if source.kind == "embedded":
        return str(gguf_to_folder(EMBEDDED[source.ref].path(), name=source.ref))
    if source.kind == "gguf":
        return str(gguf_to_folder(Path(source.ref)))
    return source.ref


def load_folder(folder: str, dtype: str = "float32") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load from a Hugging Face folder or hub id with plain transformers (or a registered loader)."""
    layout = folder_layout(folder)
    if layout in FOLDER_LOADERS:
        loader = FOLDER_LOADERS[layout]
        if isinstance(loader, str):
            module, _, func = loader.partition(":")
            loader = getattr(importlib.import_module(module), func)
        return loader(folder, dtype)
    from slmkit.compress.quant.compressed import is_quantized_compressed, load_quantized_compressed
    from slmkit.models.compressed_tensors import is_sparse_compressed, load_sparse_compressed

    if is_quantized_compressed(folder):  # packed integer weights: keep them packed (QuantLinear)
        return load_quantized_compressed(folder, dtype)
    if is_sparse_compressed(folder):  # compressed-tensors no longer decompresses sparse checkpoints
        return load_sparse_compressed(folder, dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype(dtype))
    except OSError as err:
        if not Path(folder).exists():
            raise SlmError(f"could not fetch {folder} from the model hub (offline or unknown id): {first_line(err)}") from err
        raise SlmError(f"could not load model from {folder}: {first_line(err)}") from err
    except SlmError:
        raise
    except Exception as err:  # corrupt weights, config/weight mismatch, unknown architecture…
        raise SlmError(f"could not load model from {folder}: {first_line(err)}") from err
    model.eval()
    return model, tokenizer


def folder_layout(folder: str) -> str:
    """The layout a folder declares: `layout` in its manifest, else `slmkit_layout` in its config, else "hf"."""
    for name, key in (("slmkit.json", "layout"), ("config.json", "slmkit_layout")):
        path = Path(folder) / name
        if path.is_file():
            layout = json.loads(path.read_text()).get(key)
            if layout:
                return layout
    return "hf"


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def gguf_to_folder(path: Path, name: str | None = None) -> Path:
    """Convert a GGUF file to a cached fp32 safetensors folder once; return the folder."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir() / "models" / f"{name or path.stem}-{key}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            gguf_model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        except Exception as err:  # transformers raises many kinds on a corrupt or unsupported GGUF
            raise SlmError(f"could not read GGUF file {path}: {first_line(err)}") from err
        # A GGUF-loaded model refuses save_pretrained: rebuild a plain one from its config and weights.
        config = gguf_model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        with torch.device("meta"):
            plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(gguf_model.state_dict(), assign=True)
        plain.tie_weights()
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "slmkit-source.json").write_text(json.dumps({"gguf": str(path.resolve())}, indent=1))
        os.replace(tmp, target) if not target.exists() else shutil.rmtree(tmp)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def config_of(spec: str):
    """The transformers config of a model spec, without loading weights."""
    return AutoConfig.from_pretrained(model_folder(resolve_model(spec)))
