"""Decode and prefill speed of packed models with their float parts in fp32 and in bf16, against fp32.

Each model is profiled in a fresh process by the same decode loop (`slm profile`'s measurement:
512-token prompt, 128 decode tokens, median of 5, 2 threads); the dense fp32 model is measured
first and last, so drift during the run shows.

    slm compress smollm2-135m --method rtn --bits 8 --out /tmp/rtn-w8
    slm compress smollm2-135m --method rtn --bits 4 --group-size 64 --out /tmp/rtn-w4
    python bench/dtype_speed.py /tmp/rtn-w8 /tmp/rtn-w4
"""

from __future__ import annotations

import argparse

from slmkit.evaluate.profile import measure_in_subprocess

DENSE = "smollm2-135m"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="packed model folders (e.g. made by slm compress --method rtn)")
    args = parser.parse_args()
    runs = [(DENSE, "float32")]
    for folder in args.models:
        runs += [(folder, "float32"), (folder, "bfloat16")]
    runs.insert(3, (DENSE, "bfloat16"))
    runs.append((DENSE, "float32"))
    for spec, dtype in runs:
        p = measure_in_subprocess(spec, prompt_tokens=512, decode_tokens=128, repeats=5, threads=2, dtype=dtype)
        print(f"{spec} {dtype} decode {p.decode_tokens_per_s:.2f} prefill {p.prefill_tokens_per_s:.1f} "
              f"bytes {p.bytes_in_memory / 1e6:.1f}", flush=True)


if __name__ == "__main__":
    main()
