"""The `slm` command: thin Typer commands over the same functions as the Python API.

Each command family lives in its own module and adds itself to `app`. Errors are one
line on stderr with a non-zero exit; `--debug` (anywhere on the line) shows the traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from slmkit.errors import SlmError

app = typer.Typer(
    name="slm",
    help="slmkit: small language models — compress, enhance, evaluate, deploy.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    """slmkit: small language models — compress, enhance, evaluate, deploy."""


# Command modules register themselves on `app` when imported.
from slmkit.cli import arch as _arch  # noqa: E402,F401
from slmkit.cli import data as _data  # noqa: E402,F401
from slmkit.cli import evaluate as _evaluate  # noqa: E402,F401
from slmkit.cli import export as _export  # noqa: E402,F401
from slmkit.cli import generate as _generate  # noqa: E402,F401
from slmkit.cli import models as _models  # noqa: E402,F401
from slmkit.cli import report as _report  # noqa: E402,F401
from slmkit.cli import route as _route  # noqa: E402,F401
from slmkit.cli import run as _run  # noqa: E402,F401
from slmkit.cli import serve as _serve  # noqa: E402,F401
from slmkit.cli import train as _train  # noqa: E402,F401


def main() -> None:
    from typer._click.exceptions import NoArgsIsHelpError, UsageError

    debug = "--debug" in sys.argv[1:] or os.environ.get("SLMKIT_DEBUG") == "1"
    sys.argv = [a for a in sys.argv if a != "--debug"]
    try:
        sys.exit(app(standalone_mode=False, prog_name="slm") or 0)
    except NoArgsIsHelpError as err:
        err.show()
        sys.exit(2)
    except UsageError as err:  # a flag Typer itself refuses (unknown, missing value, wrong type): one line too
        where = f" (see {err.ctx.command_path} --help)" if err.ctx is not None else ""
        print(f"error: {err.format_message().replace('Value error, ', '')}{where}", file=sys.stderr)
        sys.exit(2)
    except SlmError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as err:  # anything unexpected is still one line unless --debug
        if debug:
            raise
        detail = (str(err).strip().splitlines() or [""])[0]
        print(f"error: {type(err).__name__}: {detail} (run with --debug for the traceback)", file=sys.stderr)
        sys.exit(1)
