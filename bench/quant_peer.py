"""Peer side of bench/quantization.py, run inside bench/.venv-llmcompressor (its own pinned versions).

  quantize METHOD MODEL_DIR CALIB_IDS.pt OUT_DIR   llmcompressor oneshot, saved compressed
  ppl MODEL_DIR TEXT SEQLEN WINDOWS                 perplexity with slmkit's protocol (float-decompressed)
  speed MODEL_DIR PROMPT DECODE REPEATS             torchao int8/int4 weight-only vs fp32 in slmkit's decode loop
Each prints one JSON line on stdout.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch


def scheme(bits: int, group: int) -> dict:
    weights = {"num_bits": bits, "type": "int", "symmetric": True,
               "strategy": "group" if group else "channel", "group_size": group or None}
    return {"group_0": {"targets": ["Linear"], "weights": weights}}


def quantize(method: str, model_dir: str, calib: str, out: str) -> dict:
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.awq import AWQModifier
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier
    from llmcompressor.modifiers.smoothquant import SmoothQuantModifier
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name, _, shape = method.partition("-")  # e.g. gptq-w4g64, rtn-w8, smoothquant-w8a8
    bits = 8 if shape.startswith("w8") else 4
    group = int(shape.split("g")[1]) if "g" in shape else 0
    ignore = ["lm_head"]
    recipes = {
        "rtn": lambda: QuantizationModifier(config_groups=scheme(bits, group), ignore=ignore),
        "gptq": lambda: GPTQModifier(config_groups=scheme(bits, group), ignore=ignore, block_size=128, dampening_frac=0.01),
        "awq": lambda: AWQModifier(config_groups=scheme(bits, group), ignore=ignore),
        "smoothquant": lambda: [SmoothQuantModifier(smoothing_strength=0.5),
                                QuantizationModifier(scheme="W8A8", targets="Linear", ignore=ignore)],
    }
    ids = torch.load(calib)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dataset = Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": torch.ones_like(ids).tolist()})
    oneshot(model=model, dataset=dataset, recipe=recipes[name](), max_seq_length=ids.shape[1],
            num_calibration_samples=ids.shape[0])
    model.save_pretrained(out, save_compressed=True)
    tokenizer.save_pretrained(out)
    return {"saved": out}


def ppl(model_dir: str, text: str, seqlen: str, windows: str) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from slmkit.evaluate.perplexity import perplexity

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    result = perplexity(model, tokenizer, text, seqlen=int(seqlen), max_windows=int(windows), show_progress=False)
    return {"perplexity": result.perplexity}


def speed(model_dir: str, prompt: str, decode: str, repeats: str) -> dict:
    """Prefill and decode tokens/s of fp32 and torchao weight-only int8 / int4 models."""
    from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig, quantize_
    from transformers import AutoModelForCausalLM

    from slmkit.generation import SamplingParams, stream_tokens

    prompt, decode, repeats = int(prompt), int(decode), int(repeats)
    ids = torch.randint(100, 40000, (1, prompt), generator=torch.Generator().manual_seed(0))
    out = {}
    configs = {"fp32": None, "int8wo": lambda: Int8WeightOnlyConfig(),
               "int4wo": lambda: Int4WeightOnlyConfig(group_size=64)}
    for name, config in configs.items():
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        try:
            if config is not None:
                quantize_(model, config())

            def prefill(model=model) -> float:
                start = time.perf_counter()
                with torch.inference_mode():
                    model(ids, use_cache=True, logits_to_keep=1)
                return prompt / (time.perf_counter() - start)

            def decoding(model=model) -> float:
                tokens = stream_tokens(model, ids[:, :32], SamplingParams(max_new_tokens=decode))
                next(tokens)
                start = time.perf_counter()
                n = sum(1 for _ in tokens)
                return n / (time.perf_counter() - start)

            prefill(), decoding()
            out[name] = {"prefill_tokens_per_s": statistics.median(prefill() for _ in range(repeats)),
                         "decode_tokens_per_s": statistics.median(decoding() for _ in range(repeats))}
        except Exception as err:  # record the peer's exact failure
            out[name] = {"error": f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"}
    return out


if __name__ == "__main__":
    torch.set_num_threads(2)
    command, args = sys.argv[1], sys.argv[2:]
    print(json.dumps({"quantize": quantize, "ppl": ppl, "speed": speed}[command](*args)))
