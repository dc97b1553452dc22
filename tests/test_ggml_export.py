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


@pytest.mark.parametrize("hidden,intermediate", [(96, 256), (256, 96)])
@pytest.mark.parametrize("ftype", ["Q4_K_M", "Q4_K_S", "Q5_K_M", "Q5_K_S", "Q6_K", "Q4_0"])
def test_k_mixes_same_types_and_bytes_as_llama_quantize(tmp_path, ftype, hidden, intermediate):
    """Eight layers (use_more_bits picks 0, 3, 6, 7), rows of 256 on the K grids and of 96 on their fallbacks."""
    tied = hidden == 256
    model = tiny_model("llama", seed=6, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=8,
                       tie_word_embeddings=tied)
    base = export_gguf(model, tiny_tokenizer(), tmp_path / "f32.gguf", "F32")
    theirs = tensors(llama_quantize(base, tmp_path / "theirs.gguf", ftype))
    mine = tensors(export_gguf(model, tiny_tokenizer(), tmp_path / "mine.gguf", ftype))
    types = {k: v[0] for k, v in mine.items()}
    assert types == {k: v[0] for k, v in theirs.items()}
    assert types["token_embd.weight" if tied else "output.weight"] == ("Q6_K" if hidden == 256 else "Q8_0")
    if ftype == "Q4_K_M":  # the mix raises some layers, and 96-wide rows fall back to a 32-wide type
        assert {types[f"blk.{i}.{'ffn_down' if intermediate == 256 else 'attn_v'}.weight"] for i in range(8)} >= {"Q6_K"}
        assert "Q5_0" in set(types.values()) and "Q4_K" in set(types.values())
    for name, (_, data) in mine.items():
        assert np.array_equal(data.view(np.uint8), theirs[name][1].view(np.uint8)), name


def test_unknown_file_type_is_a_clear_error(tmp_path):
    with pytest.raises(SlmError, match="unknown GGUF type 'Q3_K_M'"):
        export_gguf(tiny_model("llama"), tiny_tokenizer(), tmp_path / "m.gguf", "Q3_K_M")
