"""The codec registry (torch-free, so recipes validate fast): every on-disk layout slmkit reads and
writes is one module of slmkit/layouts/, and every output format a user names maps onto them.

A codec module has NAME, `detect(path) -> bool`, `save(model, tokenizer, path)` and
`load(path, dtype) -> (model, tokenizer)`.
"""

from __future__ import annotations

# Loading asks the codecs in this order; `hf` comes last because it claims any folder with a config.json.
CODECS: dict[str, str] = {
    "low_rank": "slmkit.layouts.low_rank",
    "pack_quantized": "slmkit.layouts.pack_quantized",
    "sparse_bitmask": "slmkit.layouts.sparse_bitmask",
    "gguf": "slmkit.layouts.gguf",
    "hf": "slmkit.layouts.hf",
}
# File types `slm export --format gguf` writes (llama-quantize's, plus the pure K-grid mixes Q4_K and Q5_K)
GGUF_TYPES = ("F32", "F16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",
              "Q4_K", "Q5_K")

# The formats a recipe's `save:` and the CLI name, and what each writes.
SAVE_FORMATS: dict[str, str] = {
    "hf": "a Hugging Face folder (factorized models keep their factors, in the low_rank layout)",
    "hf_merged": "a plain Hugging Face folder, low-rank factors multiplied back",
    "compressed-tensors": "compressed-tensors (vLLM): packed integer weights, or the sparse bitmask of a pruned model",
    "gguf": "one GGUF file (llama.cpp) model.gguf: layers on a ggml grid (--gguf-type) written as they are, "
            "other tensors typed as llama-quantize types them; a float model in F16",
}
