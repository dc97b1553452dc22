"""Which ggml type each GGUF tensor gets for a file type, by llama-quantize's rules (src/llama-quant.cpp).

Vectors (norms, biases) stay F32. The output matrix, and the token embedding when it doubles as
the output (tied), get Q6_K unless the file type is Q8_0 (Q8_0 when their rows do not hold whole
blocks of the file's base type). The K mixes raise some layers (`use_more_bits`: the first and last
eighth and every third layer between): Q4_K_M and Q5_K_M put those layers' attn_v and ffn_down on
Q6_K; Q4_K_S puts attn_v of the first four layers and ffn_down of the first eighth on Q5_K. With an
importance matrix, Q4_0/Q5_0 files keep the first eighth of the ffn_down layers on Q4_1/Q5_1.
A K type whose rows are not a multiple of 256 falls back (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0),
and a matrix whose rows do not fit 32-wide blocks to F16.

The plain K grid names Q4_K and Q5_K also name a mix: every matrix on that grid, output as above
(Q5_K is then llama-quantize's Q5_K_S; a Q4_K file carries the Q4_K_S tag).
"""

from __future__ import annotations

from slmkit.errors import SlmError
from slmkit.ggml.types import GRID_TYPES

FILE_TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K")
BASE = {"Q4_K_S": "Q4_K", "Q4_K_M": "Q4_K", "Q5_K_S": "Q5_K", "Q5_K_M": "Q5_K", "Q4_K": "Q4_K", "Q5_K": "Q5_K"}
TAG = {"Q4_K": "Q4_K_S", "Q5_K": "Q5_K_S"}  # the file-type tag a pure K-grid file carries
MIXES = FILE_TYPES + tuple(TAG)  # every name tensor_type accepts besides F32/F16
K_MIXES = ("Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M")  # the file types a quantization step can round for (--gguf-type)
FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}  # tensor_type_fallback for rows not a multiple of 256


def use_more_bits(layer: int, n_layer: int) -> bool:
    """llama-quantize's choice of layers that get more bits in the _M mixes."""
    return layer < n_layer // 8 or layer >= 7 * n_layer // 8 or (layer - n_layer // 8) % 3 == 2


def _by_rules(name: str, cols: int, ftype: str, n_layer: int, tied: bool, importance: bool) -> str:
    """llama_tensor_get_type_impl for the tensors of llama-family models, before the shape fallback."""
    base = BASE.get(ftype, ftype)
    if name == "output.weight" or (tied and name == "token_embd.weight"):
        return "Q8_0" if base == "Q8_0" or cols % GRID_TYPES[base].block else "Q6_K"
    if not name.startswith("blk."):
        return base
    layer = int(name.split(".")[1])
    if name.endswith(("attn_v.weight", "ffn_down.weight")) and ftype in ("Q4_K_M", "Q5_K_M"):
        return "Q6_K" if use_more_bits(layer, n_layer) else base
    if ftype == "Q4_K_S":
        if (name.endswith("attn_v.weight") and layer < 4) or (name.endswith("ffn_down.weight") and layer < n_layer // 8):
            return "Q5_K"
    if importance and ftype in ("Q4_0", "Q5_0") and name.endswith("ffn_down.weight") and layer < n_layer // 8:
        return "Q4_1" if ftype == "Q4_0" else "Q5_1"
    return base


def tensor_type(name: str, shape: tuple[int, ...], ftype: str, n_layer: int, tied: bool, importance: bool) -> str:
    """The ggml type name llama-quantize gives tensor `name` (GGUF naming) of `shape` ([rows, cols]) in file type ftype."""
    if ftype in ("F32", "F16"):
        return "F32" if len(shape) == 1 else ftype
    if ftype not in MIXES:
        raise SlmError(f"--type {ftype}: not a GGUF file type slmkit writes (choose one of: F32, F16, {', '.join(MIXES)})")
    if len(shape) == 1:
        return "F32"
    cols = shape[-1]
    kind = _by_rules(name, cols, ftype, n_layer, tied, importance)
    if cols % GRID_TYPES[kind].block:
        kind = FALLBACK.get(kind, kind)
    return kind if cols % GRID_TYPES[kind].block == 0 else "F16"


def decoder_name(path: str) -> str:
    """The GGUF name of a decoder Linear given its module path (…layers.<i>.self_attn.q_proj -> blk.<i>.attn_q.weight)."""
    parts = path.split(".")
    names = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
             "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
    if "layers" not in parts or parts[-1] not in names:
        raise SlmError(f"no GGUF name for decoder Linear {path} (supported: {', '.join(names)})")
    return f"blk.{parts[parts.index('layers') + 1]}.{names[parts[-1]]}.weight"
