"""The GGUF layout (llama.cpp, Ollama): one file holding the tokenizer, the config and every tensor.

Saving writes F32, F16 or a llama-quantize file type (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K_S, Q4_K_M,
Q5_K_S, Q5_K_M, Q6_K): each tensor gets llama-quantize's type (slmkit/ggml/mix.py) and is rounded
by slmkit/ggml/rtn.py, which reproduces llama.cpp's quantizers byte for byte, then written raw. Loading converts the file once
through transformers' GGUF support into a cached safetensors folder (later loads take seconds).

Weights are renamed with gguf's tensor-name map and, for Llama-family attention, q/k rows are
reordered the way llama.cpp's rotary embedding expects (the inverse of what transformers undoes
when it reads GGUF). Norms and biases stay float32; a 2-D weight whose rows are not a multiple
of the 32-wide quantization block is written as F16. Packed QuantLinear layers are dequantized
first; GgmlLinear layers (already on a ggml grid) are written raw, byte for byte. The tokenizer (byte-level BPE) is embedded, so the file is self-contained.
Supported families: llama (incl. SmolLM), mistral, qwen2.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from slmkit.cache import cache_dir
from slmkit.errors import SlmError
from slmkit.formats import GGUF_TYPES as TYPES
from slmkit.ggml.blocks import GridTensor, dequantize, pack
from slmkit.ggml.mix import TAG, tensor_type
from slmkit.layouts import hf
from slmkit.layouts.common import auto_tokenizer, first_line
from slmkit.modules.ggml_linear import GgmlLinear
from slmkit.modules.quant_linear import QuantLinear

NAME = "gguf"
MAGIC = b"GGUF"

ARCHS = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2"}
PERMUTES_QK = {"llama", "mistral"}


def permute_rotary(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Interleave the two rotary halves of each head (HF layout → llama.cpp layout)."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def float_state_dict(model) -> dict[str, torch.Tensor | GridTensor]:
    """The model's weights as float tensors, packed quantized layers dequantized; ggml-grid layers as their blocks."""
    quantized = {name: m for name, m in model.named_modules() if isinstance(m, (QuantLinear, GgmlLinear))}
    state = {name: t for name, t in model.state_dict().items() if name.rpartition(".")[0] not in quantized}
    for name, module in quantized.items():
        grid = isinstance(module, GgmlLinear)
        state[f"{name}.weight"] = module.grid() if grid else module.dequantized_weight()
        if module.bias is not None:
            state[f"{name}.bias"] = module.bias
    return {k: v if isinstance(v, GridTensor) else v.detach().float() for k, v in state.items()}


def permute_rows(tensor, heads: int):
    """permute_rotary for a float tensor or, exactly, for a grid tensor's rows of blocks."""
    if not isinstance(tensor, GridTensor):
        return permute_rotary(tensor, heads)
    return tensor.map_rows(lambda x: permute_rotary(x, heads))


def grid_data(name: str, grid: GridTensor, kind: str, requantize: bool):
    """(bytes, type) of a tensor already on a ggml grid: written as it is, or re-rounded only when allowed."""
    import gguf

    if grid.type.name == kind:
        return pack(grid).numpy(), gguf.GGMLQuantizationType[kind]
    if not requantize:
        raise SlmError(f"tensor {name} is quantized on the {grid.type.name} grid and a {kind} tensor was asked: writing it "
                       f"would re-round its weights (export with --type {grid.type.name}, or pass --requantize to allow it)")
    return tensor_data(dequantize(grid), kind)


def add_tokenizer(writer, tokenizer, vocab_size: int) -> None:
    import gguf

    spec = json.loads(tokenizer.backend_tokenizer.to_str()) if hasattr(tokenizer, "backend_tokenizer") else {}
    model = spec.get("model", {})
    if model.get("type") != "BPE":
        raise SlmError("GGUF export supports byte-level BPE tokenizers only (this one is "
                       f"{model.get('type', type(tokenizer).__name__)})")
    id_to_token = {i: t for t, i in tokenizer.get_vocab().items()}
    special = set(tokenizer.all_special_ids) | {t["id"] for t in spec.get("added_tokens", []) if t.get("special")}
    tokens, types = [], []
    for i in range(vocab_size):
        tokens.append(id_to_token.get(i, f"[PAD{i}]"))
        types.append(gguf.TokenType.CONTROL if i in special else
                     gguf.TokenType.NORMAL if i in id_to_token else gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for kind in ("bos", "eos", "pad"):
        token_id = getattr(tokenizer, f"{kind}_token_id", None)
        if token_id is not None:
            getattr(writer, f"add_{kind}_token_id")(token_id)
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)


def tensor_data(tensor: torch.Tensor, qtype_name: str):
    """(array, raw GGML type) for one tensor of a known ggml type name: floats as they are, grids as slmkit's packed bytes."""
    import gguf

    from slmkit.ggml.rtn import quantize
    from slmkit.ggml.types import GRID_TYPES

    qtype = gguf.GGMLQuantizationType[qtype_name]
    if qtype_name == "F32":
        return tensor.numpy().astype(np.float32), qtype
    if qtype_name == "F16":
        return tensor.numpy().astype(np.float16), qtype
    return pack(quantize(tensor, GRID_TYPES[qtype_name])).numpy(), qtype


GRIDS_KEY = "slmkit.ggml_grids"
FILE = "model.gguf"  # the file's name inside an output folder (format gguf of a recipe or `slm compress`)


def model_grid(model) -> str | None:
    """The file type the model's grid layers imply (None for a float model): the grid they share, or the
    llama-quantize mix that gives every grid layer its type; an error if no mix does."""
    from slmkit.anatomy import decoder_linears
    from slmkit.ggml.mix import FILE_TYPES, MIXES, decoder_name

    grids = {decoder_name(p): m for p, m in decoder_linears(model).items() if isinstance(m, GgmlLinear)}
    kinds = {m.gguf_type for m in grids.values()}
    if len(kinds) == 1 and next(iter(kinds)) in MIXES:
        return kinds.pop()
    n_layer, tied = model.config.num_hidden_layers, getattr(model.config, "tie_word_embeddings", False)
    for ftype in FILE_TYPES if kinds else ():
        if all(tensor_type(n, (m.out_features, m.in_features), ftype, n_layer, tied, False) == m.gguf_type
               for n, m in grids.items()):
            return ftype
    if kinds:
        raise SlmError(f"the model mixes ggml grids ({', '.join(sorted(kinds))}) as no llama-quantize file type does; "
                       "export with --type and --requantize")
    return None


def check_config(config, qtype: str) -> str:
    """The GGUF architecture of a config, or a one-line error for what GGUF export does not support."""
    family = config.model_type
    if family not in ARCHS:
        raise SlmError(f"GGUF export does not support '{family}' models (supported: {', '.join(sorted(ARCHS))})")
    if qtype not in TYPES:
        raise SlmError(f"unknown GGUF type '{qtype}' (valid: {', '.join(TYPES)})")
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") not in ("default", None):
        raise SlmError(f"GGUF export supports plain rotary embeddings only (this model uses {rope['rope_type']})")
    return ARCHS[family]


def add_metadata(writer, config, tokenizer, qtype: str, grids: bool) -> None:
    """The file's key-value metadata: the config llama.cpp reads, the file type and the tokenizer."""
    import gguf

    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    rope = getattr(config, "rope_parameters", None) or {}
    rope_theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    writer.add_name(getattr(config, "_name_or_path", "") or config.model_type)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope_theta))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    tag = TAG.get(qtype, qtype)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if qtype == "F32" else gguf.LlamaFileType[f"MOSTLY_{tag}"])
    add_tokenizer(writer, tokenizer, config.vocab_size)
    if grids:  # tells slmkit's loader that these blocks are the model (restore_grids), not a float source
        writer.add_bool(GRIDS_KEY, True)


@torch.no_grad()
def save(model, tokenizer, path: Path, qtype: str | None = None, requantize: bool = False) -> Path:
    """Write `model` (and its tokenizer) to one GGUF file at `path` (a folder: its model.gguf).

    The file type defaults to the model's own grid, else F16."""
    import gguf

    if path.is_dir():
        path = path / FILE
    qtype = (qtype or model_grid(model) or "F16").upper()

    config = model.config
    arch = check_config(config, qtype)
    writer = gguf.GGUFWriter(str(path), arch)
    add_metadata(writer, config, tokenizer, qtype, grids=bool(model_grid(model)))
    add_tensors(writer, model, arch, qtype, requantize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def gguf_name(names, name: str, tied: bool) -> str | None:
    """The GGUF name of a model tensor, None for those the file leaves out (a tied LM head, rotary tables)."""
    if name == "lm_head.weight" and tied:
        return None
    new_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
    if new_name is None and not name.endswith("rotary_emb.inv_freq"):
        raise SlmError(f"GGUF export: no GGUF name for tensor {name}")
    return new_name


def add_tensors(writer, model, arch: str, qtype: str, requantize: bool) -> None:
    """Every tensor under its GGUF name and llama-quantize's type for `qtype`; grid layers raw."""
    import gguf

    config = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], config.num_hidden_layers)
    tied = getattr(config, "tie_word_embeddings", False)
    for name, tensor in float_state_dict(model).items():
        new_name = gguf_name(names, name, tied)
        if new_name is None:
            continue
        if config.model_type in PERMUTES_QK and name.endswith(("q_proj.weight", "k_proj.weight")):
            q = name.endswith("q_proj.weight")
            tensor = permute_rows(tensor, config.num_attention_heads if q else config.num_key_value_heads)
        kind = tensor_type(new_name, tuple(tensor.shape), qtype, config.num_hidden_layers, tied, importance=False)
        grid = isinstance(tensor, GridTensor)
        data, raw = grid_data(new_name, tensor, kind, requantize) if grid else tensor_data(tensor, kind)
        writer.add_tensor(new_name, data, raw_dtype=raw)


def detect(path: Path) -> bool:
    if path.is_dir() and not (path / "config.json").exists():
        path = path / FILE
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(4) == MAGIC


def load(path: Path, dtype: str = "float32", name: str | None = None):
    """(model, tokenizer) of a GGUF file (or a folder holding model.gguf), through its cached float folder;
    decoder Linears stored on a ggml grid come back as GgmlLinear holding the file's exact blocks."""
    path = path / FILE if path.is_dir() else path
    model, tokenizer = hf.load(to_folder(path, name), dtype)
    restore_grids(model, path)
    return model, tokenizer


def restore_grids(model, path: Path) -> None:
    """Replace each decoder Linear whose GGUF tensor is on a ggml grid by a GgmlLinear of its raw blocks.

    Only in files slmkit quantized onto a grid (GRIDS_KEY): other GGUF files (the embedded model's
    Q4_1 among them) are sources to compress and load as plain float Linears."""
    import gguf

    from slmkit.anatomy import decoder_linears
    from slmkit.ggml.blocks import unpack
    from slmkit.ggml.types import GRID_TYPES
    from slmkit.modules.ggml_linear import replace_with_ggml

    config = model.config
    arch = ARCHS.get(config.model_type)
    if arch is None:
        return
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], config.num_hidden_layers)
    reader = gguf.GGUFReader(path)
    if GRIDS_KEY not in reader.fields:
        return
    tensors = {t.name: t for t in reader.tensors}
    for hf_name in decoder_linears(model):
        t = tensors.get(names.get_name(f"{hf_name}.weight", try_suffixes=(".weight",)) or "")
        if t is None or t.tensor_type.name not in GRID_TYPES:
            continue
        raw = torch.from_numpy(np.ascontiguousarray(t.data).view(np.uint8).copy())
        grid = unpack(raw, GRID_TYPES[t.tensor_type.name], int(t.shape[0]))
        if config.model_type in PERMUTES_QK and hf_name.endswith(("q_proj", "k_proj")):
            grid = unpermute_rows(grid, config.num_attention_heads if hf_name.endswith("q_proj") else config.num_key_value_heads)
        replace_with_ggml(model, hf_name, grid)


def unpermute_rows(grid: GridTensor, heads: int) -> GridTensor:
    """The inverse of permute_rows on a grid tensor."""
    def back(x):
        return x.reshape(heads, x.shape[0] // heads // 2, 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)
    return grid.map_rows(back)


def to_folder(path: Path, name: str | None = None) -> Path:
    """Convert a GGUF file to a cached fp32 safetensors folder once; return the folder."""
    from transformers import AutoModelForCausalLM

    from slmkit.layouts.gguf_header import check_loadable

    check_loadable(path)
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir("models", f"{name or path.stem}-{key}")
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        try:
            tokenizer = auto_tokenizer(path.parent, gguf_file=path.name)
            gguf_model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32,
                                                              trust_remote_code=False)
        except Exception as err:  # transformers raises many kinds on a corrupt or unsupported GGUF
            raise SlmError(f"could not read GGUF file {path}: {first_line(err)}") from err
        # A GGUF-loaded model refuses save_pretrained: rebuild a plain one from its config and weights.
        config = gguf_model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        with torch.device("meta"):
            plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32, trust_remote_code=False)
        plain.load_state_dict(gguf_model.state_dict(), assign=True)
        plain.tie_weights()
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "slmkit-source.json").write_text(json.dumps({"gguf": str(path.resolve())}, indent=1))
        os.replace(tmp, target) if not target.exists() else shutil.rmtree(tmp)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def file_bytes(config, tokenizer, shapes: dict[str, tuple[int, ...]], qtype: str) -> int:
    """The exact size of the file `save` writes for a float model with these tensors ({HF name: shape},
    in state-dict order): gguf's own writer lays out the header, metadata and tensor infos in a
    scratch file (no tensor data), then each tensor's data is padded to the file's alignment."""
    import gguf

    arch = check_config(config, qtype)
    writer = gguf.GGUFWriter(None, arch)
    add_metadata(writer, config, tokenizer, qtype, grids=False)
    data = 0
    for name, shape, kind in planned_tensors(config, shapes, qtype):
        block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[kind]]
        nbytes = int(np.prod(shape)) // block * size
        writer.add_tensor_info(name, shape, np.dtype(np.float32), nbytes, raw_dtype=gguf.GGMLQuantizationType[kind])
        data += gguf.GGUFWriter.ggml_pad(nbytes, writer.data_alignment)
    with tempfile.TemporaryDirectory() as scratch:
        header = Path(scratch) / FILE
        writer.write_header_to_file(header)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        writer.close()
        head = header.stat().st_size
    return gguf.GGUFWriter.ggml_pad(head, writer.data_alignment) + data


NAMED_BLOCKS = 256  # one cached name map serves every depth up to this


@functools.lru_cache(maxsize=4)
def name_map(arch: str, blocks: int):
    """gguf's HF-to-GGUF tensor-name map for an architecture (slow to build, so built once)."""
    import gguf

    return gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], blocks)


def planned_tensors(config, shapes: dict[str, tuple[int, ...]], qtype: str) -> list[tuple[str, tuple[int, ...], str]]:
    """(GGUF name, shape, ggml type) of each tensor `add_tensors` writes for a float model, in file order."""

    names = name_map(ARCHS[config.model_type], max(config.num_hidden_layers, NAMED_BLOCKS))
    tied = getattr(config, "tie_word_embeddings", False)
    planned = []
    for name, shape in shapes.items():
        new_name = gguf_name(names, name, tied)
        if new_name is not None:
            planned.append((new_name, shape, tensor_type(new_name, shape, qtype, config.num_hidden_layers, tied, importance=False)))
    return planned
