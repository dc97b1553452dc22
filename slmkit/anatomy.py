"""Where each model family keeps its decoder layers, projections, norms, embeddings and head.

Algorithms ask the anatomy for parts by role and never hard-code attribute paths. GPT-2
stores its projections as `Conv1D` with weights laid out [in, out]; `linear_weight` hides
that by returning an [out, in] view of any projection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from slmkit.errors import SlmError


@dataclass(frozen=True)
class Anatomy:
    """Attribute paths of one family. Paths inside a layer are relative to that layer."""

    family: str
    layers: str
    embed: str
    final_norm: str
    lm_head: str
    attn: dict[str, str]  # role -> path: q, k, v, o (or qkv for a fused projection)
    mlp: dict[str, str]  # role -> path: gate, up, down (or up, down for a plain MLP)
    norms: dict[str, str]  # role -> path: input, post_attention (+ pre/post_feedforward for Gemma)
    extra_layer_norms: tuple[str, ...] = field(default=())  # e.g. Qwen3/Gemma3 q_norm/k_norm

    def layer_list(self, model: nn.Module) -> nn.ModuleList:
        return get_module(model, self.layers)

    def linears(self, layer: nn.Module) -> dict[str, nn.Module]:
        """The projections of one decoder layer in execution order: attention first, then MLP."""
        out = {}
        for path in list(self.attn.values()) + list(self.mlp.values()):
            out[path] = get_module(layer, path)
        return out


LLAMA_LIKE = dict(
    layers="model.layers",
    embed="model.embed_tokens",
    final_norm="model.norm",
    lm_head="lm_head",
    attn={"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj"},
    mlp={"gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"},
    norms={"input": "input_layernorm", "post_attention": "post_attention_layernorm"},
)
GEMMA2_LIKE = dict(
    LLAMA_LIKE,
    norms={
        "input": "input_layernorm",
        "post_attention": "post_attention_layernorm",
        "pre_feedforward": "pre_feedforward_layernorm",
        "post_feedforward": "post_feedforward_layernorm",
    },
)

FAMILIES: dict[str, Anatomy] = {
    "llama": Anatomy("llama", **LLAMA_LIKE),
    "mistral": Anatomy("mistral", **LLAMA_LIKE),
    "qwen2": Anatomy("qwen2", **LLAMA_LIKE),
    "qwen3": Anatomy("qwen3", **LLAMA_LIKE, extra_layer_norms=("self_attn.q_norm", "self_attn.k_norm")),
    "gemma": Anatomy("gemma", **LLAMA_LIKE),
    "gemma2": Anatomy("gemma2", **GEMMA2_LIKE),
    "gemma3_text": Anatomy("gemma3_text", **GEMMA2_LIKE, extra_layer_norms=("self_attn.q_norm", "self_attn.k_norm")),
    "gpt2": Anatomy(
        "gpt2",
        layers="transformer.h",
        embed="transformer.wte",
        final_norm="transformer.ln_f",
        lm_head="lm_head",
        attn={"qkv": "attn.c_attn", "o": "attn.c_proj"},
        mlp={"up": "mlp.c_fc", "down": "mlp.c_proj"},
        norms={"input": "ln_1", "post_attention": "ln_2"},
    ),
    "opt": Anatomy(
        "opt",
        layers="model.decoder.layers",
        embed="model.decoder.embed_tokens",
        final_norm="model.decoder.final_layer_norm",
        lm_head="lm_head",
        attn={"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.out_proj"},
        mlp={"up": "fc1", "down": "fc2"},
        norms={"input": "self_attn_layer_norm", "post_attention": "final_layer_norm"},
    ),
}
FAMILIES["gemma3"] = FAMILIES["gemma3_text"]  # Gemma3ForCausalLM on a text-only config
FAMILIES["smollm3"] = FAMILIES["llama"]


def anatomy_of(model_or_config) -> Anatomy:
    """The anatomy of a model (or config); a one-line error names unsupported families."""
    config = getattr(model_or_config, "config", model_or_config)
    family = getattr(config, "model_type", None)
    if family not in FAMILIES:
        supported = ", ".join(sorted(FAMILIES))
        raise SlmError(f"unsupported architecture '{family}' (supported: {supported})")
    return FAMILIES[family]


def get_module(root: nn.Module, path: str) -> nn.Module:
    module = root
    for part in path.split("."):
        module = getattr(module, part)
    return module


def set_module(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(get_module(root, parent) if parent else root, name, new)


def is_conv1d(module: nn.Module) -> bool:
    return type(module).__name__ == "Conv1D"


def linear_weight(module: nn.Module) -> torch.Tensor:
    """The weight data of a projection as an [out_features, in_features] view (writes go through, no autograd)."""
    return module.weight.data.t() if is_conv1d(module) else module.weight.data


def decoder_linears(model: nn.Module) -> dict[str, nn.Module]:
    """Every projection inside the decoder layers, by full name (embeddings and LM head excluded)."""
    anatomy = anatomy_of(model)
    out = {}
    for i, layer in enumerate(anatomy.layer_list(model)):
        for path, module in anatomy.linears(layer).items():
            out[f"{anatomy.layers}.{i}.{path}"] = module
    return out
