"""`slm export MODEL --format gguf|compressed-tensors --out PATH`: write a model for another runtime."""

from __future__ import annotations

from pathlib import Path

import typer

from slmkit.cli import app
from slmkit.errors import SlmError

EXPORT_FORMATS = ("gguf", "compressed-tensors")


@app.command("export")
def export_command(
    model: str = typer.Argument(..., help="Embedded name, HF folder, .gguf file or hub id."),
    format: str = typer.Option(..., "--format", "-f", help="gguf or compressed-tensors."),
    out: Path = typer.Option(..., "--out", "-o", help="A .gguf file, or a folder for compressed-tensors."),
    type: str = typer.Option("Q8_0", "--type", help="GGUF tensor type: F32, F16, Q8_0 or Q4_0."),
    bits: int = typer.Option(8, "--bits", help="compressed-tensors of a float model: RTN to this many bits first."),
    group_size: int = typer.Option(-1, "--group-size", help="RTN group size (default: 64 below 8 bits, else per channel)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out even if slmkit did not write it."),
) -> None:
    """Export a model: GGUF for llama.cpp, or compressed-tensors for vLLM (float models are RTN-quantized first)."""
    from slmkit.models.loading import load
    from slmkit.modules.quant_linear import QuantLinear
    from slmkit.outputs import atomic_file, check_target

    if format not in EXPORT_FORMATS:
        raise SlmError(f"unknown export format '{format}' (valid: {', '.join(EXPORT_FORMATS)})")
    check_target(out, overwrite)
    net, tokenizer = load(model)
    if format == "gguf":
        from slmkit.layouts import gguf

        with atomic_file(out, overwrite) as tmp:
            gguf.save(net, tokenizer, tmp, type.upper())
        path = out
    else:
        from slmkit.models.saving import save

        if not any(isinstance(m, QuantLinear) for m in net.modules()):
            from slmkit.compress.quant.options import RTNOptions
            from slmkit.compress.quant.rtn import rtn_quantize

            options = RTNOptions(bits=bits, group_size=None if group_size < 0 else group_size)
            net = rtn_quantize(net, tokenizer, options)
        path = save(net, tokenizer, out, format="compressed-tensors", manifest={"source": model, "exported": True},
                    overwrite=overwrite)
    size = path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.iterdir())
    typer.echo(f"wrote {path} ({size / 1e6:.1f} MB)")
