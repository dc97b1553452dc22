"""The budget calculator: exact file sizes against files slmkit writes, parameter counts against the
initialised model, `slm init` through the CLI, and predicted decode speed against a measured one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny import tiny_tokenizer

from slmkit.arch.build import init_model, llama_config
from slmkit.arch.presets import ShapeOptions, resolve_shape
from slmkit.arch.size import FORMATS, Target, disk_bytes, parse_fit, size_report
from slmkit.arch.tensors import model_tensors, preset_tensors
from slmkit.errors import SlmError
from slmkit.models.saving import save

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(layers=2, hidden=64, heads=4, kv_heads=2, intermediate=128, context=128)


def tiny_target(tied: bool = True) -> tuple[Target, object]:
    tok = tiny_tokenizer()
    shape = resolve_shape("mobilellm", ShapeOptions(**TINY, tied=tied), vocab_size=len(tok))
    return Target("tiny", preset_tensors(shape), llama_config(shape, tok), lambda: tok, shape), tok


@pytest.mark.parametrize("tied", [True, False])
def test_predicted_bytes_equal_the_files_slmkit_writes(tmp_path, tied):
    from slmkit.compress.quant.options import RTNOptions
    from slmkit.compress.quant.rtn import rtn_quantize
    from slmkit.layouts import gguf

    target, tok = tiny_target(tied)
    written = {}
    for fmt, dtype in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        save(init_model(target.shape, tok).to(dtype), tok, tmp_path / fmt, "hf")
        written[fmt] = tmp_path / fmt / "model.safetensors"
    for fmt, bits in (("int8", 8), ("int4", 4)):
        save(rtn_quantize(init_model(target.shape, tok), tok, RTNOptions(bits=bits)), tok, tmp_path / fmt, "compressed-tensors")
        written[fmt] = tmp_path / fmt / "model.safetensors"
    model = init_model(target.shape, tok)
    for qtype in ("F16", "Q8_0", "Q4_0"):
        written[f"gguf-{qtype}"] = gguf.save(model, tok, tmp_path / f"{qtype}.gguf", qtype)
    for fmt, path in written.items():
        assert disk_bytes(target, fmt) == path.stat().st_size, fmt


def test_parameter_counts_equal_the_initialised_model(tmp_path):
    target, tok = tiny_target(tied=False)
    model = init_model(target.shape, tok)
    embedding, non_embedding = target.tensors.parameters
    assert embedding + non_embedding == sum(p.numel() for p in model.parameters())
    assert embedding == model.get_input_embeddings().weight.numel() + model.lm_head.weight.numel()
    save(init_model(resolve_shape("mobilellm", ShapeOptions(**TINY), vocab_size=len(tok)), tok), tok, tmp_path / "m", "hf")
    tied = model_tensors(str(tmp_path / "m"))  # the meta-device path counts tied weights once
    assert sum(tied.parameters) == sum(tiny_target(tied=True)[0].tensors.parameters)


def test_report_arithmetic():
    target, _ = tiny_target()
    report = size_report(target, ["fp16", "gguf-Q8_0"], context=100, bandwidth=1e9, with_disk=False)
    t = target.tensors
    assert report.kv_bytes_per_token["float16"] == 2 * t.layers * t.kv_heads * t.head_dim * 2
    linear = sum(t.numel(n) for n in t.linears)
    assert report.flops_per_token == 2 * linear + 2 * t.numel("model.embed_tokens.weight") + 4 * t.layers * t.heads * t.head_dim * 100
    fp16 = report.formats[0]
    assert fp16.memory_bytes == 2 * report.parameters
    assert fp16.decode_tokens_per_s == pytest.approx(1e9 / (fp16.memory_bytes + fp16.kv_bytes))
    assert report.formats[1].memory_bytes < fp16.memory_bytes


def test_fit_budgets_are_read_or_refused_in_one_line():
    assert parse_fit("memory=1GB,decode=30") == (10**9, 30.0)
    assert parse_fit("memory=512MiB") == (2**29, None)
    for bad in ("memory=lots", "speed=3", ""):
        with pytest.raises(SlmError, match="--fit"):
            parse_fit(bad)
    assert set(FORMATS) >= {"fp32", "fp16", "int8", "int4", "gguf-Q4_0"}


def slm(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "slmkit.cli", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


def test_init_writes_a_folder_plain_transformers_loads(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "scratch"
    shape = ["--layers", "2", "--hidden", "64", "--heads", "4", "--kv-heads", "2", "--intermediate", "128"]
    done = slm("init", "mobilellm", *shape, "--train-tokenizer", "pydoc", "--vocab-size", "300", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 layers x 64" in done.stdout and "parameters" in done.stdout
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.vocab_size == len(tokenizer) <= 300
    manifest = json.loads((out / "slmkit.json").read_text())
    assert manifest["origin"] == "scratch" and manifest["arch"] == "mobilellm" and manifest["shape"]["hidden"] == 64
    assert (out / "model.safetensors").stat().st_size == disk_bytes(
        Target("x", preset_tensors(resolve_shape("mobilellm", ShapeOptions(**{**TINY, "context": None}), len(tokenizer))),
               None, lambda: None), "fp32")
    foreign = tmp_path / "foreign"  # a folder slmkit did not write is kept unless --overwrite
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    again = slm("init", "mobilellm", *shape, "--out", str(foreign), cwd=tmp_path)
    assert (foreign / "notes.txt").exists()
    assert again.returncode != 0 and "--out" in again.stderr and len(again.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, flag", [
    (["--hidden", "100"], "--hidden"),
    (["--hidden", "64", "--heads", "5"], "--heads"),
    (["--hidden", "64", "--heads", "4", "--kv-heads", "3"], "--kv-heads"),
    (["--params", "1k"], "--params"),
])
def test_bad_shapes_fail_in_one_line(tmp_path, args, flag):
    done = slm("init", "mobilellm", *args, "--out", str(tmp_path / "m"), cwd=tmp_path)
    assert done.returncode != 0 and flag in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_unknown_preset_fails_in_one_line(tmp_path):
    done = slm("init", "transformer9000", "--out", str(tmp_path / "m"), cwd=tmp_path)
    assert done.returncode != 0 and "unknown architecture" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_predicted_decode_is_within_3x_of_a_measured_one():
    """Timed: run on a quiet machine. fp32 decode of the embedded model against bandwidth / bytes per token."""
    from slmkit.arch.bandwidth import bandwidth
    from slmkit.arch.size import spec_target
    from slmkit.evaluate.profile import measure

    profile = measure("smollm2-135m", prompt_tokens=32, decode_tokens=32, repeats=3)
    report = size_report(spec_target("smollm2-135m"), ["fp32"], context=64, bandwidth=bandwidth(), with_disk=False)
    predicted = report.formats[0].decode_tokens_per_s
    assert predicted / 3 <= profile.decode_tokens_per_s <= predicted * 3


def test_fit_finds_a_shape_within_the_budget_and_refuses_an_impossible_one():
    import json
    import subprocess
    import sys

    def size(*args):
        return subprocess.run([sys.executable, "-m", "slmkit.cli", "size", "mobilellm", *args], capture_output=True,
                              text=True, timeout=300)

    fit = size("--fit", "memory=200MB", "--json")
    assert fit.returncode == 0, fit.stderr
    row = json.loads(fit.stdout)["formats"][0]
    assert row["memory_bytes"] + row["kv_bytes"] <= 200e6
    assert row["memory_bytes"] + row["kv_bytes"] > 0.5 * 200e6  # the largest that fits, not any that fits
    refused = size("--fit", "memory=1MB")
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1 and "--fit" in refused.stderr
