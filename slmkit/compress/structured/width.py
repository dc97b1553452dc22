"""Width pruning: remove MLP channels, attention heads and hidden channels by activation-based importance.

One calibration pass of the layer-wise engine collects ‖X_j‖² of every projection's inputs on the
dense model (Minitron's activation importance). Scores, per layer:
  MLP channel j   ‖X_j‖² ‖W_down[:, j]‖²          energy the channel sends into the residual stream
  query head h    Σ_{j in h} ‖X_j‖² ‖W_o[:, j]‖²   the same for the head's slice of o_proj
  hidden channel  Σ over layers of ‖X_c‖² at the attention and MLP inputs (the normed residual stream)
Every layer keeps the same number of channels and heads (the best ones of that layer), so the
result is a plain config (intermediate_size, num_attention_heads, num_key_value_heads, head_dim,
hidden_size) that loads in plain transformers. Under GQA, either whole KV groups are removed or
the same number of query heads from every group, so the group structure stays uniform.
"""

from __future__ import annotations

import copy

import torch

from slmkit.anatomy import anatomy_of, get_module, is_conv1d, linear_weight
from slmkit.compress.layerwise import run_layerwise
from slmkit.compress.structured.options import WidthPruneOptions
from slmkit.compress.structured.rebuild import rebuild
from slmkit.errors import SlmError

FUSED_QKV_FAMILIES = {"gpt2"}  # one fused c_attn projection
HEAD_DIM_FROM_HIDDEN = {"gpt2", "opt"}  # head_dim = hidden / heads: neither heads nor hidden can change alone
INTERMEDIATE_KEYS = ("intermediate_size", "n_inner", "ffn_dim")


def kept_width(total: int, ratio: float, multiple_of: int) -> int:
    """How many of `total` channels remain after removing `ratio`, rounded to a multiple (at least one multiple)."""
    keep = total - round(total * ratio)
    if multiple_of > 1 and keep < total:
        keep = max(multiple_of, keep // multiple_of * multiple_of)
    return min(total, max(1, keep))


def top_indices(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k highest scores, in their original order."""
    return scores.topk(k).indices.sort().values


class WidthImportance:
    """Layer-wise engine client collecting per-layer channel and head scores without changing the model."""

    stats = {"sqnorm"}
    sequential = False

    def __init__(self, anatomy, head_dim: int | None, want_heads: bool) -> None:
        self.anatomy, self.head_dim, self.want_heads = anatomy, head_dim, want_heads
        self.mlp: list[torch.Tensor] = []
        self.heads: list[torch.Tensor] = []
        self.hidden: torch.Tensor | None = None

    def apply(self, index, layer, stats) -> None:
        a = self.anatomy
        down = stats[a.mlp["down"]].sqnorm * linear_weight(get_module(layer, a.mlp["down"])).double().pow(2).sum(0)
        self.mlp.append(down)
        if self.want_heads:
            o = stats[a.attn["o"]].sqnorm * linear_weight(get_module(layer, a.attn["o"])).double().pow(2).sum(0)
            self.heads.append(o.view(-1, self.head_dim).sum(-1))
        attn_in = next(p for role, p in a.attn.items() if role != "o")
        mlp_in = next(p for role, p in a.mlp.items() if role != "down")
        hidden = stats[attn_in].sqnorm + stats[mlp_in].sqnorm
        self.hidden = hidden if self.hidden is None else self.hidden + hidden


def head_dim_of(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def kept_heads(scores: torch.Tensor, num_heads: int, num_kv: int, ratio: float, mode: str) -> tuple[list[int], list[int]]:
    """(query heads, KV heads) kept in one layer; query heads stay grouped so GQA stays uniform."""
    per_group = num_heads // num_kv
    grouped = scores.view(num_kv, per_group)
    if mode == "groups":
        keep_groups = num_kv - round(num_kv * ratio)
        if keep_groups < 1:
            raise SlmError(f"heads_ratio {ratio} would remove all {num_kv} KV groups")
        groups = top_indices(grouped.sum(-1), keep_groups).tolist()
        return [g * per_group + q for g in groups for q in range(per_group)], groups
    keep_per_group = per_group - round(per_group * ratio)
    if keep_per_group < 1:
        raise SlmError(f"heads_ratio {ratio} would remove all {per_group} query heads of each KV group")
    heads = [g * per_group + int(q) for g in range(num_kv) for q in top_indices(grouped[g], keep_per_group)]
    return heads, list(range(num_kv))


def channel_index(heads: list[int], head_dim: int) -> torch.Tensor:
    return torch.tensor([h * head_dim + d for h in heads for d in range(head_dim)])


def slice_projection(state: dict, key: str, module, out_idx=None, in_idx=None) -> None:
    """Keep the given output rows / input columns of the projection stored under `key` (Linear or Conv1D)."""
    out_dim, in_dim = (1, 0) if is_conv1d(module) else (0, 1)
    weight = state[f"{key}.weight"]
    if out_idx is not None:
        weight = weight.index_select(out_dim, out_idx)
        if f"{key}.bias" in state and state[f"{key}.bias"] is not None:
            state[f"{key}.bias"] = state[f"{key}.bias"].index_select(0, out_idx)
    if in_idx is not None:
        weight = weight.index_select(in_dim, in_idx)
    state[f"{key}.weight"] = weight.contiguous()


def slice_vector(state: dict, key: str, idx) -> None:
    for suffix in (".weight", ".bias"):
        if key + suffix in state:
            state[key + suffix] = state[key + suffix].index_select(0, idx).contiguous()


def check_supported(model, options: WidthPruneOptions) -> None:
    family = anatomy_of(model).family
    if options.heads_ratio and family in FUSED_QKV_FAMILIES:
        raise SlmError(f"head pruning is not supported for {family} (fused QKV projection); use mlp_ratio")
    if options.heads_ratio and family in HEAD_DIM_FROM_HIDDEN:
        raise SlmError(f"head pruning is not supported for {family} (head_dim is derived from hidden_size); use mlp_ratio")
    if options.hidden_ratio and family in HEAD_DIM_FROM_HIDDEN:
        raise SlmError(f"hidden pruning is not supported for {family} (head_dim is derived from hidden_size); use mlp_ratio")


@torch.no_grad()
def width_prune(model, tokenizer, options: WidthPruneOptions, context=None):
    """Recipe step: score channels and heads on calibration data, then rebuild the model narrower."""
    check_supported(model, options)
    anatomy = anatomy_of(model)
    head_dim = head_dim_of(model.config) if options.heads_ratio else None
    importance = WidthImportance(anatomy, head_dim, bool(options.heads_ratio))
    run_layerwise(model, importance, context.calibration_ids(), description="scoring channels")
    return prune_width(model, importance, options, context)


@torch.no_grad()
def prune_width(model, importance: WidthImportance, options: WidthPruneOptions, context=None):
    """Slice every layer's weights to the kept channels and heads and rebuild from the narrower config."""
    anatomy, config = anatomy_of(model), model.config
    new_config = copy.deepcopy(config)
    state = dict(model.state_dict())
    layers = anatomy.layer_list(model)
    mlp_total = importance.mlp[0].numel()
    mlp_keep = kept_width(mlp_total, options.mlp_ratio, options.multiple_of)
    heads_kept = None
    for i, layer in enumerate(layers):
        prefix = f"{anatomy.layers}.{i}."
        if mlp_keep < mlp_total:
            idx = top_indices(importance.mlp[i], mlp_keep)
            for role, path in anatomy.mlp.items():
                module = get_module(layer, path)
                if role == "down":
                    slice_projection(state, prefix + path, module, in_idx=idx)
                else:
                    slice_projection(state, prefix + path, module, out_idx=idx)
        if options.heads_ratio:
            hd = importance.head_dim
            heads, kv = kept_heads(importance.heads[i], config.num_attention_heads, config.num_key_value_heads,
                                   options.heads_ratio, options.heads_mode)
            q_idx, kv_idx = channel_index(heads, hd), channel_index(kv, hd)
            for role in ("q", "k", "v"):
                slice_projection(state, prefix + anatomy.attn[role], get_module(layer, anatomy.attn[role]),
                                 out_idx=q_idx if role == "q" else kv_idx)
            slice_projection(state, prefix + anatomy.attn["o"], get_module(layer, anatomy.attn["o"]), in_idx=q_idx)
            heads_kept = (len(heads), len(kv))
    if mlp_keep < mlp_total:
        key = next(k for k in INTERMEDIATE_KEYS if getattr(config, k, None) is not None)
        setattr(new_config, key, mlp_keep)
    if heads_kept:
        new_config.head_dim = importance.head_dim
        new_config.num_attention_heads, new_config.num_key_value_heads = heads_kept
    if options.hidden_ratio:
        prune_hidden(model, state, importance.hidden, kept_width(config.hidden_size, options.hidden_ratio, options.multiple_of))
        new_config.head_dim = head_dim_of(config)  # stays explicit: heads keep their size when hidden shrinks
        new_config.hidden_size = kept_width(config.hidden_size, options.hidden_ratio, options.multiple_of)
    if context is not None:
        context.log.append(f"width_prune: intermediate {mlp_total}->{mlp_keep}, heads {heads_kept}, "
                           f"hidden {config.hidden_size}->{new_config.hidden_size}")
    return rebuild(model, new_config, state)


def prune_hidden(model, state: dict, scores: torch.Tensor, keep: int) -> None:
    """Keep the `keep` most active hidden channels everywhere: embeddings, norms, every projection, LM head."""
    anatomy = anatomy_of(model)
    if keep >= scores.numel():
        return
    idx = top_indices(scores, keep)
    state[f"{anatomy.embed}.weight"] = state[f"{anatomy.embed}.weight"][:, idx].contiguous()
    if f"{anatomy.lm_head}.weight" in state:
        state[f"{anatomy.lm_head}.weight"] = state[f"{anatomy.lm_head}.weight"][:, idx].contiguous()
    slice_vector(state, anatomy.final_norm, idx)
    for i, layer in enumerate(anatomy.layer_list(model)):
        prefix = f"{anatomy.layers}.{i}."
        for norm in anatomy.norms.values():
            slice_vector(state, prefix + norm, idx)
        for role, path in {**anatomy.attn, **anatomy.mlp}.items():
            module = get_module(layer, path)
            if role in ("o", "down"):
                slice_projection(state, prefix + path, module, out_idx=idx)
            else:
                slice_projection(state, prefix + path, module, in_idx=idx)
