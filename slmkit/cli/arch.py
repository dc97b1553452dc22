"""`slm init ARCH --out DIR` (a randomly initialised preset) and `slm size MODEL|ARCH` (the budget calculator)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from slmkit.arch.options import InitOptions, SizeOptions
from slmkit.arch.presets import PRESETS, ShapeOptions, check_arch, count_params, resolve_shape
from slmkit.cli import app
from slmkit.cli.flags import OVERWRITE, parse_options, with_options
from slmkit.errors import SlmError
from slmkit.outputs import check_target

ARCH_HELP = f"Architecture preset: {', '.join(PRESETS)}."


def shape_line(shape) -> str:
    embedding, non_embedding = count_params(shape)
    return (f"{shape.layers} layers x {shape.hidden}, {shape.heads} heads / {shape.kv_heads} KV heads of {shape.head_dim}, "
            f"MLP {shape.intermediate} ({shape.activation}), vocabulary {shape.vocab_size:,}, context {shape.context:,}, "
            f"{'tied' if shape.tied else 'untied'}: {embedding + non_embedding:,} parameters "
            f"({embedding:,} embedding, {non_embedding:,} non-embedding)")


def init_tokenizer(options: InitOptions, vocab_size: int):
    from slmkit.arch.build import reuse_tokenizer, train_tokenizer
    from slmkit.arch.size import DEFAULT_TOKENIZER

    if options.train_tokenizer:
        return train_tokenizer(options.train_tokenizer, options.vocab_size or vocab_size, options.text_field)
    return reuse_tokenizer(options.tokenizer or DEFAULT_TOKENIZER)


@app.command("init")
@with_options(InitOptions)
def init_command(
    arch: str = typer.Argument(..., metavar="ARCH", help=ARCH_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Output model folder (written atomically)."),
    overwrite: bool = OVERWRITE,
    given: dict = None,
) -> None:
    """A randomly initialised preset (a plain Llama model) with its tokenizer, ready for `slm pretrain`."""
    options = parse_options(InitOptions, given, init_command.flags)
    estimate = resolve_shape(arch, options)  # every shape error before the tokenizer loads or trains
    check_target(out, overwrite)
    if options.tokenizer:
        from slmkit.checks import check_model

        check_model("--tokenizer", options.tokenizer)
    from slmkit.arch.build import init_model, write_init

    tokenizer = init_tokenizer(options, estimate.vocab_size)
    shape = resolve_shape(arch, options, vocab_size=len(tokenizer))
    model = init_model(shape, tokenizer, options.seed)
    tokenizer_source = options.train_tokenizer and f"trained on {options.train_tokenizer}" or options.tokenizer or "smollm2-135m"
    manifest = {"origin": "scratch", "arch": arch, "shape": shape.to_dict(), "seed": options.seed, "tokenizer": tokenizer_source}
    write_init(model, tokenizer, out, manifest, overwrite)
    typer.echo(f"{arch}: {shape_line(shape)}")
    typer.echo(f"wrote {out}")


SHAPE_FIELDS = tuple(f for f in ShapeOptions.model_fields if f != "context")


def size_target(spec: str, options: SizeOptions, flags: dict):
    """A preset with its shape options, or any model (whose shape is fixed: shape options are an error)."""
    from slmkit.arch.size import preset_target, spec_target

    if spec in PRESETS:
        return preset_target(spec, options, options.tokenizer)
    fixed = [f for f in SHAPE_FIELDS if getattr(options, f) not in (None, ShapeOptions.model_fields[f].default)]
    if fixed or options.tokenizer:
        raise SlmError(f"{flags['tokenizer' if options.tokenizer else fixed[0]]}: shape options apply to a preset "
                       f"({', '.join(PRESETS)}), not to the model {spec}")
    return spec_target(spec)


def fit_target(spec: str, options: SizeOptions, formats: list[str]):
    """--fit: the largest shape of one preset (or of every one, `all`) within the budget."""
    from slmkit.arch.bandwidth import bandwidth
    from slmkit.arch.build import llama_config, reuse_tokenizer
    from slmkit.arch.size import DEFAULT_TOKENIZER, Target, fit_search, parse_fit
    from slmkit.arch.tensors import preset_tensors

    if spec != "all" and spec not in PRESETS:
        raise SlmError(f"--fit searches preset shapes: give a preset ({', '.join(PRESETS)}) or all, not {spec}")
    archs = list(PRESETS) if spec == "all" else [spec]
    for arch in archs:
        check_arch(arch)
    tokenizer = reuse_tokenizer(options.tokenizer or DEFAULT_TOKENIZER)
    memory, decode = parse_fit(options.fit)
    found = fit_search(archs, options, options.vocab_size or len(tokenizer), formats[0], options.context, memory, decode,
                       bandwidth() if decode else None)
    shape = found.shape
    return Target(found.arch, preset_tensors(shape), llama_config(shape, tokenizer), lambda: tokenizer, shape)


@app.command("size")
@with_options(SizeOptions)
def size_command(
    model: str = typer.Argument(..., metavar="MODEL|ARCH", help=f"A model spec, or a preset ({', '.join(PRESETS)}; "
                                "all with --fit) sized with the shape options."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    given: dict = None,
) -> None:
    """Parameters, exact file sizes, memory, KV cache, FLOPs and predicted decode speed per format,
    from the config alone; --fit finds the largest preset shape within a memory and speed budget."""
    from slmkit.arch.bandwidth import bandwidth
    from slmkit.arch.size import check_formats, size_report

    options = parse_options(SizeOptions, given, size_command.flags)
    formats = check_formats(options.format or ("fp16" if options.fit else None))
    if options.fit:
        target = fit_target(model, options, formats)
    else:
        if model in PRESETS:
            resolve_shape(model, options)
        target = size_target(model, options, size_command.flags)
    report = size_report(target, formats, options.context, bandwidth())
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=1))
        return
    print_report(report, fitted=bool(options.fit))


def mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:,.1f} MB"


def print_report(report, fitted: bool = False) -> None:
    console = Console()
    if report.shape:
        from slmkit.arch.presets import Shape

        prefix = "largest fit: " if fitted else ""
        console.print(f"{prefix}{report.model}: {shape_line(Shape(**report.shape))}")
    else:
        console.print(f"{report.model}: {report.parameters:,} parameters ({report.embedding_parameters:,} embedding, "
                      f"{report.non_embedding_parameters:,} non-embedding)")
    kv = report.kv_bytes_per_token
    console.print(f"KV cache per token: {kv['float32']:,} B fp32, {kv['float16']:,} B fp16; "
                  f"at {report.context:,} tokens: {mb(kv['float16'] * report.context)} fp16")
    console.print(f"forward FLOPs per token at context {report.context:,}: {report.flops_per_token / 1e9:,.3f} GFLOP; "
                  f"read bandwidth {report.bandwidth_bytes_per_s / 1e9:,.1f} GB/s (measured here, cached)")
    table = Table("format", "file bytes (exact)", "loaded", f"KV @ {report.context:,}", "read/token", "decode tok/s")
    for row in report.formats:
        if row.note:
            table.add_row(row.format, "n/a", "", "", "", row.note)
            continue
        table.add_row(row.format, "-" if row.disk_bytes is None else f"{row.disk_bytes:,}", mb(row.memory_bytes),
                      mb(row.kv_bytes), mb(row.read_bytes), f"{row.decode_tokens_per_s:,.1f}")
    console.print(table)
