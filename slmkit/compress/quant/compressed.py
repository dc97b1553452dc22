"""Quantized models in the compressed-tensors format (what vLLM and transformers load).

Codes go through the compressed-tensors library's own compressors: "pack-quantized" (sub-byte
codes packed into int32 words) for weight-only models, "int-quantized" (int8 weights, dynamic
per-token int8 inputs) for W8A8. compressed-tensors codes are signed: q = u − 2^(bits−1),
zero points likewise. Loading such a folder in slmkit gives back packed QuantLinear modules.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from slmkit.compress.quant.grid import dequantize
from slmkit.compress.quant.linear import QuantLinear
from slmkit.errors import SlmError
from slmkit.models.anatomy import set_module


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


@torch.no_grad()
def save_quantized_compressed(model: nn.Module, tokenizer, folder: Path) -> None:
    """Write a model with QuantLinear layers as a compressed-tensors folder (safetensors + config + tokenizer)."""
    from compressed_tensors.compressors.model_compressors.model_compressor import ModelCompressor
    from compressed_tensors.quantization import QuantizationConfig

    quantized = {name: m for name, m in model.named_modules() if isinstance(m, QuantLinear)}
    if not quantized:
        raise SlmError("the model has no quantized layers to save as compressed-tensors (run rtn, gptq, awq or smoothquant first)")
    schemes = {(scheme_of(m)[0].model_dump_json(), scheme_of(m)[1]) for m in quantized.values()}
    if len(schemes) > 1:
        raise SlmError("compressed-tensors export needs one quantization scheme for all layers; this model mixes several")
    scheme, fmt = scheme_of(next(iter(quantized.values())))
    state, seen = {}, set()
    for name, tensor in model.state_dict(keep_vars=False).items():
        owner = name.rpartition(".")[0]
        if owner in quantized or tensor.untyped_storage().data_ptr() in seen:
            continue  # quantized layers are written below; tied weights once
        seen.add(tensor.untyped_storage().data_ptr())
        state[name] = tensor.contiguous()
    for name, module in quantized.items():
        codes, scale, zero = module.unpack()
        offset = 2 ** (module.bits - 1)
        local = {"weight": dequantize(codes, scale, zero), "weight_scale": scale,
                 "weight_zero_point": (zero.to(torch.int16) - offset).to(torch.int8)}
        for key, value in compressor(fmt).compress(local, scheme).items():
            state[f"{name}.{key}"] = value.contiguous()
        if module.bias is not None:
            state[f"{name}.bias"] = module.bias
    save_file(state, str(Path(folder) / "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(folder)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(folder)
    ignore = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    config = QuantizationConfig(config_groups={"group_0": scheme}, format=fmt, quantization_status="compressed", ignore=ignore)
    ModelCompressor(quantization_config=config).update_config(str(folder))
    tokenizer.save_pretrained(folder)


def quantization_config(folder: str | Path) -> dict:
    path = Path(folder) / "config.json"
    return json.loads(path.read_text()).get("quantization_config", {}) if path.is_file() else {}


def is_quantized_compressed(folder: str | Path) -> bool:
    config = quantization_config(folder)
    return config.get("quant_method") == "compressed-tensors" and bool(config.get("config_groups"))


@torch.no_grad()
def load_quantized_compressed(folder: str, dtype: str = "float32"):
    """Load a quantized compressed-tensors folder as a model with packed QuantLinear layers."""
    from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32
    from compressed_tensors.quantization import QuantizationScheme
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from slmkit.models.loading import torch_dtype

    qconfig = quantization_config(folder)
    groups = list(qconfig["config_groups"].values())
    if len(groups) != 1:
        raise SlmError(f"{folder}: only one quantization scheme per model is supported (found {len(groups)})")
    scheme = QuantizationScheme(**groups[0])
    bits, act_bits = scheme.weights.num_bits, 8 if scheme.input_activations is not None else None
    config = AutoConfig.from_pretrained(folder)
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype(dtype))
    state = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        state.update(load_file(str(file)))
    offset = 2 ** (bits - 1)
    for prefix in sorted(k[: -len(".weight_scale")] for k in state if k.endswith(".weight_scale")):
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
        set_module(model, prefix, QuantLinear.from_codes(u, scale, zero.to(torch.uint8), bits, bias, act_bits, scheme.weights.group_size or 0))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise SlmError(f"{folder}: unexpected tensors in the weights, e.g. {unexpected[0]}")
    model.tie_weights()
    model.eval()
    return model, AutoTokenizer.from_pretrained(folder)
