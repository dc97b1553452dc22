"""`slm report DIR [DIR…]`: compare evaluated models in report.md and a self-contained report.html."""

from __future__ import annotations

from typing import Optional

import typer

from slmkit.cli import app
from slmkit.outputs import check_writable


@app.command("report")
def report_command(
    dirs: list[str] = typer.Argument(..., help="Folders written by `slm eval --out` or `slm run`."),
    out: Optional[str] = typer.Option(None, "--out", help="Where to write report.md/report.html (default: the first folder)."),
) -> None:
    """Render report.md and report.html (plots embedded) comparing the given evaluated models."""
    from slmkit.evaluate.report import write_report

    if out:
        check_writable(out, "--out", itself=True)
    md, html = write_report(dirs, out)
    typer.echo(f"wrote {md} and {html}")
