"""Efficiency profile: parameters, bytes, peak memory, prefill and decode speed.

Each model is measured in a fresh process so that its peak RSS is its own, with a fixed
thread count, a warm-up run and the median of several timed runs. Compare models only
against a reference measured in the same run (`compare`).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from slmkit.errors import SlmError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


def measured(label: str, fmt: str, higher_is_better: bool = False, megabytes: bool = False):
    """A measured quantity of a Profile, with how reports label it, format it, and which way is better."""
    return field(metadata={"label": label, "format": fmt, "higher_is_better": higher_is_better, "megabytes": megabytes})


@dataclass
class Profile:
    model: str
    parameters: int = measured("parameters", "{:,.0f}")
    nonzero_parameters: int = measured("non-zero parameters", "{:,.0f}")
    bytes_on_disk: int = measured("weights on disk (MB)", "{:.1f}", megabytes=True)
    bytes_in_memory: int = measured("tensors in memory (MB)", "{:.1f}", megabytes=True)
    peak_rss_bytes: int = measured("peak RSS (MB)", "{:.0f}", megabytes=True)
    prefill_tokens_per_s: float = measured("prefill tokens/s", "{:.1f}", higher_is_better=True)
    decode_tokens_per_s: float = measured("decode tokens/s", "{:.2f}", higher_is_better=True)
    prompt_tokens: int
    decode_tokens: int
    threads: int
    dtype: str

    def to_dict(self) -> dict:
        return asdict(self)


MEASURED = tuple(f for f in fields(Profile) if "label" in f.metadata)  # the quantities compared between models


def default_threads() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def weights_bytes(folder: str | Path) -> int:
    """Bytes of the weight files in a model folder (or of a single weight file)."""
    path = Path(folder)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES)


def tensor_bytes(model) -> int:
    """Bytes held by parameters and buffers, each storage counted once (tied weights, packed ints)."""
    from slmkit.layouts.common import unique_tensors

    tensors = unique_tensors({**dict(model.named_parameters()), **dict(model.named_buffers())})
    return sum(t.untyped_storage().nbytes() for t in tensors.values())


def count_parameters(model) -> tuple[int, int]:
    """(total, non-zero) parameters; tied weights count once, packed quantized weights by logical size."""
    from slmkit.layouts.common import unique_tensors

    total = nonzero = 0
    for module in model.modules():
        counter = getattr(module, "logical_parameters", None)
        if counter is not None:  # packed quantized layers report their logical size (they hold buffers only)
            n, nz = counter()
            total, nonzero = total + n, nonzero + nz
    for p in unique_tensors(dict(model.named_parameters())).values():
        total += p.numel()
        nonzero += int(p.count_nonzero())
    return total, nonzero


def measure(
    spec: str,
    prompt_tokens: int = 512,
    decode_tokens: int = 128,
    repeats: int = 5,
    threads: int | None = None,
    dtype: str = "float32",
) -> Profile:
    """Profile a model in this process (use `measure_in_subprocess` for an honest peak RSS)."""
    import psutil
    import torch

    from slmkit.data.calibration import token_stream
    from slmkit.generation import SamplingParams, stream_tokens
    from slmkit.models.loading import load, model_folder
    from slmkit.models.source import resolve_model

    threads = threads or default_threads()
    torch.set_num_threads(threads)
    model, tokenizer = load(spec, dtype=dtype)
    folder = model_folder(resolve_model(spec))
    text_ids = token_stream(tokenizer, "pydoc", max_tokens=prompt_tokens + 64)
    prompt = text_ids[:prompt_tokens].unsqueeze(0)
    short = text_ids[:32].unsqueeze(0)

    def prefill() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            model(prompt, use_cache=True, logits_to_keep=1)
        return prompt_tokens / (time.perf_counter() - start)

    def decode() -> float:
        tokens = stream_tokens(model, short, SamplingParams(max_new_tokens=decode_tokens))
        next(tokens)  # the first token comes from the prefill; time the decode steps only
        start = time.perf_counter()
        n = sum(1 for _ in tokens)
        return n / (time.perf_counter() - start)

    prefill(), decode()  # warm-up
    prefill_speed = statistics.median(prefill() for _ in range(repeats))
    decode_speed = statistics.median(decode() for _ in range(repeats))
    total, nonzero = count_parameters(model)
    return Profile(
        model=spec,
        parameters=total,
        nonzero_parameters=nonzero,
        bytes_on_disk=weights_bytes(folder) if Path(folder).exists() else 0,
        bytes_in_memory=tensor_bytes(model),
        peak_rss_bytes=peak_rss(psutil),
        prefill_tokens_per_s=prefill_speed,
        decode_tokens_per_s=decode_speed,
        prompt_tokens=prompt_tokens,
        decode_tokens=decode_tokens,
        threads=threads,
        dtype=dtype,
    )


def peak_rss(psutil) -> int:
    """This process's peak resident memory. VmHWM, unlike ru_maxrss, is not inherited across fork+exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return psutil.Process().memory_info().rss


def measure_in_subprocess(spec: str, **kwargs) -> Profile:
    """Profile a model in a fresh Python process and return its measurements."""
    return Profile(**in_child("slmkit.evaluate.profile", spec, kwargs, f"profiling {spec}"))


def compare(reference: Profile, other: Profile) -> dict[str, float]:
    """other / reference for each measured quantity (speed ratios > 1 are faster)."""
    out = {}
    for quantity in (f for f in fields(reference) if "label" in f.metadata):
        ref = getattr(reference, quantity.name)
        out[quantity.name] = getattr(other, quantity.name) / ref if ref else float("nan")
    return out


def in_child(module: str, spec: str, kwargs: dict, what: str) -> dict:
    """Run `module` as a fresh measuring process (see `child_main`) and return its JSON result."""
    cmd = [sys.executable, "-m", module, str(spec), json.dumps(kwargs)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, SLMKIT_PROGRESS="0"))
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        raise SlmError(f"{what} failed: {tail}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def child_main(measure_fn) -> None:
    """The body of a measuring process: one JSON profile on stdout, or one error line on stderr and exit 1."""
    try:
        profile = measure_fn(sys.argv[1], **json.loads(sys.argv[2]))
    except SlmError as err:
        print(str(err), file=sys.stderr)
        sys.exit(1)
    print(json.dumps(profile.to_dict()))


if __name__ == "__main__":  # the child process of measure_in_subprocess
    child_main(measure)
