"""Which ggml type each GGUF tensor gets for a file type, by llama-quantize's rules (src/llama-quant.cpp).

For the 32-block file types: vectors (norms, biases) stay F32; the output matrix, and the token
embedding when it doubles as the output (tied), get Q6_K unless the file type is Q8_0, falling back
to Q8_0 when their rows are not a multiple of 256; with an importance matrix, Q4_0/Q5_0 files
keep the first eighth of the ffn_down layers on Q4_1/Q5_1; a matrix whose rows do not fit 32-wide
blocks falls back to F16.
"""

from __future__ import annotations

from slmkit.errors import SlmError
from slmkit.ggml.types import GRID_TYPES

FILE_TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0")  # the llama-quantize file types built so far


def tensor_type(name: str, shape: tuple[int, ...], ftype: str, n_layer: int, tied: bool, importance: bool) -> str:
    """The ggml type name llama-quantize gives tensor `name` (GGUF naming) of `shape` ([rows, cols]) in file type ftype."""
    if ftype in ("F32", "F16"):
        return "F32" if len(shape) == 1 else ftype
    if ftype not in FILE_TYPES:
        raise SlmError(f"--type {ftype}: not a GGUF file type slmkit writes (choose one of: F32, F16, {', '.join(FILE_TYPES)})")
    if len(shape) == 1:
        return "F32"
    cols = shape[-1]
    kind = ftype
    if name == "output.weight" or (tied and name == "token_embd.weight"):
        kind = "Q8_0" if ftype == "Q8_0" or cols % 256 else "Q6_K"
    elif importance and ftype in ("Q4_0", "Q5_0") and name.endswith("ffn_down.weight"):
        layer = int(name.split(".")[1])
        if layer < n_layer // 8:
            kind = "Q4_1" if ftype == "Q4_0" else "Q5_1"
    if kind == "Q6_K":
        raise SlmError(f"tensor {name} would be Q6_K in a {ftype} file (rows of {cols}), and Q6_K is not built yet: "
                       "use --type Q8_0 or a model whose width is not a multiple of 256")
    return kind if cols % GRID_TYPES[kind].block == 0 else "F16"
