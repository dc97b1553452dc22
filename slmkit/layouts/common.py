"""What every layout codec shares: reading a folder's config, building an empty model from it,
loading a state dict strictly with one tied-weight policy, and writing each storage once.

Tied-weight policy: a weight may be absent from the files only if, once the model's own
`tie_weights()` has run, it shares its storage with a weight that was loaded (the LM head of a
model with tied embeddings). Anything else missing, and anything unexpected, is an error that
names the folder. Remote code is never run: a folder whose config needs it is refused.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

from slmkit.errors import SlmError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
WEIGHTS = "model.safetensors"


def torch_dtype(name: str | torch.dtype) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    if name not in DTYPES:
        raise SlmError(f"unknown dtype {name!r} (choose from {', '.join(DTYPES)})")
    return DTYPES[name]


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def read_json(path: Path) -> dict:
    """A JSON object from a file, or a one-line error that names the file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SlmError(f"cannot read {path}: {first_line(err)}") from err
    if not isinstance(data, dict):
        raise SlmError(f"cannot read {path}: expected a JSON object")
    return data


def config_json(folder: str | Path) -> dict:
    """The raw config.json of a folder ({} when absent), refusing configs that need remote code."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return {}
    config = read_json(path)
    if config.get("auto_map"):
        raise SlmError(f"{path} needs custom model code (auto_map); slmkit never runs code from a model folder")
    return config


def auto_config(folder: str | Path):
    """The transformers config of a folder (or hub id), without remote code."""
    from transformers import AutoConfig

    if Path(folder).is_dir():
        config_json(folder)  # names the file if it is corrupt or asks for remote code
    try:
        return AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
    except (OSError, ValueError, KeyError) as err:
        raise SlmError(f"cannot read the model config of {folder}: {first_line(err)}") from err


def auto_tokenizer(folder: str | Path, **kwargs):
    """The tokenizer saved in a folder (or hub id), without remote code."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False, **kwargs)
    except (OSError, ValueError, KeyError) as err:
        raise SlmError(f"cannot read the tokenizer of {folder}: {first_line(err)}") from err


def empty_model(config, dtype: str | torch.dtype = "float32") -> nn.Module:
    """The family's model for `config` with parameters on the meta device (buffers real): nothing
    is initialised, so building it is instant; `load_state` then fills in the saved tensors."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with init_empty_weights(include_buffers=False):
        return AutoModelForCausalLM.from_config(config, dtype=torch_dtype(dtype), trust_remote_code=False)


def read_safetensors(folder: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of every safetensors file in a folder (a sharded checkpoint is one dict)."""
    from safetensors.torch import load_file

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise SlmError(f"{folder} has no safetensors weights")
    state = {}
    for file in files:
        state.update(load_file(str(file)))
    return state


def load_state(model: nn.Module, state: dict[str, torch.Tensor], folder: str | Path, dtype: str = "float32") -> nn.Module:
    """Put `state` into an empty model (strict, with the tied-weight policy above) and return it in eval mode."""
    target = torch_dtype(dtype)
    expected = model.state_dict(keep_vars=True)
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise SlmError(f"{folder}: weights do not match its config (unexpected tensor {unexpected[0]})")
    for name, tensor in state.items():
        if expected[name].shape != tensor.shape:
            raise SlmError(f"{folder}: {name} has shape {tuple(tensor.shape)}, its config says {tuple(expected[name].shape)}")
        if tensor.is_floating_point():
            state[name] = tensor.to(target)
    model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    missing = [name for name, t in model.state_dict(keep_vars=True).items() if t.is_meta]
    if missing:
        raise SlmError(f"{folder}: weights do not match its config (missing tensor {missing[0]})")
    return model.eval()


def unique_tensors(named: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep the first name of every storage: tied weights (LM head = embeddings) are written once."""
    out, seen = {}, set()
    for name, tensor in named.items():
        key = tensor.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            out[name] = tensor
    return out


def write_config(model: nn.Module, tokenizer, folder: Path, extra: dict | None = None) -> None:
    """config.json (plus `extra` keys), generation_config.json and the tokenizer files."""
    model.config.save_pretrained(folder)
    if extra:
        path = Path(folder) / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **extra}, indent=2) + "\n")
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)


# safetensors writes tensors sorted by dtype, largest first in its own enum order, then by name.
SAFETENSORS_ORDER = ("U64", "I64", "F64", "F32", "U32", "I32", "BF16", "F16", "U16", "I16", "I8", "U8", "BOOL")
SAFETENSORS_ITEMSIZE = {"U64": 8, "I64": 8, "F64": 8, "F32": 4, "U32": 4, "I32": 4, "BF16": 2, "F16": 2, "U16": 2,
                        "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def safetensors_bytes(tensors: dict[str, tuple[str, tuple[int, ...]]], metadata: dict | None = None) -> int:
    """The exact size of the safetensors file holding `tensors` ({name: (dtype, shape)}): an 8-byte
    length, the JSON header (compact, padded with spaces to 8 bytes) and the data, back to back."""
    header: dict = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name in sorted(tensors, key=lambda n: (SAFETENSORS_ORDER.index(tensors[n][0]), n)):
        dtype, shape = tensors[name]
        size = SAFETENSORS_ITEMSIZE[dtype] * math.prod(shape)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = len(json.dumps(header, separators=(",", ":")).encode())
    return 8 + text + (-text) % 8 + offset
