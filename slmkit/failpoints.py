"""Named moments at which a test can kill the process outright, as `kill -9` would:
`SLMKIT_FAILPOINT=save:written slm compress ...` dies right after the new output is written and
before it is swapped in. The fault-injection tests use them to prove that a target path is only
ever the complete old output or the complete new one (docs/reliability.md)."""

from __future__ import annotations

import os
import signal

POINTS = ("load", "step", "train", "save:layout", "save:written", "save:swapped")


def failpoint(name: str, count: int | None = None) -> None:
    """Kill this process with SIGKILL if the environment names this point (`train`), or this point at
    this count (`train@7`: right after the 7th optimizer step)."""
    wanted = os.environ.get("SLMKIT_FAILPOINT")
    if wanted == name or (count is not None and wanted == f"{name}@{count}"):
        os.kill(os.getpid(), signal.SIGKILL)
