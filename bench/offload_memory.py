"""Peak memory of layer-offloaded pruning on a ~1.1B-parameter Llama-family model (random weights).

The model is written to disk one layer at a time (it never exists whole in memory), then
Wanda prunes it with `compress_offloaded` in a fresh process; the table compares that
process's peak RSS with the model's fp32 size.

    python bench/offload_memory.py [--method wanda|sparsegpt] [--folder DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
              num_key_value_heads=4, max_position_embeddings=2048, tie_word_embeddings=False)  # TinyLlama-1.1B shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="wanda")
    parser.add_argument("--folder", help="where to write the random model (default: a temporary folder)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    folder = Path(args.folder or tempfile.mkdtemp(prefix="offload-1b-"))
    try:
        params = build(folder / "model")
        out = subprocess.run([sys.executable, __file__, "--worker", "--method", args.method, "--folder", str(folder)],
                             capture_output=True, text=True, env=dict(os.environ, SLMKIT_PROGRESS="0"))
        if out.returncode:
            raise SystemExit(out.stderr.strip().splitlines()[-1])
        result = json.loads(out.stdout.strip().splitlines()[-1])
        fp32 = params * 4
        print("| model | fp32 size GB | method | peak RSS GB | RSS / fp32 size | time s |")
        print("|---|---|---|---|---|---|")
        print(f"| random Llama {params / 1e9:.2f}B | {fp32 / 1e9:.2f} | {args.method} + offload | {result['peak_rss'] / 1e9:.2f} "
              f"| {result['peak_rss'] / fp32:.1%} | {result['seconds']:.0f} |")
        print(f"\nCalibration {result['calibration']} random token ids; target: peak RSS under 40% of the fp32 size.")
    finally:
        if not args.folder:
            shutil.rmtree(folder, ignore_errors=True)


def build(folder: Path) -> int:
    """Write a random model of CONFIG's shape one tensor group at a time; return its parameter count."""
    import torch
    import transformers
    from accelerate import init_empty_weights
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = transformers.LlamaConfig(**CONFIG)
    with init_empty_weights():
        skeleton = transformers.AutoModelForCausalLM.from_config(config)
    config.save_pretrained(folder)
    groups: dict[str, dict[str, tuple]] = {}
    for name, p in skeleton.named_parameters():
        key = ".".join(name.split(".")[:3]) if name.startswith("model.layers.") else "rest"
        groups.setdefault(key, {})[name] = tuple(p.shape)
    weight_map, total, g = {}, 0, torch.Generator().manual_seed(0)
    for i, shapes in enumerate(groups.values()):
        tensors = {n: (torch.ones(s) if n.endswith("norm.weight") else torch.randn(s, generator=g) * 0.02) for n, s in shapes.items()}
        file = f"model-{i:05d}.safetensors"
        save_file(tensors, str(folder / file), metadata={"format": "pt"})
        weight_map.update({n: file for n in tensors})
        total += sum(t.numel() for t in tensors.values())
        del tensors
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny import tiny_tokenizer  # a small real tokenizer; ids above its vocabulary are never produced

    tiny_tokenizer().save_pretrained(folder)
    return total


def worker(args) -> None:
    import torch

    from slmkit.compress.offload import compress_offloaded
    from slmkit.steps import StepContext

    ids = torch.randint(0, CONFIG["vocab_size"], (8, 256), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    compress_offloaded(Path(args.folder) / "model", Path(args.folder) / "out", args.method, {"sparsity": 0.5},
                       StepContext(_calibration=ids), show_progress=False)
    seconds = time.perf_counter() - start
    hwm = next(int(l.split()[1]) * 1024 for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
    print(json.dumps({"peak_rss": hwm, "seconds": seconds, "calibration": "8 x 256"}))


if __name__ == "__main__":
    main()
