"""Tiny random models and a tiny tokenizer for fast unit tests (built in-process, nothing downloaded)."""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from slmkit.data.shared import shared_data_dir

VOCAB = 320
SHARED_DATA = shared_data_dir()


@functools.lru_cache(maxsize=1)
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer of VOCAB tokens trained on CPython's help topics."""
    from slmkit.data.corpus import pydoc_documents

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(pydoc_documents()[:60], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")
    return fast


COMMON = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              max_position_embeddings=256, eos_token_id=0, pad_token_id=0)
CONFIGS = {
    "llama": lambda **kw: transformers.LlamaConfig(num_attention_heads=4, num_key_value_heads=2, **kw),
    "mistral": lambda **kw: transformers.MistralConfig(num_attention_heads=4, num_key_value_heads=2, sliding_window=None, **kw),
    "qwen2": lambda **kw: transformers.Qwen2Config(num_attention_heads=4, num_key_value_heads=2, **kw),
    "qwen3": lambda **kw: transformers.Qwen3Config(num_attention_heads=4, num_key_value_heads=2, head_dim=8, **kw),
    "gemma": lambda **kw: transformers.GemmaConfig(num_attention_heads=4, num_key_value_heads=1, head_dim=8, **kw),
    "gemma3_text": lambda **kw: transformers.Gemma3TextConfig(num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                                                              sliding_window=16, **kw),
    "gpt2": lambda **kw: transformers.GPT2Config(
        n_embd=kw.pop("hidden_size"), n_layer=kw.pop("num_hidden_layers"), n_positions=kw.pop("max_position_embeddings"),
        n_inner=kw.pop("intermediate_size"), n_head=4, bos_token_id=0, **kw),
    "opt": lambda **kw: transformers.OPTConfig(ffn_dim=kw.pop("intermediate_size"), num_attention_heads=4,
                                               word_embed_proj_dim=kw["hidden_size"], bos_token_id=0, **kw),
}
FAMILIES = list(CONFIGS)


def tiny_config(family: str = "llama", **overrides):
    return CONFIGS[family](**{**COMMON, **overrides})


def tiny_model(family: str = "llama", seed: int = 0, **overrides):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(family, **overrides))
    return model.eval()


def save_tiny(path: Path, family: str = "llama", seed: int = 0, **overrides) -> Path:
    model = tiny_model(family, seed, **overrides)
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path
