"""Random initialisation of a preset and its tokenizer: what `slm init` and the `init` step produce.

The model is a plain `LlamaForCausalLM` initialised by transformers' own `_init_weights` (normal,
std 0.02) under the given seed, so `from_pretrained` loads the folder with no slmkit code.
"""

from __future__ import annotations

from pathlib import Path

from slmkit.arch.presets import Shape, llama_config_kwargs

SPECIAL = "<|endoftext|>"  # the one special token of a trained tokenizer: bos, eos and pad


def special_ids(tokenizer) -> dict:
    eos = tokenizer.eos_token_id
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    return {"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad}


def llama_config(shape: Shape, tokenizer=None):
    from transformers import LlamaConfig

    return LlamaConfig(**llama_config_kwargs(shape), **(special_ids(tokenizer) if tokenizer is not None else {}))


def init_model(shape: Shape, tokenizer=None, seed: int = 0):
    """A randomly initialised Llama model of `shape` (float32, eval mode), the same for the same seed."""
    import torch
    from transformers import AutoModelForCausalLM

    config = llama_config(shape, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return model.eval()


def train_tokenizer(source: str, vocab_size: int, text_field: str = "text"):
    """A byte-level BPE of at most `vocab_size` tokens trained on a data source (deterministic)."""
    from slmkit.data.corpus import load_documents

    return train_bpe(load_documents(source, text_field), vocab_size)


def train_bpe(documents, vocab_size: int):
    """A byte-level BPE of at most `vocab_size` tokens trained on an iterable of texts, with one special
    token serving as bos, eos and pad."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[SPECIAL], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(documents, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=SPECIAL, eos_token=SPECIAL, pad_token=SPECIAL)


def reuse_tokenizer(spec: str):
    """The tokenizer of an existing model (embedded, folder, hub id), loaded the way slmkit loads models."""
    from slmkit.layouts.common import auto_tokenizer
    from slmkit.models.loading import model_folder
    from slmkit.models.source import resolve_model

    return auto_tokenizer(model_folder(resolve_model(spec)))


def write_init(model, tokenizer, out: Path, manifest: dict, overwrite: bool = False) -> Path:
    """The model folder, atomically, with its manifest."""
    from slmkit.models.saving import save

    return save(model, tokenizer, out, "hf", manifest, overwrite=overwrite)


def init_step(model, tokenizer, options, context):
    """Recipe step `init`: the recipe's model is replaced by a fresh preset sharing its tokenizer."""
    from slmkit.arch.presets import count_params, resolve_shape

    shape = resolve_shape(options.arch, options, vocab_size=len(tokenizer))
    fresh = init_model(shape, tokenizer, options.seed)
    embedding, non_embedding = count_params(shape)
    context.log.append(f"init {options.arch}: {shape.layers} layers x {shape.hidden}, {shape.heads}/{shape.kv_heads} heads, "
                       f"{embedding + non_embedding:,} parameters ({non_embedding:,} non-embedding)")
    return fresh
