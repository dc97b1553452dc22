"""Calibration text the model writes itself: the default when no calibration data is given.

Data-free quantization in the manner of LLM-QAT: a handful of generic openings (prose, news,
dialogue, instructions, code) are continued by the model itself, sampled at temperature 1 in one
batched, KV-cached decode, so the calibration activations follow the model's own distribution
rather than one narrow corpus. `mixed` (the default) interleaves these sequences with windows of
the offline pydoc corpus; `generated` uses the model's text alone. Sequences are seeded and cached
on disk per (model fingerprint, tokenizer, settings), so a second run reads them back at once.
"""

from __future__ import annotations

import hashlib
import json

MODEL_SOURCES = ("mixed", "generated")  # calibration sources that need the model, not just its tokenizer
GENERATED_SHARE = {"mixed": 0.5, "generated": 1.0}  # the share of windows the model writes
TEMPERATURE = 1.0
TOP_P = 0.95
VERSION = 1  # bump when the prompts or the sampling change, so old cache entries are not reused

OPENINGS = (
    "The history of the city begins",
    "In the early years of the twentieth century,",
    "Scientists have long wondered why",
    "The following article describes",
    "Once upon a time, in a small village,",
    "Breaking news:",
    "Here is a step-by-step guide to",
    "Dear friend,",
    "The main difference between",
    "Q: What is the best way to",
    "According to the latest report,",
    "def main():",
    "Chapter 1\n\n",
    "The album was released",
    "Ingredients:",
    "In mathematics, a",
)


def model_fingerprint(model) -> str:
    """A short hash of a model's config and a strided sample of every weight: another model gets another key."""
    import torch

    digest = hashlib.sha256(model.config.to_json_string().encode())
    with torch.no_grad():
        for name, param in model.named_parameters():
            flat = param.detach().flatten()
            digest.update(name.encode() + flat[:: max(1, flat.numel() // 64)][:64].float().numpy().tobytes())
    return digest.hexdigest()[:16]


def cache_key(model, tokenizer, count: int, seqlen: int, seed: int) -> str:
    """The cache file name of `count` generated sequences of `seqlen` tokens under `seed`."""
    settings = dict(version=VERSION, count=count, seqlen=seqlen, seed=seed, temperature=TEMPERATURE, top_p=TOP_P,
                    openings=OPENINGS, vocab=len(tokenizer), tokens=sorted(tokenizer.get_vocab().items())[:: 997])
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return f"generated-{model_fingerprint(model)}-{digest}.pt"


def opening_ids(tokenizer, count: int) -> list[list[int]]:
    """`count` prompts cycling through the openings, each as plain text (a BOS first when the tokenizer has one)."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return [bos + tokenizer(OPENINGS[i % len(OPENINGS)], add_special_tokens=False)["input_ids"] for i in range(count)]


def sample_sequences(model, tokenizer, count: int, seqlen: int, seed: int, batch: int = 16):
    """`count` sequences of exactly `seqlen` tokens (opening + sampled continuation): a LongTensor [count, seqlen]."""
    import torch

    from slmkit.generation import BatchDecoder, SamplingParams
    from slmkit.progress import progress_bar

    prompts = opening_ids(tokenizer, count)
    rows = []
    with progress_bar("writing calibration text (once per model)", total=count) as advance:
        for start in range(0, count, batch):
            chunk = prompts[start:start + batch]
            params = [SamplingParams(max_new_tokens=seqlen - len(p), temperature=TEMPERATURE, top_p=TOP_P,
                                     seed=seed * 100003 + start + i) for i, p in enumerate(chunk)]
            decoder = BatchDecoder(model, chunk, params)
            new: dict[int, list[int]] = {i: [] for i in range(len(chunk))}
            while decoder.live:
                for request, token in decoder.step().items():
                    new[request].append(token)
            rows.extend(torch.tensor((p + new[i])[:seqlen]) for i, p in enumerate(chunk))
            advance(len(chunk))
    return torch.stack(rows)


def generated_sequences(model, tokenizer, count: int, seqlen: int, seed: int):
    """The model's own calibration sequences [count, seqlen], read from the cache or sampled once and cached."""
    import torch

    from slmkit.cache import cache_dir
    from slmkit.errors import SlmError

    longest = max(len(p) for p in opening_ids(tokenizer, min(count, len(OPENINGS))))
    if seqlen <= longest:
        raise SlmError(f"calibration.seqlen {seqlen} leaves no room to generate after prompts of {longest} tokens")
    path = cache_dir("calibration") / cache_key(model, tokenizer, count, seqlen, seed)
    if path.is_file():
        return torch.load(path)
    ids = sample_sequences(model, tokenizer, count, seqlen, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(f".{seed}.tmp")
    torch.save(ids, scratch)
    scratch.replace(path)  # readers see a whole file or none
    return ids
