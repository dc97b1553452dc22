"""GGUF export onto ggml grids: the same tensor types and the same bytes as llama.cpp's own llama-quantize."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from tiny import tiny_model, tiny_tokenizer

from slmkit.errors import SlmError
from slmkit.layouts.gguf import save as export_gguf


def llama_quantize(src, dst, ftype: str):
    """Run llama.cpp's quantizer in-process on a GGUF file (the test is skipped without llama-cpp-python)."""
    llama_cpp = pytest.importorskip("llama_cpp")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype}")
    params.nthread = 1
    assert llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params) == 0
    return dst


def tensors(path) -> dict:
    return {t.name: (t.tensor_type.name, np.asarray(t.data)) for t in gguf.GGUFReader(path).tensors}


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("ftype", ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"])
def test_same_types_and_bytes_as_llama_quantize(tmp_path, ftype, tied):
    model = tiny_model("llama", seed=5, tie_word_embeddings=tied)
    base = export_gguf(model, tiny_tokenizer(), tmp_path / "f32.gguf", "F32")
    theirs = tensors(llama_quantize(base, tmp_path / "theirs.gguf", ftype))
    mine = tensors(export_gguf(model, tiny_tokenizer(), tmp_path / "mine.gguf", ftype))
    assert {k: v[0] for k, v in mine.items()} == {k: v[0] for k, v in theirs.items()}
    assert ("output.weight" in mine) is not tied
    assert {v[0] for v in mine.values()} >= {"F32", ftype}
    for name, (_, data) in mine.items():
        assert np.array_equal(data.view(np.uint8), theirs[name][1].view(np.uint8)), name


def test_output_needing_q6_k_is_a_clear_error(tmp_path):
    model = tiny_model("llama", seed=5, hidden_size=256, intermediate_size=256)
    with pytest.raises(SlmError, match="output.weight would be Q6_K"):
        export_gguf(model, tiny_tokenizer(), tmp_path / "m.gguf", "Q4_0")
