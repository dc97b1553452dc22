"""`slm run RECIPE` and `slm compress MODEL --method NAME`: both execute a recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from slmkit.cli import app
from slmkit.cli.flags import OVERWRITE, options_help, parse_extra_options, parse_options
from slmkit.errors import SlmError
from slmkit.evaluate.report import column_names, comparison_rows, runtime_note
from slmkit.recipe import CalibrationConfig, load_recipe, parse_recipe
from slmkit.steps import all_steps, get_step, offload_steps


def print_summary(manifest: dict, out: Path) -> None:
    rows = comparison_rows(manifest.get("baseline", {}), manifest.get("metrics", {}))
    console = Console()
    if rows:
        base, out_name = column_names(manifest)
        table = Table(title=f"{base} vs {out_name} ({manifest['source']})")
        for col in ("metric", base, out_name, "ratio"):
            table.add_column(col, justify="right" if col != "metric" else "left")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for line in filter(None, runtime_note(manifest)):
        console.print(line)
    steps = ", ".join(f"{s['step']} {s['seconds']:.1f}s" for s in manifest["steps"])
    console.print(f"steps: {steps or 'none'}")
    console.print(f"saved: {out} (format {manifest['format']}); report: {out / 'report.md'}")


@app.command("run")
def run_command(
    recipe: Path = typer.Argument(..., help="YAML recipe: model, steps, save, eval."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (written atomically)."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Run a recipe: load → steps → save → evaluate; writes OUT/report.md."""
    from slmkit.runner import run

    manifest = run(load_recipe(recipe), out, overwrite=overwrite)
    print_summary(manifest, out)


def methods_help() -> str:
    lines = ["Methods and their options (pass as --option value; flags without a value mean true):"]
    for name, step in all_steps().items():
        lines.append(f"  {name}: {step.summary}. {options_help(step.options)}")
    return "\n\n".join(lines)


@app.command(
    "compress",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog=None,
)
def compress_command(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Embedded name, HF folder, .gguf file or hub id."),
    method: str = typer.Option(..., "--method", "-m", help="A step name: see the list below."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (written atomically)."),
    calib: Optional[str] = typer.Option(None, "--calib", help="Calibration data: mixed (the model's own text and "
                                        "pydoc), generated, pydoc, a text/JSON/JSONL file, or hf:NAME.",
                                        show_default=CalibrationConfig.model_fields["data"].default),
    nsamples: Optional[int] = typer.Option(None, "--nsamples", min=1, help="Calibration windows.",
                                           show_default=str(CalibrationConfig.model_fields["nsamples"].default)),
    seqlen: Optional[int] = typer.Option(None, "--seqlen", min=1, help="Tokens per calibration window.",
                                         show_default=str(CalibrationConfig.model_fields["seqlen"].default)),
    format: Optional[str] = typer.Option(None, "--format", help="Output format (default: the method's, else hf)."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 or bfloat16."),
    seed: int = typer.Option(0, "--seed"),
    ppl: Optional[str] = typer.Option(None, "--ppl", help="Also measure perplexity (dense vs compressed) on this data."),
    ppl_max_windows: int = typer.Option(8, "--ppl-max-windows", min=1),
    profile: bool = typer.Option(False, "--profile", help="Also profile size and speed against the dense model."),
    offload: bool = typer.Option(False, "--offload", help="Layer offload: keep the decoder layers on disk and process one "
                                 "at a time, so the whole model is never in memory. Methods listing --offload below; a "
                                 "safetensors model folder or the embedded model; format hf; no --ppl or --profile."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Compress a model with one method; method options follow as --name value."""
    from slmkit.runner import run

    step = get_step(method)
    options = parse_extra_options(ctx.args)
    to_file = out.suffix == ".gguf"  # one command from a HF model to a llama.cpp file
    if to_file and format not in (None, "gguf"):
        raise SlmError(f"--out {out}: a .gguf output is format gguf, not {format}")
    grid = "gguf_type" in options
    format = format or ("gguf" if to_file or grid else getattr(step.options, "default_format", "hf"))
    if offload:
        if not step.can_offload:
            raise SlmError(f"--offload: {method} cannot run offloaded (methods that can: {', '.join(offload_steps())})")
        if ppl or profile:
            raise SlmError("--offload: --ppl and --profile load the whole model; evaluate the output afterwards with `slm eval`")
        options["offload"] = True
    parse_options(step.options, options, unknown=f" for {method}")
    recipe = compress_recipe(
        {
            "model": model,
            "dtype": dtype,
            "seed": seed,
            "calibration": {**({"data": calib} if calib else {}), **({"nsamples": nsamples} if nsamples else {}),
                            **({"seqlen": seqlen} if seqlen else {})},
            "steps": [{method: options}],
            "save": {"format": format},
            "eval": {
                "perplexity": {"data": ppl, "max_windows": ppl_max_windows} if ppl else None,
                "profile": {} if profile else None,
                "baseline": True,
            },
        },
    )
    if to_file:
        return compress_to_gguf(recipe, out, overwrite)
    manifest = run(recipe, out, overwrite=overwrite)
    print_summary(manifest, out)


def compress_to_gguf(recipe, out: Path, overwrite: bool) -> None:
    """Run the recipe into a scratch folder beside `out`, then move its model.gguf to `out` atomically."""
    import shutil
    import tempfile

    from slmkit.outputs import atomic_file, check_target
    from slmkit.runner import run

    check_target(out, overwrite, file=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.run-", dir=out.parent))
    try:
        run(recipe, scratch / "run", overwrite=True)
        with atomic_file(out, overwrite) as tmp:
            shutil.move(scratch / "run" / "model.gguf", tmp)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    typer.echo(f"saved: {out} ({out.stat().st_size / 1e6:.1f} MB)")


RECIPE_FLAGS = {"model": "MODEL", "dtype": "--dtype", "seed": "--seed", "calibration.data": "--calib",
                "calibration.nsamples": "--nsamples", "calibration.seqlen": "--seqlen", "save.format": "--format",
                "eval.perplexity.data": "--ppl", "eval.perplexity.max_windows": "--ppl-max-windows"}


def compress_recipe(data: dict):
    """The one-step recipe of `slm compress`; an error names the flag behind the recipe key."""
    try:
        return parse_recipe(data, origin="slm compress")
    except SlmError as err:
        message = str(err).removeprefix("slm compress: ")
        key, sep, problem = message.partition(": ")
        raise SlmError(f"{RECIPE_FLAGS[key]}: {problem}" if sep and key in RECIPE_FLAGS else message) from None


def _attach_methods_help() -> None:
    # Built lazily from the registry so every registered method shows up in --help.
    cmd = next(c for c in app.registered_commands if c.name == "compress")
    cmd.epilog = methods_help()


_attach_methods_help()
