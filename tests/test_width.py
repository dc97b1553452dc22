"""Width pruning: narrower models load in plain transformers, dead channels/heads go first, GQA stays consistent."""

import pytest
import torch
from tiny import FAMILIES, tiny_model
from transformers import AutoModelForCausalLM

from slmkit.anatomy import anatomy_of, get_module, linear_weight
from slmkit.compress.structured.options import WidthPruneOptions
from slmkit.compress.structured.width import kept_heads, kept_width, width_prune
from slmkit.errors import SlmError
from slmkit.steps import StepContext

IDS = torch.randint(1, 300, (2, 24), generator=torch.Generator().manual_seed(0))
LLAMA_LIKE = [f for f in FAMILIES if f not in ("gpt2", "opt")]


@pytest.fixture(scope="module")
def context():
    from tiny import tiny_tokenizer

    return StepContext(tokenizer=tiny_tokenizer(), nsamples=4, seqlen=32, calibration_source="pydoc")


def logits(model):
    with torch.no_grad():
        return model(IDS).logits


def layers(model):
    return anatomy_of(model).layer_list(model)


@pytest.mark.parametrize("family", FAMILIES)
def test_mlp_pruned_model_loads_in_plain_transformers(family, context, tmp_path):
    pruned = width_prune(tiny_model(family), None, WidthPruneOptions(mlp_ratio=0.5), context)
    down = get_module(layers(pruned)[0], anatomy_of(pruned).mlp["down"])
    assert linear_weight(down).shape == (32, 32)
    pruned.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert torch.allclose(logits(reloaded), logits(pruned), atol=1e-5)


@pytest.mark.parametrize("family", LLAMA_LIKE)
def test_heads_and_hidden_pruned_model_loads_in_plain_transformers(family, context, tmp_path):
    model = tiny_model(family)
    options = WidthPruneOptions(mlp_ratio=0.25, heads_ratio=0.5, heads_mode="groups" if family != "gemma" else "queries",
                                hidden_ratio=0.25)
    pruned = width_prune(model, None, options, context)
    config = pruned.config
    assert config.hidden_size == 24 and config.num_attention_heads == 2 and config.intermediate_size == 48
    pruned.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert torch.allclose(logits(reloaded), logits(pruned), atol=1e-5)
    assert reloaded.generate(IDS[:1, :5], max_new_tokens=3, do_sample=False).shape == (1, 8)
    if model.config.tie_word_embeddings:
        assert reloaded.lm_head.weight.data_ptr() == reloaded.get_input_embeddings().weight.data_ptr()


def kill_mlp_channels(model, channels):
    """Zero the input rows of some MLP channels in every layer: their activations are exactly zero."""
    anatomy = anatomy_of(model)
    for layer in layers(model):
        for role, path in anatomy.mlp.items():
            if role != "down":
                module = get_module(layer, path)
                linear_weight(module)[channels] = 0
                if getattr(module, "bias", None) is not None:
                    module.bias.data[channels] = 0


@pytest.mark.parametrize("family", ["llama", "gpt2", "opt", "gemma3_text"])
def test_removing_dead_mlp_channels_leaves_logits_unchanged(family, context):
    model = tiny_model(family)
    kill_mlp_channels(model, list(range(0, 64, 2)))
    before = logits(model)
    pruned = width_prune(model, None, WidthPruneOptions(mlp_ratio=0.5), context)
    assert torch.allclose(logits(pruned), before, atol=1e-5)


@pytest.mark.parametrize("mode, heads, kv", [("queries", 2, 2), ("groups", 2, 1)])
def test_removing_silent_heads_keeps_gqa_consistent_and_logits_unchanged(mode, heads, kv, context):
    model = tiny_model("llama")  # 4 query heads in 2 KV groups of 2, head_dim 8
    anatomy = anatomy_of(model)
    silent = [1, 3] if mode == "queries" else [2, 3]  # one per group / the whole second group
    for layer in layers(model):
        o = linear_weight(get_module(layer, anatomy.attn["o"]))
        for h in silent:
            o[:, h * 8:(h + 1) * 8] = 0
    before = logits(model)
    pruned = width_prune(model, None, WidthPruneOptions(heads_ratio=0.5, heads_mode=mode), context)
    assert (pruned.config.num_attention_heads, pruned.config.num_key_value_heads, pruned.config.head_dim) == (heads, kv, 8)
    attn = layers(pruned)[0].self_attn
    assert attn.q_proj.weight.shape == (heads * 8, 32) and attn.k_proj.weight.shape == (kv * 8, 32)
    assert attn.v_proj.weight.shape == (kv * 8, 32) and attn.o_proj.weight.shape == (32, heads * 8)
    assert torch.allclose(logits(pruned), before, atol=1e-5)


def test_kept_heads_stay_grouped():
    scores = torch.tensor([5.0, 1, 2, 9, 0, 3, 4, 8, 7])  # 9 heads, 3 KV groups of 3 (SmolLM2 shape)
    assert kept_heads(scores, 9, 3, 1 / 3, "queries") == ([0, 2, 3, 5, 7, 8], [0, 1, 2])
    assert kept_heads(scores, 9, 3, 1 / 3, "groups") == ([3, 4, 5, 6, 7, 8], [1, 2])  # group sums 8, 12, 19


def test_kept_width_rounds_to_multiples():
    assert kept_width(1536, 0.5, 8) == 768 and kept_width(576, 0.3, 32) == 384 and kept_width(64, 0.0, 8) == 64


@pytest.mark.parametrize("family, options", [("gpt2", dict(heads_ratio=0.5)), ("opt", dict(hidden_ratio=0.25))])
def test_unsupported_combinations_are_one_line_errors(family, options, context):
    with pytest.raises(SlmError, match="not supported"):
        width_prune(tiny_model(family), None, WidthPruneOptions(**options), context)


def test_options_need_something_to_prune():
    with pytest.raises(ValueError, match="at least one"):
        WidthPruneOptions()
