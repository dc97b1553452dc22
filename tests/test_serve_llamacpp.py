"""The llama.cpp backend: a clear one-line error without the extra; real serving of the embedded GGUF with it."""

import sys

import openai
import pytest

from serving import ServerThread, one_thread  # noqa: F401 (autouse fixture)
from slmkit.errors import SlmError
from slmkit.serve.build import build_app


def test_missing_package_is_one_clear_line(monkeypatch, tiny_folder):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails as if not installed
    with pytest.raises(SlmError, match="pip install 'slmkit\\[llamacpp\\]'"):
        build_app("smollm2-135m", backend="llama.cpp")


def test_llamacpp_backend_needs_a_gguf(tiny_folder):
    pytest.importorskip("llama_cpp")
    with pytest.raises(SlmError, match="GGUF"):
        build_app(str(tiny_folder), backend="llama.cpp")


def test_unknown_backend(tiny_folder):
    with pytest.raises(SlmError, match="transformers, llama.cpp"):
        build_app(str(tiny_folder), backend="onnx")


@pytest.mark.integration
def test_llamacpp_serves_embedded_gguf():
    pytest.importorskip("llama_cpp")
    with ServerThread(build_app("smollm2-135m", backend="llama.cpp", name="smol")) as server:
        client = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0)
        reply = client.chat.completions.create(model="smol", messages=[{"role": "user", "content": "What is 2+2?"}],
                                               max_tokens=12, temperature=0)
        assert reply.choices[0].message.content.strip() and reply.usage.completion_tokens >= 1
        chunks = list(client.completions.create(model="smol", prompt="The capital of France is", max_tokens=6,
                                                temperature=0, stream=True))
        assert "".join(c.choices[0].text for c in chunks).strip()
