"""Fault injection: each writing command is killed (SIGKILL, as `kill -9`) at named moments —
while loading, computing, and in each phase of saving — with and without an earlier output at
its target. The target must always be the complete old output or the complete new one, and no
temporary sibling may survive the next run. (Failpoints: slmkit/failpoints.py.)"""

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import gguf
import pytest
from tiny import SHARED_DATA, save_tiny

import slmkit
from slmkit.models.saving import read_manifest

ENV = {**os.environ, "SLMKIT_PROGRESS": "0"}


def slm(*args, failpoint: str | None = None, cache: Path):
    env = {**ENV, "SLMKIT_CACHE": str(cache)}
    if failpoint:
        env["SLMKIT_FAILPOINT"] = failpoint
    return subprocess.run([sys.executable, "-m", "slmkit.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def digest(path: Path) -> str | None:
    """A hash of a file, or of every file under a folder with its name; None when absent."""
    if not path.exists():
        return None
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(path)).encode() + f.read_bytes())
    return h.hexdigest()


def leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def complete_folder(out: Path) -> None:
    """A complete model output: it loads, and every file its manifest lists is there."""
    manifest = read_manifest(out)
    assert manifest and all((out / f).is_file() for f in manifest["files"])
    slmkit.load(str(out))


def complete_gguf(out: Path) -> None:
    assert len(gguf.GGUFReader(out).tensors) > 0


def complete_jsonl(out: Path) -> None:
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all("text" in r for r in rows)


COMMANDS = {
    "compress": (lambda model, out: ["compress", model, "--method", "magnitude", "--sparsity", "0.5", "--out", out],
                 "out", complete_folder, ["load", "step", "save:layout", "save:written", "save:swapped"]),
    "export": (lambda model, out: ["export", model, "--format", "gguf", "--type", "F16", "--out", out],
               "m.gguf", complete_gguf, ["load", "save:written", "save:swapped"]),
    "distill": (lambda model, out: ["distill", "--student", model, "--teacher", model, "--max-steps", "2", "--seqlen", "32",
                                    "--out", out], "out", complete_folder, ["load", "train", "save:written", "save:swapped"]),
    "data filter": (lambda model, out: ["data", "filter", SHARED_DATA / "c4" / "c4_demo.jsonl", "--out", out],
                    "kept.jsonl", complete_jsonl, ["save:written", "save:swapped"]),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_killed_run_leaves_the_old_or_the_new_output(tmp_path, command, shared_data):
    args, name, complete, points = COMMANDS[command]
    model, cache = save_tiny(tmp_path / "tiny"), tmp_path / "cache"
    fresh = tmp_path / "fresh" / name  # no earlier output: a kill leaves nothing at the target
    for point in points[:1] + points[-2:-1]:
        killed = slm(*args(model, fresh), failpoint=point, cache=cache)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert not fresh.exists()

    out = tmp_path / "earlier" / name  # an earlier output: a kill leaves it exactly as it was
    first = slm(*args(model, out), cache=cache)
    assert first.returncode == 0, first.stderr
    before = digest(out)
    for point in points:
        killed = slm(*args(model, out), failpoint=point, cache=cache)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        complete(out)
        if point == "save:swapped":  # killed after the swap: the complete new output is in place
            before = digest(out)
        else:
            assert digest(out) == before, f"{command} killed at {point} changed the old output"

    again = slm(*args(model, out), cache=cache)  # the next run replaces it and clears every leftover
    assert again.returncode == 0, again.stderr
    complete(out)
    assert leftovers(out) == []
    fresh_run = slm(*args(model, fresh), cache=cache)
    assert fresh_run.returncode == 0 and leftovers(fresh) == []
