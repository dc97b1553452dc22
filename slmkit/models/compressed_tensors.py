"""Sparse models in the compressed-tensors `sparse-bitmask` layout (the format vLLM's loader names).

Every pruned decoder Linear `W` is stored as four tensors: `W.compressed` (its non-zeros in
row-major order), `W.bitmask` (where they go, one bit per weight, packed with the library's
`pack_bitmasks`), `W.row_offsets` (where each row starts in `compressed`) and `W.shape`. Other
tensors are stored dense. config.json carries compressed-tensors' `BitmaskConfig` under
`quantization_config.sparsity_config`, with the real global sparsity and N:M structure.

compressed-tensors ≥ 0.15 no longer decompresses sparse checkpoints itself, so
`load_sparse_compressed` (used by `slmkit.load`) restores the dense weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from slmkit.models.anatomy import decoder_linears

WEIGHTS = "model.safetensors"
SPARSE_FORMAT = "sparse-bitmask"


def sparsity_structure(weights: list[torch.Tensor]) -> str:
    """The finest N:M pattern (of 2:4, 4:8) every weight satisfies, else 'unstructured'."""
    from slmkit.compress.pruning.mask import satisfies_nm

    for n, m in ((2, 4), (4, 8)):
        if all(satisfies_nm(w, n, m) for w in weights):
            return f"{n}:{m}"
    return "unstructured"


def compress_weight(name: str, weight: torch.Tensor) -> dict[str, torch.Tensor]:
    from compressed_tensors.utils.helpers import pack_bitmasks

    weight = weight.detach().contiguous()
    nonzero = weight != 0
    return {
        f"{name}.shape": torch.tensor(weight.shape, dtype=torch.int32),
        f"{name}.compressed": weight[nonzero].contiguous(),
        f"{name}.bitmask": pack_bitmasks(nonzero),
        f"{name}.row_offsets": torch.cat([torch.zeros(1, dtype=torch.int64), nonzero.sum(1).cumsum(0)[:-1]]).to(torch.int32),
    }


def decompress_weight(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    from compressed_tensors.utils.helpers import unpack_bitmasks

    shape = tensors["shape"].tolist()
    mask = unpack_bitmasks(tensors["bitmask"], shape)
    dense = torch.zeros(shape, dtype=tensors["compressed"].dtype)
    dense[mask] = tensors["compressed"]
    return dense


def save_compressed_tensors(model, tokenizer, folder: Path) -> None:
    """The `compressed-tensors` format: packed integer weights for quantized models, else the sparse bitmask layout."""
    from slmkit.compress.quant.compressed import save_quantized_compressed
    from slmkit.compress.quant.linear import QuantLinear

    if any(isinstance(m, QuantLinear) for m in model.modules()):
        save_quantized_compressed(model, tokenizer, folder)
    else:
        save_sparse_compressed(model, tokenizer, folder)


@torch.no_grad()
def save_sparse_compressed(model, tokenizer, folder: Path) -> None:
    """Write `model` with its decoder Linears bitmask-compressed, plus config and tokenizer."""
    from compressed_tensors.config import BitmaskConfig

    folder = Path(folder)
    linears = {f"{name}.weight": m.weight for name, m in decoder_linears(model).items()}
    state, seen = {}, set()
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen:  # tied weights (LM head = embeddings) are stored once
            continue
        seen.add(tensor.data_ptr())
        state.update(compress_weight(name, tensor) if name in linears else {name: tensor.contiguous()})
    save_file(state, str(folder / WEIGHTS), metadata={"format": "pt"})

    weights = list(linears.values())
    zeros = sum((w == 0).sum().item() for w in weights) / max(1, sum(w.numel() for w in weights))
    sparsity = BitmaskConfig(global_sparsity=round(zeros, 6), sparsity_structure=sparsity_structure(weights),
                             targets=sorted({type(m).__name__ for m in decoder_linears(model).values()}),
                             ignore=[name for name, _ in model.named_modules() if name.endswith("lm_head")])
    model.config.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "compressed-tensors", "format": SPARSE_FORMAT,
                                     "sparsity_config": sparsity.model_dump()}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def is_sparse_compressed(folder: str | Path) -> bool:
    config = Path(folder) / "config.json"
    if not config.is_file():
        return False
    quant = json.loads(config.read_text()).get("quantization_config") or {}
    return (quant.get("sparsity_config") or {}).get("format") == SPARSE_FORMAT and quant.get("format") == SPARSE_FORMAT


@torch.no_grad()
def load_sparse_compressed(folder: str | Path, dtype: str = "float32"):
    """Rebuild the dense model from a sparse-bitmask folder: (model, tokenizer)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from slmkit.models.loading import torch_dtype

    folder = Path(folder)
    config = AutoConfig.from_pretrained(folder)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype(dtype))
    state, parts = {}, {}
    with safe_open(str(folder / WEIGHTS), framework="pt") as f:
        for key in f.keys():
            base, _, suffix = key.rpartition(".")
            if suffix in ("shape", "compressed", "bitmask", "row_offsets"):
                parts.setdefault(base, {})[suffix] = f.get_tensor(key)
            else:
                state[key] = f.get_tensor(key)
    state.update({name: decompress_weight(p) for name, p in parts.items()})
    missing, unexpected = model.load_state_dict(state, strict=False)
    model.tie_weights()
    tied = {k for k in missing if k.endswith("lm_head.weight")}
    if set(missing) - tied or unexpected:
        from slmkit.errors import SlmError

        raise SlmError(f"{folder} does not match its config: missing {sorted(set(missing) - tied)[:3]}, unexpected {unexpected[:3]}")
    model.to(torch_dtype(dtype)).eval()
    return model, AutoTokenizer.from_pretrained(folder)
