"""Layer offload: keep decoder layers on disk so calibration needs memory for one layer only.

`load_skeleton` builds a model whose decoder-layer parameters are on the meta device (no
memory) and whose other parts (embeddings, final norm, LM head, rotary buffers) are
memory-mapped from the folder's safetensors, so their pages are read only where used. The
layer-wise engine (or a step's own loop over layers) calls `LayerOffload.load` before each
layer and `release` after it: the changed layer is written to the output folder and its
parameters go back to meta. `finish` completes the output as a plain Hugging Face folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from accelerate.utils import set_module_tensor_to_device
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from slmkit import layouts
from slmkit.anatomy import anatomy_of
from slmkit.errors import SlmError
from slmkit.layouts.common import auto_config, auto_tokenizer, empty_model, unique_tensors
from slmkit.memory import return_freed_memory

REST = "model-rest.safetensors"


def tensor_files(folder: Path) -> dict[str, Path]:
    """Tensor name -> safetensors file, for single-file and sharded checkpoints."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return {k: folder / v for k, v in json.loads(index.read_text())["weight_map"].items()}
    single = folder / "model.safetensors"
    if not single.is_file():
        raise SlmError(f"layer offload needs safetensors weights; none found in {folder}")
    with safe_open(str(single), framework="pt") as f:
        return {k: single for k in f.keys()}


def read_tensors(files: dict[str, Path], names: list[str]) -> dict[str, torch.Tensor]:
    by_file: dict[Path, list[str]] = {}
    for name in names:
        by_file.setdefault(files[name], []).append(name)
    out = {}
    for path, keys in by_file.items():
        with safe_open(str(path), framework="pt") as f:
            out.update({k: f.get_tensor(k) for k in keys})
    return out


def load_skeleton(folder: str | Path, dtype: torch.dtype = torch.float32) -> nn.Module:
    """The model of `folder` with everything but the decoder layers' parameters in memory."""
    folder = Path(folder)
    if layouts.detect(folder).NAME != "hf":
        raise SlmError(f"layer offload reads plain Hugging Face folders; {folder} holds a compressed or factorized model")
    model = empty_model(auto_config(folder), dtype)
    layers = anatomy_of(model).layers + "."
    files = tensor_files(folder)
    names = [n for n, _ in model.named_parameters() if not n.startswith(layers) and n in files]
    for name, tensor in read_tensors(files, names).items():
        set_module_tensor_to_device(model, name, "cpu", value=tensor.to(dtype))
    model.tie_weights()
    missing = [n for n, p in model.named_parameters() if p.device.type == "meta" and not n.startswith(layers)]
    if missing:
        raise SlmError(f"{folder} lacks weights for {', '.join(missing[:3])}")
    return model.eval()


class LayerOffload:
    """Loads decoder layer i from disk before the engine processes it; writes it to `out` and frees it after."""

    def __init__(self, model: nn.Module, source: str | Path, out: str | Path) -> None:
        self.source, self.out = Path(source), Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.prefix = anatomy_of(model).layers
        self.files = tensor_files(self.source)
        self.dtype = next(p.dtype for p in model.parameters() if p.device.type != "meta")

    def layer_file(self, index: int) -> Path:
        return self.out / f"model-layer-{index:05d}.safetensors"

    def load(self, index: int, layer: nn.Module) -> None:
        names = [f"{self.prefix}.{index}.{n}" for n, _ in layer.named_parameters()]
        written = self.layer_file(index)
        if written.is_file():  # a later pass (e.g. after OWL's measuring pass) sees the latest weights
            tensors = read_tensors({n: written for n in names}, names)
        else:
            tensors = read_tensors(self.files, names)
        for (name, _), full in zip(list(layer.named_parameters()), names):
            set_module_tensor_to_device(layer, name, "cpu", value=tensors[full].to(self.dtype))

    def release(self, index: int, layer: nn.Module) -> None:
        state = {f"{self.prefix}.{index}.{n}": p.detach().contiguous() for n, p in layer.named_parameters()}
        save_file(state, str(self.layer_file(index)), metadata={"format": "pt"})
        for name, _ in list(layer.named_parameters()):
            set_module_tensor_to_device(layer, name, "meta")
        return_freed_memory()

    def finish(self, model: nn.Module, tokenizer=None) -> Path:
        """Write the non-layer weights, the shard index and config: `out` then loads with from_pretrained."""
        layers = self.prefix + "."
        named = unique_tensors(dict(model.named_parameters()))
        rest = {name: p.detach().contiguous() for name, p in named.items() if not name.startswith(layers)}
        save_file(rest, str(self.out / REST), metadata={"format": "pt"})
        weight_map = {k: REST for k in rest}
        for path in sorted(self.out.glob("model-layer-*.safetensors")):
            with safe_open(str(path), framework="pt") as f:
                weight_map.update({k: path.name for k in f.keys()})
        (self.out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=1))
        model.config.save_pretrained(self.out)
        if tokenizer is not None:
            tokenizer.save_pretrained(self.out)
        return self.out


def compress_offloaded(source: str | Path, out: str | Path, method: str, options, context, show_progress: bool = True,
                       dtype: torch.dtype = torch.float32) -> Path:
    """Run a pruning step with layers kept on disk; `out` becomes a plain HF folder."""
    from slmkit.steps import get_step, offload_steps

    step = get_step(method)
    if not step.can_offload:
        raise SlmError(f"'{method}' cannot run with layer offload (steps that can: {', '.join(offload_steps())})")
    model = load_skeleton(source, dtype)
    tokenizer = auto_tokenizer(source)
    if context.tokenizer is None:
        context.tokenizer = tokenizer
    offload = LayerOffload(model, source, out)
    step.function()(model, tokenizer, step.options.model_validate(options) if isinstance(options, dict) else options,
                    context, show_progress=show_progress, offload=offload)
    return offload.finish(model, tokenizer)
