"""Sparse models in the compressed-tensors `sparse-bitmask` layout (the format vLLM's loader names).

Every pruned Linear weight `W` (all Linears but the LM head, as the config's `targets`/`ignore`
say) is stored as four tensors: `W.compressed` (its non-zeros in row-major order), `W.bitmask`
(where they go, one bit per weight, packed with the library's `pack_bitmasks`), `W.row_offsets`
(where each row starts in `compressed`) and `W.shape`. Other tensors are stored dense.
config.json carries compressed-tensors' `BitmaskConfig` under `quantization_config.sparsity_config`,
with the real global sparsity and N:M structure.

compressed-tensors ≥ 0.15 no longer decompresses sparse checkpoints itself, so `load` restores
the dense weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from slmkit.layouts.common import (
    WEIGHTS,
    auto_config,
    auto_tokenizer,
    config_json,
    empty_model,
    load_state,
    read_safetensors,
    unique_tensors,
    write_config,
)

NAME = "sparse_bitmask"
FORMAT = "sparse-bitmask"
PARTS = ("shape", "compressed", "bitmask", "row_offsets")


def detect(path: Path) -> bool:
    quant = config_json(path).get("quantization_config") or {} if path.is_dir() else {}
    return quant.get("format") == FORMAT and (quant.get("sparsity_config") or {}).get("format") == FORMAT


def sparse_linears(model: nn.Module) -> dict[str, nn.Module]:
    """The Linears the format compresses: every Linear (or GPT-2 Conv1D) except the LM head."""
    return {name: m for name, m in model.named_modules()
            if (isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D") and not name.endswith("lm_head")}


def structure(weights: list[torch.Tensor]) -> str:
    """The finest N:M pattern (of 2:4, 4:8) every weight's rows satisfy, else 'unstructured'."""
    for n, m in ((2, 4), (4, 8)):
        if all(w.shape[1] % m == 0 and ((w.reshape(w.shape[0], -1, m) != 0).sum(-1) <= n).all() for w in weights):
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


@torch.no_grad()
def save(model: nn.Module, tokenizer, folder: Path) -> None:
    """Write `model` with its Linears bitmask-compressed, plus config and tokenizer."""
    from compressed_tensors.config import BitmaskConfig

    linears = sparse_linears(model)
    targets = {f"{name}.weight" for name in linears}
    state = {}
    for name, tensor in unique_tensors(model.state_dict()).items():
        state.update(compress_weight(name, tensor) if name in targets else {name: tensor.contiguous()})
    save_file(state, str(Path(folder) / WEIGHTS), metadata={"format": "pt"})

    weights = [m.weight.t() if type(m).__name__ == "Conv1D" else m.weight for m in linears.values()]
    zeros = sum(int((w == 0).sum()) for w in weights) / max(1, sum(w.numel() for w in weights))
    sparsity = BitmaskConfig(global_sparsity=round(zeros, 6), sparsity_structure=structure(weights),
                             targets=sorted({type(m).__name__ for m in linears.values()}),
                             ignore=[name for name, _ in model.named_modules() if name.endswith("lm_head")])
    write_config(model, tokenizer, folder, {"quantization_config": {
        "quant_method": "compressed-tensors", "format": FORMAT, "sparsity_config": sparsity.model_dump()}})


@torch.no_grad()
def load(path: Path, dtype: str = "float32"):
    """Rebuild the dense model from a sparse-bitmask folder: (model, tokenizer)."""
    state, parts = {}, {}
    for key, tensor in read_safetensors(path).items():
        base, _, suffix = key.rpartition(".")
        if suffix in PARTS:
            parts.setdefault(base, {})[suffix] = tensor
        else:
            state[key] = tensor
    state.update({name: decompress_weight(p) for name, p in parts.items()})
    model = empty_model(auto_config(path), dtype)
    return load_state(model, state, path, dtype), auto_tokenizer(path)
