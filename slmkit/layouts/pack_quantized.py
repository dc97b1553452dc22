"""Quantized models in the compressed-tensors format (what vLLM and transformers load).

Codes go through the compressed-tensors library's own compressors: "pack-quantized" (sub-byte
codes packed into int32 words) for weight-only models, "int-quantized" (int8 weights, dynamic
per-token int8 inputs) for W8A8. compressed-tensors codes are signed: q = u − 2^(bits−1),
zero points likewise. Loading such a folder gives back packed QuantLinear modules.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from slmkit.anatomy import set_module
from slmkit.errors import SlmError
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
from slmkit.modules.quant_linear import QuantLinear, dequantize

NAME = "pack_quantized"


def detect(path: Path) -> bool:
    config = (config_json(path).get("quantization_config") or {}) if path.is_dir() else {}
    return config.get("quant_method") == "compressed-tensors" and bool(config.get("config_groups"))


def scheme_of(module: QuantLinear):
    """(compressed-tensors QuantizationScheme, storage format name) describing one QuantLinear."""
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

    weights = QuantizationArgs(num_bits=module.bits, type="int", symmetric=module.symmetric,
                               strategy="group" if module.group_size else "channel",
                               group_size=module.group_size or None)
    if module.act_bits:
        inputs = QuantizationArgs(num_bits=8, type="int", symmetric=True, strategy="token", dynamic=True)
        return QuantizationScheme(targets=["Linear"], weights=weights, input_activations=inputs), "int-quantized"
    return QuantizationScheme(targets=["Linear"], weights=weights), "pack-quantized"


def compressor(fmt: str):
    from compressed_tensors.compressors.naive_quantized.base import NaiveQuantizationCompressor
    from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor

    return NaiveQuantizationCompressor if fmt == "int-quantized" else PackedQuantizationCompressor


def quantized_modules(model: nn.Module) -> dict[str, QuantLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, QuantLinear)}


@torch.no_grad()
def save(model: nn.Module, tokenizer, folder: Path) -> None:
    """Write a model with QuantLinear layers as a compressed-tensors folder (safetensors + config + tokenizer)."""
    from compressed_tensors.compressors.model_compressors.model_compressor import ModelCompressor
    from compressed_tensors.quantization import QuantizationConfig

    quantized = quantized_modules(model)
    if not quantized:
        raise SlmError("the model has no quantized layers to save as compressed-tensors (run rtn, gptq, awq or smoothquant first)")
    schemes = {(scheme_of(m)[0].model_dump_json(), scheme_of(m)[1]) for m in quantized.values()}
    if len(schemes) > 1:
        raise SlmError("compressed-tensors export needs one quantization scheme for all layers; this model mixes several")
    scheme, fmt = scheme_of(next(iter(quantized.values())))
    state = {name: t.contiguous() for name, t in unique_tensors(model.state_dict()).items()
             if name.rpartition(".")[0] not in quantized}
    for name, module in quantized.items():
        codes, scale, zero = module.unpack()
        offset = 2 ** (module.bits - 1)
        local = {"weight": dequantize(codes, scale, zero), "weight_scale": scale,
                 "weight_zero_point": (zero.to(torch.int16) - offset).to(torch.int8)}
        for key, value in compressor(fmt).compress(local, scheme).items():
            state[f"{name}.{key}"] = value.contiguous()
        if module.bias is not None:
            state[f"{name}.bias"] = module.bias
    save_file(state, str(Path(folder) / WEIGHTS), metadata={"format": "pt"})
    write_config(model, None, folder)
    ignore = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    config = QuantizationConfig(config_groups={"group_0": scheme}, format=fmt, quantization_status="compressed", ignore=ignore)
    ModelCompressor(quantization_config=config).update_config(str(folder))
    tokenizer.save_pretrained(folder)


def pop_quant_linear(state: dict, prefix: str, bits: int, act_bits: int | None, group_size: int) -> QuantLinear:
    """Take one Linear's compressed tensors out of `state` and rebuild its packed QuantLinear."""
    from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32

    offset = 2 ** (bits - 1)
    scale = state.pop(f"{prefix}.weight_scale").float()
    zp = state.pop(f"{prefix}.weight_zero_point", None)
    if f"{prefix}.weight_packed" in state:
        shape = state.pop(f"{prefix}.weight_shape")
        codes = unpack_from_int32(state.pop(f"{prefix}.weight_packed"), bits, shape)
        if zp is not None:
            zp = unpack_from_int32(zp, bits, (int(shape[0]), scale.shape[1]), packed_dim=0)
    else:
        codes = state.pop(f"{prefix}.weight")
    zero = torch.full_like(scale, offset) if zp is None else zp.float().reshape(scale.shape) + offset
    u = (codes.to(torch.int16) + offset).to(torch.uint8)
    bias = state.pop(f"{prefix}.bias", None)
    return QuantLinear.from_codes(u, scale, zero.to(torch.uint8), bits, bias, act_bits, group_size)


@torch.no_grad()
def load(path: Path, dtype: str = "float32"):
    """Load a quantized compressed-tensors folder as a model with packed QuantLinear layers."""
    from compressed_tensors.quantization import QuantizationScheme

    groups = list(config_json(path)["quantization_config"]["config_groups"].values())
    if len(groups) != 1:
        raise SlmError(f"{path}: only one quantization scheme per model is supported (found {len(groups)})")
    scheme = QuantizationScheme(**groups[0])
    bits, act_bits = scheme.weights.num_bits, 8 if scheme.input_activations is not None else None
    model = empty_model(auto_config(path), dtype)
    state = read_safetensors(path)
    for prefix in sorted(k[: -len(".weight_scale")] for k in state if k.endswith(".weight_scale")):
        set_module(model, prefix, pop_quant_linear(state, prefix, bits, act_bits, scheme.weights.group_size or 0))
    return load_state(model, state, path, dtype), auto_tokenizer(path)


def packed_tensors(name: str, shape: tuple[int, int], bits: int, group_size: int) -> dict[str, tuple[str, tuple]]:
    """What `save` stores for one symmetric weight-only Linear: its shape, fp32 scales per row and
    group, and the codes packed 32 // bits to an int32 word along each row (compressed-tensors)."""
    rows, cols = shape
    groups = cols // group_size if group_size else 1
    return {f"{name}_shape": ("I64", (2,)), f"{name}_scale": ("F32", (rows, groups)),
            f"{name}_packed": ("I32", (rows, -(-cols // (32 // bits))))}


def file_bytes(shapes: dict[str, tuple[int, ...]], linears: frozenset[str], bits: int, group_size: int) -> int:
    """The exact size of model.safetensors that `save` writes for a float32 model whose decoder
    Linears (`linears`, weight names) are quantized symmetric, weight-only, to `bits` in groups."""
    from slmkit.layouts.common import safetensors_bytes

    tensors: dict[str, tuple[str, tuple]] = {}
    for name, shape in shapes.items():
        tensors.update(packed_tensors(name, shape, bits, group_size) if name in linears else {name: ("F32", shape)})
    return safetensors_bytes(tensors, {"format": "pt"})
