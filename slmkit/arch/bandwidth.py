"""The machine's memory read bandwidth, what bounds decode speed: measured once (the best of a few
sums over a buffer far larger than the caches) and cached with the machine's identity."""

from __future__ import annotations

import json
import os
import platform
import time

from slmkit.cache import cache_dir

BUFFER_BYTES = 512 * 2**20
REPEATS = 5


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_identity() -> str:
    """What the bandwidth belongs to: host, CPU model, cores, and the threads torch reads with."""
    import torch

    return f"{platform.node()}|{cpu_model()}|{os.cpu_count()} cores|{torch.get_num_threads()} threads"


def measure_bandwidth(nbytes: int = BUFFER_BYTES, repeats: int = REPEATS) -> float:
    """Bytes per second that a float32 sum reads, the best of `repeats` passes."""
    import torch

    x = torch.ones(nbytes // 4, dtype=torch.float32)
    x.sum()  # pages in
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - start)
    return x.numel() * 4 / best


def bandwidth(refresh: bool = False) -> float:
    """This machine's read bandwidth in bytes/s, from the cache when it was measured here before."""
    path = cache_dir("bandwidth.json")
    identity = machine_identity()
    known = json.loads(path.read_text()) if path.is_file() else {}
    if not refresh and identity in known:
        return float(known[identity]["bytes_per_s"])
    measured = measure_bandwidth()
    known[identity] = {"bytes_per_s": measured, "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(known, indent=1) + "\n")
    os.replace(tmp, path)
    return measured
