"""ggml grids: slmkit's bytes decode through gguf's reader to slmkit's floats, and match llama.cpp's quantizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import dequantize as gguf_dequantize

from slmkit.errors import SlmError
from slmkit.ggml.blocks import dequantize, pack, unpack
from slmkit.ggml.rtn import quantize
from slmkit.ggml.types import GRID_TYPES, check_rows, grid_type
from tests.ggml_ref import ggml_quantize

NAMES = list(GRID_TYPES)


def weights(rows=48, cols=256, seed=0) -> torch.Tensor:
    """Heavy-tailed weights with the awkward cases: an all-zero block, exact ties of magnitude, tiny values,
    an all-zero row (a whole K super-block), constant and one-signed sub-blocks."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g) * torch.rand(rows, 1, generator=g) * 0.1
    w[:, :7] *= 20
    w[0, :32] = 0
    w[1, 32:64] = torch.tensor([0.5, -0.5] * 16)
    w[2, 64:96] = 1e-7 * torch.randn(32, generator=g)
    w[3] = 0
    w[4, :32] = -0.3
    w[5, 32:48] = 0.2
    w[6, 96:128] = -torch.rand(32, generator=g)
    w[7, 128:160] = torch.rand(32, generator=g) + 0.5
    return w


@pytest.mark.parametrize("name", NAMES)
def test_layout_sizes_and_roundtrip(name):
    t = grid_type(name)
    assert GGML_QUANT_SIZES[GGMLQuantizationType[name]] == (t.block, t.block_bytes)
    q = quantize(weights(), t)
    raw = pack(q)
    assert raw.shape == (48, 256 // t.block * t.block_bytes)
    back = unpack(raw, t, 256)
    for field in ("codes", "d", "m", "scales", "mins"):
        a, b = getattr(back, field), getattr(q, field)
        assert (a is None) == (b is None) and (a is None or torch.equal(a.view(torch.uint8), b.view(torch.uint8))), field


@pytest.mark.parametrize("name", NAMES)
def test_gguf_reader_decodes_to_slmkit_floats(name):
    t = grid_type(name)
    q = quantize(weights(seed=1), t)
    theirs = gguf_dequantize(pack(q).numpy(), GGMLQuantizationType[name])
    assert np.array_equal(theirs.view(np.int32), dequantize(q).numpy().view(np.int32))


@pytest.mark.parametrize("name", NAMES)
def test_bytes_equal_llama_cpp_plain(name):
    t = grid_type(name)
    w = weights(seed=2)
    theirs = ggml_quantize(w.numpy(), t.ggml_id, t.block_bytes, t.block)
    assert np.array_equal(pack(quantize(w, t)).numpy(), theirs)


@pytest.mark.parametrize("name", ["Q4_0", "Q5_0", "Q8_0", "Q4_K", "Q5_K", "Q6_K"])
def test_bytes_equal_llama_cpp_importance(name):
    t = grid_type(name)
    w = weights(rows=16, seed=3)
    imp = torch.rand(256, generator=torch.Generator().manual_seed(4)) ** 4 + 1e-3
    theirs = ggml_quantize(w.numpy(), t.ggml_id, t.block_bytes, t.block, imp.numpy())
    mine = pack(quantize(w, t, imp)).numpy()
    assert np.array_equal(mine, theirs)
    if name != "Q8_0":  # the importance search changes the rounding
        assert not np.array_equal(mine, pack(quantize(w, t)).numpy())


def test_errors_name_tensor_and_fitting_type():
    with pytest.raises(SlmError, match="Q4_0, Q4_1"):
        grid_type("Q3_X")
    with pytest.raises(SlmError, match="blk.0.ffn_down.weight has rows of 48 .* keep it F16"):
        check_rows("blk.0.ffn_down.weight", 48, grid_type("Q4_0"))
    check_rows("blk.0.ffn_down.weight", 96, grid_type("Q4_0"))
