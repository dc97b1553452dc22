"""Efficiency profile of a GGUF file in llama.cpp: file size, peak RSS, prefill and decode tokens/s.

Each file is measured in a fresh process that imports llama-cpp-python only (no torch), so its
peak RSS is what llama.cpp itself needs; a warm-up run, then the median of several. The dense
reference is the baseline model exported to F16 GGUF (cached) and measured the same way.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from slmkit.errors import SlmError
from slmkit.evaluate.profile import child_main, default_threads, in_child, measured, peak_rss


@dataclass
class LlamaProfile:
    model: str
    bytes_on_disk: int = measured("GGUF file (MB)", "{:.1f}", megabytes=True)
    peak_rss_bytes: int = measured("peak RSS (MB)", "{:.0f}", megabytes=True)
    prefill_tokens_per_s: float = measured("prefill tokens/s", "{:.1f}", higher_is_better=True)
    decode_tokens_per_s: float = measured("decode tokens/s", "{:.2f}", higher_is_better=True)
    prompt_tokens: int
    decode_tokens: int
    threads: int
    backend: str = "llama.cpp"

    def to_dict(self) -> dict:
        return asdict(self)


LLAMA_MEASURED = tuple(f for f in fields(LlamaProfile) if "label" in f.metadata)


def measure_llamacpp(path: str, prompt_tokens: int = 512, decode_tokens: int = 128, repeats: int = 5,
                     threads: int | None = None) -> LlamaProfile:
    """Profile a GGUF file in this process (use `measure_llamacpp_in_subprocess` for an honest peak RSS)."""
    import psutil

    from slmkit.data.corpus import corpus_text
    from slmkit.evaluate.llamacpp import open_llama

    threads = threads or default_threads()
    llama = open_llama(Path(path), n_ctx=prompt_tokens + decode_tokens + 64, threads=threads, logits_all=False)
    text_ids = llama.tokenize(corpus_text("pydoc")[: 8 * (prompt_tokens + 64)].encode(), add_bos=False)
    if len(text_ids) < prompt_tokens:
        raise SlmError(f"the profile prompt has {len(text_ids)} tokens, fewer than --prompt-tokens {prompt_tokens}")
    prompt, short = text_ids[:prompt_tokens], text_ids[:32]

    def prefill() -> float:
        llama.reset()
        start = time.perf_counter()
        llama.eval(prompt)
        return prompt_tokens / (time.perf_counter() - start)

    def decode() -> float:
        tokens = llama.generate(short, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True)
        next(tokens)  # the first token comes from the prefill; time the decode steps only
        start, n = time.perf_counter(), 0
        for n, _ in enumerate(tokens, start=1):
            if n >= decode_tokens:
                break
        return n / (time.perf_counter() - start)

    prefill(), decode()  # warm-up
    prefill_speed = statistics.median(prefill() for _ in range(repeats))
    decode_speed = statistics.median(decode() for _ in range(repeats))
    return LlamaProfile(model=str(path), bytes_on_disk=Path(path).stat().st_size, peak_rss_bytes=peak_rss(psutil),
                        prefill_tokens_per_s=prefill_speed, decode_tokens_per_s=decode_speed,
                        prompt_tokens=prompt_tokens, decode_tokens=decode_tokens, threads=threads)


def measure_llamacpp_in_subprocess(path: str, **kwargs) -> LlamaProfile:
    """Profile a GGUF file in a fresh Python process and return its measurements."""
    return LlamaProfile(**in_child("slmkit.evaluate.llamacpp_profile", path, kwargs, f"profiling {path} in llama.cpp"))


def dense_gguf(spec: str, qtype: str = "F16") -> Path:
    """A GGUF file of `spec`: the file itself when it is one, else its export to `qtype`, cached."""
    from slmkit.cache import cache_dir
    from slmkit.models.source import resolve_model

    source = resolve_model(spec)
    if source.kind == "gguf":
        return Path(source.ref)
    key = hashlib.sha256(f"{spec}:{qtype}".encode()).hexdigest()[:12]
    if source.kind == "folder":
        stamp = max(p.stat().st_mtime_ns for p in Path(source.ref).iterdir())
        key = hashlib.sha256(f"{Path(source.ref).resolve()}:{stamp}:{qtype}".encode()).hexdigest()[:12]
    target = cache_dir("gguf", f"{Path(spec).name}-{key}-{qtype}.gguf")
    if not target.is_file():
        from slmkit.layouts import gguf
        from slmkit.models.loading import load
        from slmkit.outputs import atomic_file

        model, tokenizer = load(spec, "float32")
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(target, overwrite=True) as tmp:
            gguf.save(model, tokenizer, tmp, qtype)
    return target


if __name__ == "__main__":  # the child process of measure_llamacpp_in_subprocess
    child_main(measure_llamacpp)
