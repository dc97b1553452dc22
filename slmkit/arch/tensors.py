"""The tensors a model holds, as names and shapes, without allocating any: arithmetic for a preset
shape, the meta device for any other model's config. The budget calculator works on this list."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from slmkit.arch.presets import Shape
from slmkit.errors import SlmError


@dataclass(frozen=True)
class ModelTensors:
    """Each stored tensor once (a tied LM head is not listed), which of them are decoder Linears
    (what slmkit's quantizers change) and which are embeddings, plus what the KV cache needs."""

    shapes: dict[str, tuple[int, ...]]
    linears: frozenset[str]
    embeddings: frozenset[str]
    layers: int
    kv_heads: int
    head_dim: int
    heads: int
    context: int
    tied: bool
    extra: dict = field(default_factory=dict)

    def numel(self, name: str) -> int:
        n = 1
        for d in self.shapes[name]:
            n *= d
        return n

    @property
    def parameters(self) -> tuple[int, int]:
        """(embedding, non-embedding) parameter counts."""
        embedding = sum(self.numel(n) for n in self.embeddings)
        return embedding, sum(self.numel(n) for n in self.shapes) - embedding


def preset_tensors(shape: Shape) -> ModelTensors:
    """The parameters transformers' LlamaForCausalLM creates for a shape, in its own names."""
    h, d = shape.hidden, shape.head_dim
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (shape.vocab_size, h)}
    linears = []
    for i in range(shape.layers):
        p = f"model.layers.{i}."
        projections = {"self_attn.q_proj": (shape.heads * d, h), "self_attn.k_proj": (shape.kv_heads * d, h),
                       "self_attn.v_proj": (shape.kv_heads * d, h), "self_attn.o_proj": (h, shape.heads * d),
                       "mlp.gate_proj": (shape.intermediate, h), "mlp.up_proj": (shape.intermediate, h),
                       "mlp.down_proj": (h, shape.intermediate)}
        for name, dims in projections.items():
            shapes[p + name + ".weight"] = dims
            linears.append(p + name + ".weight")
        shapes[p + "input_layernorm.weight"] = (h,)
        shapes[p + "post_attention_layernorm.weight"] = (h,)
    shapes["model.norm.weight"] = (h,)
    embeddings = ["model.embed_tokens.weight"]
    if not shape.tied:
        shapes["lm_head.weight"] = (shape.vocab_size, h)
        embeddings.append("lm_head.weight")
    return ModelTensors(shapes, frozenset(linears), frozenset(embeddings), shape.layers, shape.kv_heads, d,
                        shape.heads, shape.context, shape.tied)


def config_of(spec: str):
    """A model's transformers config, read from its files only (no weights, no download)."""
    from slmkit.layouts.common import auto_config
    from slmkit.models.embedded import EMBEDDED
    from slmkit.models.source import resolve_model

    source = resolve_model(spec)
    if source.kind == "folder":
        return auto_config(source.ref)
    if source.kind in ("embedded", "gguf"):
        from transformers import AutoConfig

        path = EMBEDDED[source.ref].path() if source.kind == "embedded" else Path(source.ref)
        return AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(source.ref, local_files_only=True)
    except OSError:
        raise SlmError(f"{spec}: its config is not in the local hub cache; slm size never downloads") from None


def model_tensors(spec: str) -> ModelTensors:
    """The tensors of any model slmkit loads, from an empty (meta device) model built from its config."""
    from slmkit.anatomy import anatomy_of, decoder_linears
    from slmkit.layouts.common import empty_model

    config = config_of(spec)
    anatomy = anatomy_of(config)
    model = empty_model(config)
    model.tie_weights()  # on the meta device transformers ties only when asked
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}  # tied weights appear once
    linears = frozenset(f"{name}.weight" for name in decoder_linears(model))
    embeddings = frozenset(n for n in shapes if n.startswith((anatomy.embed + ".", anatomy.lm_head + ".")))
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    kv = getattr(text, "num_key_value_heads", None) or heads
    context = getattr(text, "max_position_embeddings", None) or getattr(text, "n_positions", 2048)
    tied = f"{anatomy.lm_head}.weight" not in shapes
    return ModelTensors(shapes, linears, embeddings, text.num_hidden_layers, kv, head_dim, heads, context, tied)
