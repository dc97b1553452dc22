"""The llama.cpp backend: a clear one-line error without the package; real serving of slmkit's GGUF export with it."""

import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from serving import ServerThread, free_port, one_thread, wait_http  # noqa: F401 (autouse fixture)
from tiny import tiny_model, tiny_tokenizer

from slmkit.errors import SlmError
from slmkit.layouts.gguf import save as export_gguf
from slmkit.serve.build import build_app

NO_EXTRA = "llama-cpp-python is not installed (make install)"
ROOT = Path(__file__).resolve().parents[1]


def test_missing_package_is_one_clear_line(monkeypatch, tiny_folder):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails as if not installed
    with pytest.raises(SlmError, match="needs llama-cpp-python: make install"):
        build_app("smollm2-135m", backend="llama.cpp")


def test_llamacpp_backend_needs_a_gguf(tiny_folder):
    pytest.importorskip("llama_cpp", reason=NO_EXTRA)
    with pytest.raises(SlmError, match="GGUF"):
        build_app(str(tiny_folder), backend="llama.cpp")


def test_unknown_backend(tiny_folder):
    with pytest.raises(SlmError, match="transformers, llama.cpp"):
        build_app(str(tiny_folder), backend="onnx")


def test_llamacpp_serves_an_exported_gguf_like_transformers(tmp_path):
    pytest.importorskip("llama_cpp", reason=NO_EXTRA)
    path = export_gguf(tiny_model("llama", seed=4), tiny_tokenizer(), tmp_path / "tiny.gguf", "F32")
    prompts = ["def f(x):", "import os"]
    answers = {}
    for backend in ("transformers", "llama.cpp"):
        with ServerThread(build_app(str(path), backend=backend, name="tiny")) as server:
            client = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=60)
            replies = [client.completions.create(model="tiny", prompt=p, max_tokens=8, temperature=0) for p in prompts]
            streamed = "".join(c.choices[0].text for c in client.completions.create(
                model="tiny", prompt=prompts[0], max_tokens=8, temperature=0, stream=True))
            answers[backend] = [r.choices[0].text for r in replies], [r.usage.prompt_tokens for r in replies]
            assert streamed == replies[0].choices[0].text
    assert all(answers["transformers"][0]) and answers["llama.cpp"] == answers["transformers"]


@pytest.mark.slow
@pytest.mark.integration
def test_slm_serve_llamacpp_of_the_exported_smollm2(tmp_path):
    pytest.importorskip("llama_cpp", reason=NO_EXTRA)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    gguf = tmp_path / "smollm2.gguf"
    subprocess.run([sys.executable, "-m", "slmkit.cli", "export", "smollm2-135m", "--format", "gguf", "--out", str(gguf)],
                   env=env, check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "slmkit.cli", "serve", str(gguf), "--backend", "llama.cpp",
                             "--port", str(port), "--name", "smol"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", tries=900)  # the first start converts the GGUF's tokenizer
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=120)
        reply = client.chat.completions.create(model="smol", messages=[{"role": "user", "content": "What is 2+2?"}],
                                               max_tokens=12, temperature=0)
        assert "4" in reply.choices[0].message.content and reply.usage.completion_tokens >= 1
        chunks = list(client.completions.create(model="smol", prompt="The capital of France is", max_tokens=6,
                                                temperature=0, stream=True))
        assert "Paris" in "".join(c.choices[0].text for c in chunks)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
