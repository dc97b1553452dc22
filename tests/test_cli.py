import json
import os
import re
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM

ENV = dict(os.environ, SLMKIT_PROGRESS="0", HF_HUB_OFFLINE="1")


def slm(*args, check=False):
    result = subprocess.run([sys.executable, "-m", "slmkit.cli", *args], capture_output=True, text=True, env=ENV)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_eval_json_prints_one_object(tiny_folder):
    result = slm("eval", str(tiny_folder), "--ppl", "pydoc", "--seqlen", "32", "--max-windows", "2", "--json", check=True)
    payload = json.loads(result.stdout)
    assert payload["windows"] == 2 and payload["tokens"] == 64 and payload["perplexity"] > 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["eval", "no-such-model-dir/", "--ppl", "pydoc"], "model not found"),
        (["compress", "{tiny}", "--method", "magnitude", "--sparsity", "2", "--out", "{tmp}/o"], "--sparsity: "),
        (["compress", "{tiny}", "--method", "magnitude", "--bogus", "1", "--out", "{tmp}/o"], "--bogus: unknown option for magnitude"),
        (["compress", "{tiny}", "--method", "nope", "--out", "{tmp}/o"], "unknown step 'nope'"),
        (["run", "{tmp}/missing.yaml", "--out", "{tmp}/o"], "recipe not found"),
        (["compress", "{tiny}", "--method", "rtn", "--offload", "--out", "{tmp}/o"],
         "--offload: rtn cannot run offloaded (methods that can: magnitude, sparsegpt, wanda)"),
        (["compress", "{tiny}", "--method", "wanda", "--offload", "--ppl", "pydoc", "--out", "{tmp}/o"],
         "--offload: --ppl and --profile load the whole model"),
        (["compress", "{tiny}", "--method", "wanda", "--offload", "--format", "compressed-tensors", "--out", "{tmp}/o"],
         "--format: layer offload writes format hf only"),
    ],
)
def test_errors_are_one_line_without_traceback(tiny_folder, tmp_path, args, message):
    args = [a.format(tiny=tiny_folder, tmp=tmp_path) for a in args]
    result = slm(*args)
    assert result.returncode != 0
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
    assert not (tmp_path / "o").exists()


def test_compress_writes_output(tiny_folder, tmp_path):
    slm("compress", str(tiny_folder), "--method", "magnitude", "--sparsity", "0.5", "--scope", "layer",
        "--out", str(tmp_path / "o"), check=True)
    manifest = json.loads((tmp_path / "o" / "slmkit.json").read_text())
    options = manifest["steps"][0]["options"]
    assert (options["sparsity"], options["scope"]) == (0.5, "layer")


def test_compress_with_offload_writes_the_same_model_as_in_memory(tiny_folder, tmp_path):
    args = ["compress", str(tiny_folder), "--method", "wanda", "--calib", "pydoc", "--nsamples", "4", "--seqlen", "32"]
    slm(*args, "--out", str(tmp_path / "memory"), check=True)
    slm(*args, "--offload", "--out", str(tmp_path / "offload"), check=True)
    memory, offload = (AutoModelForCausalLM.from_pretrained(tmp_path / name).state_dict() for name in ("memory", "offload"))
    assert memory.keys() == offload.keys() and all(torch.equal(memory[k], offload[k]) for k in memory)
    assert (tmp_path / "offload" / "model-layer-00000.safetensors").is_file()
    assert json.loads((tmp_path / "offload" / "slmkit.json").read_text())["steps"][0]["options"]["offload"] is True


def test_help_on_every_command():
    for command in ["models", "run", "eval", "profile", "compress", "generate"]:
        assert slm(command, "--help", check=True).stdout.strip()
    assert "magnitude" in slm("compress", "--help").stdout


def test_generate_streams_the_greedy_continuation(tiny_folder):
    from slmkit.generation import SamplingParams, generate_ids, stop_ids
    from slmkit.models.loading import load

    result = slm("generate", str(tiny_folder), "def", "--raw", "-n", "5", check=True)
    model, tokenizer = load(str(tiny_folder))
    stops = stop_ids(tokenizer)
    tokens = []
    for token in generate_ids(model, tokenizer("def", return_tensors="pt")["input_ids"], SamplingParams(max_new_tokens=5)):
        if token in stops:
            break
        tokens.append(token)
    assert tokens and result.stdout == tokenizer.decode(tokens, skip_special_tokens=True) + "\n"
    assert re.fullmatch(rf"\[{len(tokens)} tokens, [0-9.]+ tokens/s\]\n", result.stderr)  # and no warning


def test_extra_options_parse_values_flags_and_negated_flags():
    from slmkit.cli.flags import parse_extra_options

    assert parse_extra_options(["--bits", "4", "--group-size=64", "--owl", "--no-act-order"]) == {
        "bits": "4", "group_size": "64", "owl": True, "act_order": False}


def test_profile_baseline_can_run_in_another_dtype(tiny_folder):
    result = slm("profile", str(tiny_folder), "--baseline", str(tiny_folder), "--dtype", "bfloat16",
                 "--baseline-dtype", "float32", "--repeats", "1", "--prompt-tokens", "8", "--decode-tokens", "2",
                 "--json", check=True)
    payload = json.loads(result.stdout)
    assert (payload["model"]["dtype"], payload["baseline"]["dtype"]) == ("bfloat16", "float32")
    assert payload["ratios"]["bytes_in_memory"] == pytest.approx(0.5, rel=0.05)
