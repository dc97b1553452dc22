"""The budget calculator of `slm size`: parameters, bytes on disk and in memory per format, KV cache,
FLOPs and predicted decode speed of a model, from its list of tensors alone (nothing is downloaded
or allocated). File sizes are exact: each layout in slmkit/layouts/ computes its own.

Decode is memory-bound: every token reads all weights (an untied input embedding only one row)
plus the KV cache so far, so predicted tokens/s = the machine's measured read bandwidth / those bytes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

from slmkit.arch.presets import Shape, ShapeOptions, count_params, resolve_shape
from slmkit.arch.tensors import ModelTensors, model_tensors, preset_tensors
from slmkit.errors import SlmError
from slmkit.formats import GGUF_TYPES

DEFAULT_TOKENIZER = "smollm2-135m"  # what `slm init` reuses when given no tokenizer
INT4_GROUP = 64  # slmkit's default RTN group below 8 bits

# Every format slmkit writes a float model in: (what it is, weight dtype once loaded, KV-cache dtype).
FORMATS: dict[str, tuple[str, str]] = {
    "fp32": ("HF safetensors, float32", "float32"),
    "fp16": ("HF safetensors, float16", "float16"),
    "bf16": ("HF safetensors, bfloat16", "bfloat16"),
    "int8": ("compressed-tensors int8 per channel (slm export --bits 8), loaded as packed int8", "float32"),
    "int4": (f"compressed-tensors int4 in groups of {INT4_GROUP}, loaded as packed int4", "float32"),
    **{f"gguf-{t}": (f"GGUF {t} (llama.cpp; tensors typed as llama-quantize types them)", "float16") for t in GGUF_TYPES},
}
ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class Target:
    """What is sized: the model's tensors, its transformers config (GGUF names and metadata) and a
    way to get its tokenizer (only a GGUF file's header needs it)."""

    name: str
    tensors: ModelTensors
    config: Any
    tokenizer: Callable[[], Any]
    shape: Shape | None = None


def preset_target(arch: str, options: ShapeOptions, tokenizer: str | None = None) -> Target:
    """A preset with shape options; the vocabulary is the tokenizer's (as `slm init` makes it) unless
    --vocab-size fixes it."""
    from slmkit.arch.build import llama_config, reuse_tokenizer

    spec = tokenizer or DEFAULT_TOKENIZER
    resolve_shape(arch, options)  # shape errors before the tokenizer loads
    tok = reuse_tokenizer(spec)
    shape = resolve_shape(arch, options, vocab_size=options.vocab_size or len(tok))
    return Target(arch, preset_tensors(shape), llama_config(shape, tok), lambda: tok, shape)


def spec_target(spec: str) -> Target:
    """Any model slmkit loads (embedded name, folder, .gguf, cached hub id), from its config only."""
    from slmkit.arch.build import reuse_tokenizer
    from slmkit.arch.tensors import config_of

    return Target(spec, model_tensors(spec), config_of(spec), lambda: reuse_tokenizer(spec))


def gguf_type(fmt: str) -> str | None:
    return fmt[len("gguf-"):] if fmt.startswith("gguf-") else None


def int4_linear_bytes(rows: int, cols: int, group: int) -> int:
    """A packed int4 QuantLinear (slmkit/modules/quant_linear.py): ATen's int4 layout with bf16 scale
    and offset per group and row plus uint8 zeros, or uint8 codes with bf16 scales where the kernel does not fit."""
    from slmkit.modules.quant_linear import KERNEL_GROUP_SIZES

    groups = cols // group
    if group in KERNEL_GROUP_SIZES and rows % 16 == 0:
        return rows * cols // 2 + groups * rows * 2 * 2 + rows * groups
    return rows * cols + rows * groups * 2 + rows * groups


def tensor_bytes(target: Target, fmt: str) -> dict[str, int]:
    """Each weight's bytes once loaded in a format (for GGUF: its data in the file, what llama.cpp maps)."""
    t = target.tensors
    if fmt in ("fp32", "fp16", "bf16"):
        return {n: t.numel(n) * ITEMSIZE[FORMATS[fmt][1]] for n in t.shapes}
    if fmt in ("int8", "int4"):
        for n in t.linears:
            if fmt == "int4" and t.shapes[n][1] % INT4_GROUP:
                raise SlmError(f"int4: {n} has rows of {t.shapes[n][1]}, not a multiple of the group {INT4_GROUP}")
        linear = (lambda r, c: r * c + 2 * r) if fmt == "int8" else (lambda r, c: int4_linear_bytes(r, c, INT4_GROUP))
        return {n: linear(*t.shapes[n]) if n in t.linears else 4 * t.numel(n) for n in t.shapes}
    return gguf_tensor_bytes(target, gguf_type(fmt))


def gguf_tensor_bytes(target: Target, qtype: str) -> dict[str, int]:
    import gguf

    from slmkit.layouts.gguf import check_config, planned_tensors

    check_config(target.config, qtype)
    planned = planned_tensors(target.config, target.tensors.shapes, qtype)
    out = {}
    for name, shape, kind in planned:
        block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[kind]]
        out[name] = math.prod(shape) // block * size
    return out


def disk_bytes(target: Target, fmt: str) -> int:
    """The exact size of the weights file slmkit writes (model.safetensors, or the .gguf file)."""
    t = target.tensors
    if fmt in ("fp32", "fp16", "bf16"):
        from slmkit.layouts import hf

        return hf.file_bytes(t.shapes, FORMATS[fmt][1])
    if fmt in ("int8", "int4"):
        from slmkit.layouts import pack_quantized

        tensor_bytes(target, fmt)  # the same one-line error where int4 does not fit
        return pack_quantized.file_bytes(t.shapes, t.linears, 8 if fmt == "int8" else 4, 0 if fmt == "int8" else INT4_GROUP)
    from slmkit.layouts import gguf

    return gguf.file_bytes(target.config, target.tokenizer(), t.shapes, gguf_type(fmt))


def kv_bytes_per_token(tensors: ModelTensors, dtype: str) -> int:
    """Keys and values of every layer for one token."""
    return 2 * tensors.layers * tensors.kv_heads * tensors.head_dim * ITEMSIZE[dtype]


def flops_per_token(tensors: ModelTensors, context: int) -> int:
    """Forward FLOPs of one token attending `context` tokens: 2 per weight of the decoder Linears and
    the LM head, plus QK^T and attention x V (2 x 2 x head_dim per head, layer and attended token)."""
    linear = sum(tensors.numel(n) for n in tensors.linears)
    lm_head = max(tensors.numel(n) for n in tensors.embeddings)
    return 2 * linear + 2 * lm_head + 4 * tensors.layers * tensors.heads * tensors.head_dim * context


def input_embedding(target: Target, fmt: str) -> str | None:
    """The name, in `tensor_bytes(target, fmt)`, of an untied input embedding (decode reads one row of it)."""
    if target.tensors.tied:
        return None
    names = sorted(n for n in target.tensors.embeddings if "lm_head" not in n and "embed_out" not in n)
    if not names:
        return None
    return "token_embd.weight" if gguf_type(fmt) else names[0]


def read_bytes_per_token(target: Target, fmt: str, context: int, per_tensor: dict[str, int] | None = None) -> int:
    """Bytes one decode step reads: the weights (one row of an untied input embedding) and the KV cache at `context`."""
    per_tensor = per_tensor if per_tensor is not None else tensor_bytes(target, fmt)
    weights = sum(per_tensor.values())
    embedding = input_embedding(target, fmt)
    if embedding in per_tensor:
        rows = max(target.tensors.shapes[n][0] for n in target.tensors.embeddings)
        weights -= per_tensor[embedding] - per_tensor[embedding] // rows
    return weights + kv_bytes_per_token(target.tensors, FORMATS[fmt][1]) * context


@dataclass(frozen=True)
class FormatSize:
    """One format's row: exact weights-file bytes, weight bytes once loaded, bytes read per decoded
    token at the context, and the predicted decode speed (None without a bandwidth)."""

    format: str
    disk_bytes: int | None
    memory_bytes: int
    kv_bytes: int
    read_bytes: int
    decode_tokens_per_s: float | None
    note: str = ""


@dataclass(frozen=True)
class SizeReport:
    model: str
    embedding_parameters: int
    non_embedding_parameters: int
    context: int
    kv_bytes_per_token: dict[str, int]
    flops_per_token: int
    bandwidth_bytes_per_s: float | None
    formats: list[FormatSize]
    shape: dict | None = None

    @property
    def parameters(self) -> int:
        return self.embedding_parameters + self.non_embedding_parameters

    def to_dict(self) -> dict:
        return {**asdict(self), "parameters": self.parameters}


def format_size(target: Target, fmt: str, context: int, bandwidth: float | None, with_disk: bool = True) -> FormatSize:
    """One format's row; a format that cannot hold the model gives a row with its reason."""
    try:
        per_tensor = tensor_bytes(target, fmt)
        disk = disk_bytes(target, fmt) if with_disk else None
    except SlmError as err:
        return FormatSize(fmt, None, 0, 0, 0, None, str(err))
    kv = kv_bytes_per_token(target.tensors, FORMATS[fmt][1]) * context
    read = read_bytes_per_token(target, fmt, context, per_tensor)
    return FormatSize(fmt, disk, sum(per_tensor.values()), kv, read, bandwidth / read if bandwidth else None)


def size_report(target: Target, formats: list[str], context: int | None = None, bandwidth: float | None = None,
                with_disk: bool = True) -> SizeReport:
    """Everything `slm size` prints for a model, at `context` tokens (default: the model's context)."""
    t = target.tensors
    context = context or t.context
    embedding, non_embedding = t.parameters
    kv = {dtype: kv_bytes_per_token(t, dtype) for dtype in ("float32", "float16")}
    rows = [format_size(target, fmt, context, bandwidth, with_disk) for fmt in formats]
    return SizeReport(target.name, embedding, non_embedding, context, kv, flops_per_token(t, context), bandwidth, rows,
                      target.shape.to_dict() if target.shape else None)


def check_formats(text: str | None) -> list[str]:
    """'fp16,gguf-Q4_0' -> the formats, or all of them; a one-line error naming --format."""
    if not text:
        return list(FORMATS)
    names = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in names if f not in FORMATS]
    if unknown or not names:
        raise SlmError(f"--format: unknown format '{unknown[0] if unknown else text}' (valid: {', '.join(FORMATS)})")
    return names


BYTE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "k": 10**3, "m": 10**6, "g": 10**9}


def parse_bytes(text: str, option: str) -> int:
    """'1GB' -> 10**9, '512MiB' -> 2**29, '300M'."""
    number = text.strip().rstrip("bBkKmMgGtTiI")
    unit = text.strip()[len(number):].lower()
    try:
        value = float(number) * BYTE_UNITS[unit]
    except (ValueError, KeyError):
        raise SlmError(f"{option}: cannot read '{text}' as bytes (e.g. 1GB, 512MiB)") from None
    if value <= 0:
        raise SlmError(f"{option}: must be positive (got {text})")
    return int(value)


def parse_fit(text: str) -> tuple[int | None, float | None]:
    """'memory=1GB,decode=30' -> (bytes of weights + KV, decode tokens/s); either may be left out."""
    memory = decode = None
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, _, value = part.partition("=")
        if key == "memory" and value:
            memory = parse_bytes(value, "--fit: memory")
        elif key == "decode" and value:
            try:
                decode = float(value)
            except ValueError:
                raise SlmError(f"--fit: decode: cannot read '{value}' as tokens/s") from None
        else:
            raise SlmError(f"--fit: cannot read '{part}' (give memory=SIZE and/or decode=TOKENS_PER_S, e.g. memory=1GB,decode=30)")
    if memory is None and decode is None:
        raise SlmError("--fit: give memory=SIZE and/or decode=TOKENS_PER_S (e.g. memory=1GB,decode=30)")
    return memory, decode


@dataclass(frozen=True)
class Fit:
    arch: str
    shape: Shape
    size: FormatSize
    parameters: int


def fits(row: FormatSize, memory: int | None, decode: float | None) -> bool:
    if row.note:
        return False
    return (memory is None or row.memory_bytes + row.kv_bytes <= memory) and \
           (decode is None or (row.decode_tokens_per_s or 0) >= decode)


def fit_search(archs: list[str], options: ShapeOptions, vocab_size: int, fmt: str, context: int | None,
               memory: int | None, decode: float | None, bandwidth: float | None) -> Fit:
    """The largest preset shape (along each preset's aspect ratio, or the given depth/width) whose
    weights and KV cache at the context fit `memory` and whose predicted decode meets `decode`:
    the candidates are tried from the most parameters down, and the first that fits wins."""
    for arch, shape in sorted(fit_candidates(archs, options, vocab_size), key=lambda c: -sum(count_params(c[1]))):
        target = Target(arch, preset_tensors(shape), gguf_config(shape), lambda: None, shape)
        row = format_size(target, fmt, context or shape.context, bandwidth, with_disk=False)
        if fits(row, memory, decode):
            return Fit(arch, shape, row, sum(count_params(shape)))
    wanted = " and ".join(w for w in (memory and f"memory {memory:,} bytes", decode and f"decode {decode:g} tokens/s") if w)
    raise SlmError(f"--fit: no shape of {', '.join(archs)} fits {wanted} in {fmt} at this context")


def fit_candidates(archs: list[str], options: ShapeOptions, vocab_size: int) -> list[tuple[str, Shape]]:
    from slmkit.arch.presets import candidates, preset_base, with_width

    found = []
    for arch in archs:
        base = preset_base(arch, options, vocab_size)
        for layers, hidden in candidates(options, base):
            try:
                found.append((arch, with_width(options, base, layers, hidden)))
            except SlmError:  # a width whose heads do not divide
                continue
    return found


def gguf_config(shape: Shape):
    """The few config fields GGUF tensor naming and typing read, without building a transformers config."""
    from types import SimpleNamespace

    return SimpleNamespace(model_type="llama", num_hidden_layers=shape.layers, tie_word_embeddings=shape.tied)
