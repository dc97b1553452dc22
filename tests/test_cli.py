import json
import os
import subprocess
import sys

import pytest

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


def test_help_on_every_command():
    for command in ["models", "run", "eval", "profile", "compress", "generate"]:
        assert slm(command, "--help", check=True).stdout.strip()
    assert "magnitude" in slm("compress", "--help").stdout


def test_generate_streams_text(tiny_folder):
    result = slm("generate", str(tiny_folder), "def", "--raw", "-n", "5", check=True)
    assert "tokens/s" in result.stderr
