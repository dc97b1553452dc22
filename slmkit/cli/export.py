"""`slm export MODEL --format gguf|compressed-tensors --out PATH`: write a model for another runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slmkit.cli import app
from slmkit.cli.flags import OVERWRITE, parse_options
from slmkit.errors import SlmError
from slmkit.formats import GGUF_TYPES
from slmkit.models.source import resolve_model
from slmkit.outputs import check_target

EXPORT_FORMATS = ("gguf", "compressed-tensors")


@app.command("export")
def export_command(
    model: str = typer.Argument(..., help="Embedded name, HF folder, .gguf file or hub id."),
    format: str = typer.Option(..., "--format", "-f", help="gguf or compressed-tensors."),
    out: Path = typer.Option(..., "--out", "-o", help="A .gguf file, or a folder for compressed-tensors."),
    type: Optional[str] = typer.Option(None, "--type", help=f"GGUF file type: {', '.join(GGUF_TYPES)} (default: the grid "
                                       "the model was quantized on, else Q8_0). Tensors get llama-quantize's types."),
    requantize: bool = typer.Option(False, "--requantize", help="GGUF: allow re-rounding layers already on another ggml grid."),
    bits: int = typer.Option(8, "--bits", help="compressed-tensors of a float model: RTN to this many bits first."),
    group_size: int = typer.Option(-1, "--group-size", help="RTN group size (default: 64 below 8 bits, else per channel)."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Export a model: GGUF for llama.cpp, or compressed-tensors for vLLM (float models are RTN-quantized first)."""
    from slmkit.compress.quant.options import RTNOptions

    if format not in EXPORT_FORMATS:
        raise SlmError(f"--format: unknown export format '{format}' (valid: {', '.join(EXPORT_FORMATS)})")
    resolve_model(model)
    if format == "gguf":
        check_target(out, overwrite, file=True)
        if type and type.upper() not in GGUF_TYPES:
            raise SlmError(f"--type: unknown GGUF type '{type}' (valid: {', '.join(GGUF_TYPES)})")
    else:
        check_target(out, overwrite)
        rtn = parse_options(RTNOptions, {"bits": bits, "group_size": None if group_size == -1 else group_size})
    from slmkit.models.loading import load
    from slmkit.modules.quant_linear import QuantLinear
    from slmkit.outputs import atomic_file

    net, tokenizer = load(model)
    if format == "gguf":
        from slmkit.layouts import gguf

        with atomic_file(out, overwrite) as tmp:
            gguf.save(net, tokenizer, tmp, (type or gguf.model_grid(net) or "Q8_0").upper(), requantize=requantize)
        path = out
    else:
        from slmkit.models.saving import save

        if not any(isinstance(m, QuantLinear) for m in net.modules()):
            from slmkit.compress.quant.rtn import rtn_quantize

            net = rtn_quantize(net, tokenizer, rtn)
        path = save(net, tokenizer, out, format="compressed-tensors", manifest={"source": model, "exported": True},
                    overwrite=overwrite)
    size = path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.iterdir())
    typer.echo(f"wrote {path} ({size / 1e6:.1f} MB)")
