"""`slm data …`: data-preparation commands (quality filtering)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from slmkit.cli import app

data_app = typer.Typer(help="Prepare training data: quality filtering and deduplication.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("filter")
def filter_command(
    source: Path = typer.Argument(..., metavar="IN", help="JSONL/JSON records with a text field, or a text file (blank-line separated)."),
    out: Path = typer.Option(..., "--out", "-o", help="Filtered output (same record format); OUT.report.json beside it."),
    text_field: str = typer.Option("text", "--text-field"),
    dedup: bool = typer.Option(True, "--dedup/--no-dedup", help="Exact dedup of normalized text."),
    near_dedup: bool = typer.Option(True, "--near-dedup/--no-near-dedup", help="MinHash LSH near-duplicate removal."),
    near_threshold: float = typer.Option(0.8, "--near-threshold", help="Jaccard similarity counted as a near duplicate."),
    heuristics: bool = typer.Option(True, "--heuristics/--no-heuristics", help="Gopher quality rules."),
    min_words: int = typer.Option(50, "--min-words"),
    max_words: int = typer.Option(100_000, "--max-words"),
    ppl_model: Optional[str] = typer.Option(None, "--ppl-model", help="Reference model for the perplexity filter."),
    max_perplexity: Optional[float] = typer.Option(None, "--max-perplexity", help="Drop documents above this perplexity."),
) -> None:
    """Filter a text data set: exact/near dedup, Gopher heuristics, reference-model perplexity."""
    from slmkit.data.filters import FilterConfig, filter_file
    from slmkit.errors import SlmError

    if (ppl_model is None) != (max_perplexity is None):
        raise SlmError("the perplexity filter needs both --ppl-model and --max-perplexity")
    cfg = FilterConfig(exact_dedup=dedup, near_dedup=near_dedup, near_dup_threshold=near_threshold, heuristics=heuristics,
                       min_words=min_words, max_words=max_words, ppl_model=ppl_model, max_perplexity=max_perplexity)
    report = filter_file(source, out, cfg, text_field)
    table = Table(title=f"slm data filter {source.name}: kept {report.kept} of {report.total}")
    table.add_column("rule")
    table.add_column("removed", justify="right")
    table.add_column("first removed document")
    for rule, count in report.removed.items():
        table.add_row(rule, str(count), report.examples[rule][:60].replace("\n", " "))
    Console().print(table)
    Console().print(f"wrote {out} and {out}.report.json")
