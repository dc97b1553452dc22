"""Architecture presets and their shape options, torch-free: a preset plus options resolve to a `Shape`.

Every preset is a plain Llama config (RMSNorm, rotary positions, gated MLP), so every slmkit path
(steps, eval, export, serve) runs on it. `activation: gelu` keeps the gated form (GeGLU, Llama's
`hidden_act="gelu"`); there is no ungated MLP here. With a parameter budget the preset's aspect
ratio (width per layer) is kept: for each depth the width is aspect x depth rounded to a multiple of
head_dim x (heads per KV head), so heads and KV heads stay whole; the depth whose exact count is
closest to the budget wins.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from slmkit.errors import SlmError


@dataclass(frozen=True)
class Shape:
    """Everything that fixes a Llama model's tensors."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab_size: int
    context: int
    tied: bool = True
    activation: str = "silu"
    rope_theta: float = 10000.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Preset:
    summary: str
    shape: Shape


PRESETS: dict[str, Preset] = {
    "mobilellm": Preset("deep-and-thin, MobileLLM-125M (arXiv 2402.14905): 30 layers x 576, 9 heads / 3 KV heads, "
                        "SwiGLU 1536, tied embeddings",
                        Shape(30, 576, 9, 3, 64, 1536, 32000, 2048)),
    "wide": Preset("wide-and-shallow at about MobileLLM-125M's non-embedding count: 8 layers x 1152, 18 heads / 6 KV heads, "
                   "SwiGLU 3072, tied embeddings",
                   Shape(8, 1152, 18, 6, 64, 3072, 32000, 2048)),
    "smollm2": Preset("SmolLM2-360M ratios: 32 layers x 960, 15 heads / 5 KV heads, SwiGLU 2560, tied, vocab 49152, "
                      "context 8192, rope theta 1e5",
                      Shape(32, 960, 15, 5, 64, 2560, 49152, 8192, rope_theta=100000.0)),
}
COUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmMbBgG]?)\s*$")
UNITS = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}


def parse_count(text: str, option: str = "--params") -> int:
    """'20M' -> 20_000_000, '1.5B', '300k', '123456'."""
    match = COUNT.match(str(text))
    if not match:
        raise SlmError(f"{option}: cannot read '{text}' as a count (e.g. 20M, 1.5B, 300k)")
    value = int(round(float(match.group(1)) * UNITS[match.group(2).lower()]))
    if value < 1:
        raise SlmError(f"{option}: must be positive (got {text})")
    return value


class ShapeOptions(BaseModel):
    """Shape options on top of a preset; unset ones come from the preset (or from --params)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    params: Optional[str] = Field(None, description="parameter budget (20M, 1.5B): solves layers and width at the preset's aspect ratio")
    budget: Literal["total", "non_embedding"] = Field("total", description="what --params counts: all parameters, or those outside embeddings/LM head")
    layers: Optional[PositiveInt] = Field(None, description="decoder layers")
    hidden: Optional[PositiveInt] = Field(None, description="width (hidden size)")
    heads: Optional[PositiveInt] = Field(None, description="attention heads (default: width / head_dim)")
    kv_heads: Optional[PositiveInt] = Field(None, description="key/value heads, GQA (default: the preset's heads per KV head)")
    head_dim: Optional[PositiveInt] = Field(None, description="width of one head (default 64, or width / heads)")
    intermediate: Optional[PositiveInt] = Field(None, description="MLP inner width (default: width x mlp_ratio, a multiple of 64)")
    mlp_ratio: Optional[float] = Field(None, gt=0, description="MLP inner width / width (preset: about 2.67)")
    tied: Optional[bool] = Field(None, description="share input embeddings and LM head")
    vocab_size: Optional[PositiveInt] = Field(None, description="vocabulary size (init: taken from the tokenizer)")
    context: Optional[PositiveInt] = Field(None, description="context length (max_position_embeddings)")
    activation: Optional[Literal["silu", "gelu"]] = Field(None, description="gated MLP activation: silu = SwiGLU, gelu = GeGLU")

    @model_validator(mode="after")
    def _check_shape(self):
        if self.params is not None:
            parse_count(self.params)
        if self.params is not None and self.layers and self.hidden:
            raise ValueError("give --params, or both --layers and --hidden, not all three")
        return self


def check_arch(name: str) -> Preset:
    if name not in PRESETS:
        raise SlmError(f"unknown architecture '{name}' (presets: {', '.join(PRESETS)})")
    return PRESETS[name]


def count_params(shape: Shape) -> tuple[int, int]:
    """(embedding, non-embedding) parameters exactly as transformers builds a Llama model: the input
    embedding plus an untied LM head count as embedding; tied weights count once."""
    h, d = shape.hidden, shape.head_dim
    attention = h * d * (2 * shape.heads + 2 * shape.kv_heads)
    mlp = 3 * h * shape.intermediate
    non_embedding = shape.layers * (attention + mlp + 2 * h) + h
    embedding = shape.vocab_size * h * (1 if shape.tied else 2)
    return embedding, non_embedding


def round_to(value: float, unit: int) -> int:
    return max(unit, int(round(value / unit)) * unit)


def heads_for(options: ShapeOptions, base: Shape, hidden: int) -> tuple[int, int, int]:
    """(heads, kv_heads, head_dim) for a width, or a one-line error naming the flag that does not divide."""
    head_dim = options.head_dim or (hidden // options.heads if options.heads else base.head_dim)
    heads = options.heads or hidden // head_dim
    if options.heads and hidden % options.heads:
        raise SlmError(f"--heads: {options.heads} heads do not divide the width {hidden}")
    if not options.heads and hidden % head_dim:
        raise SlmError(f"--hidden: width {hidden} is not a multiple of the head width {head_dim} (set --heads or --head-dim)")
    group = base.heads // base.kv_heads
    kv = options.kv_heads or (heads // group if heads % group == 0 else heads)
    if heads % kv:
        raise SlmError(f"--kv-heads: {kv} KV heads do not divide {heads} attention heads")
    return heads, kv, head_dim


def with_width(options: ShapeOptions, base: Shape, layers: int, hidden: int) -> Shape:
    heads, kv, head_dim = heads_for(options, base, hidden)
    ratio = options.mlp_ratio or base.intermediate / base.hidden
    intermediate = options.intermediate or round_to(hidden * ratio, 64)
    return replace(base, layers=layers, hidden=hidden, heads=heads, kv_heads=kv, head_dim=head_dim, intermediate=intermediate)


def preset_base(arch: str, options: ShapeOptions, vocab_size: int | None = None) -> Shape:
    """The preset's shape with the options that do not change its depth or width (and the tokenizer's vocabulary)."""
    base = check_arch(arch).shape
    fixed = {k: getattr(options, k) for k in ("vocab_size", "context", "tied", "activation") if getattr(options, k) is not None}
    return replace(base, **{**fixed, **({"vocab_size": vocab_size} if vocab_size else {})})  # the tokenizer's vocabulary wins


def resolve_shape(arch: str, options: ShapeOptions, vocab_size: int | None = None) -> Shape:
    """The exact shape of a preset with options (and a vocabulary the tokenizer fixes, if given)."""
    base = preset_base(arch, options, vocab_size)
    if options.params is None:
        return with_width(options, base, options.layers or base.layers, options.hidden or base.hidden)
    return solve(options, base, parse_count(options.params))


def candidates(options: ShapeOptions, base: Shape) -> list[tuple[int, int]]:
    """The (layers, width) pairs a budget search tries: the given depth or width with the other free,
    else for every depth the two widths around the preset's aspect ratio, in whole heads and KV groups."""
    head_dim = options.head_dim or base.head_dim
    unit = head_dim * (base.heads // base.kv_heads) if not options.heads else options.heads
    aspect = base.hidden / base.layers
    if options.layers:
        return [(options.layers, k * unit) for k in range(1, 257)]
    if options.hidden:
        return [(layers, options.hidden) for layers in range(1, 257)]
    return [(layers, max(unit, k * unit)) for layers in range(1, 257)
            for k in sorted({int(aspect * layers // unit), int(aspect * layers // unit) + 1})]


def solve(options: ShapeOptions, base: Shape, target: int) -> Shape:
    """The shape closest to `target` parameters along the preset's aspect ratio (or with the given depth/width)."""
    best, best_gap = None, None
    for layers, hidden in candidates(options, base):
        shape = with_width(options, base, layers, hidden)
        embedding, non_embedding = count_params(shape)
        gap = abs(non_embedding + (embedding if options.budget == "total" else 0) - target)
        if best_gap is None or gap < best_gap:
            best, best_gap = shape, gap
    embedding, _ = count_params(best)
    if options.budget == "total" and embedding >= target:
        raise SlmError(f"--params: {options.params} cannot hold even the embeddings ({embedding:,} parameters at "
                       f"width {best.hidden} and vocabulary {best.vocab_size}); raise it, or use --budget non_embedding")
    if best_gap > 0.5 * target:
        raise SlmError(f"--params: nothing near {options.params} fits this preset (closest: {best.layers} layers x "
                       f"{best.hidden}, off by {best_gap:,})")
    return best


def llama_config_kwargs(shape: Shape) -> dict:
    """The LlamaConfig arguments of a shape (special token ids are set from the tokenizer)."""
    return dict(vocab_size=shape.vocab_size, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                num_hidden_layers=shape.layers, num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
                head_dim=shape.head_dim, hidden_act=shape.activation, max_position_embeddings=shape.context,
                tie_word_embeddings=shape.tied, rope_theta=shape.rope_theta, rms_norm_eps=1e-5, initializer_range=0.02)
