"""`slm data …`: data-preparation commands (quality filtering)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from slmkit.checks import check_model
from slmkit.cli import app
from slmkit.cli.flags import OVERWRITE, parse_options, with_options
from slmkit.data.filters import FilterOptions
from slmkit.data.records import check_text_file
from slmkit.outputs import check_target

data_app = typer.Typer(help="Prepare training data: quality filtering and deduplication.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("filter")
@with_options(FilterOptions)
def filter_command(
    source: Path = typer.Argument(..., metavar="IN", help="JSONL/JSON records with a text field, or a text file (blank-line separated)."),
    out: Path = typer.Option(..., "--out", "-o", help="Filtered output (same record format); OUT.report.json beside it."),
    overwrite: bool = OVERWRITE,
    given: dict = None,
) -> None:
    """Filter a text data set: exact/near dedup, Gopher heuristics, reference-model perplexity."""
    from slmkit.data.filters import filter_file

    cfg = parse_options(FilterOptions, given, filter_command.flags)
    check_text_file(source, "input file")
    check_target(out, overwrite, file=True)
    check_target(f"{out}.report.json", overwrite, file=True)
    if cfg.ppl_model:
        check_model("--ppl-model", cfg.ppl_model)
    report = filter_file(source, out, cfg, overwrite=overwrite)
    table = Table(title=f"slm data filter {source.name}: kept {report.kept} of {report.total}")
    table.add_column("rule")
    table.add_column("removed", justify="right")
    table.add_column("first removed document")
    for rule, count in report.removed.items():
        table.add_row(rule, str(count), report.examples[rule][:60].replace("\n", " "))
    Console().print(table)
    Console().print(f"wrote {out} and {out}.report.json")
