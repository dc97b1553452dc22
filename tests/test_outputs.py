"""Atomic outputs: a target is always the complete old or the complete new output, foreign files
are never replaced without --overwrite, and a killed run's leftovers are cleared by the next one."""

import json
import os
import subprocess
import sys

import pytest

from slmkit import outputs
from slmkit.errors import SlmError


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SLMKIT_CACHE", str(tmp_path / "cache"))


def leftovers(folder):
    """Temporary siblings (hidden names) left in a folder."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def write_output(out, text: str, **kwargs):
    with outputs.atomic_folder(out, **kwargs) as tmp:
        (tmp / "weights.bin").write_text(text)
        (tmp / outputs.MANIFEST).write_text(json.dumps({"run": text}))


def test_a_folder_is_replaced_whole_and_lists_its_files(tmp_path):
    out = tmp_path / "out"
    write_output(out, "old")
    assert json.loads((out / outputs.MANIFEST).read_text())["files"] == ["weights.bin"]
    write_output(out, "new")
    assert (out / "weights.bin").read_text() == "new"
    assert not leftovers(tmp_path)


def test_a_failed_write_leaves_the_old_output_untouched(tmp_path):
    out = tmp_path / "out"
    write_output(out, "old")
    with pytest.raises(RuntimeError), outputs.atomic_folder(out) as tmp:
        (tmp / "weights.bin").write_text("half")
        raise RuntimeError("killed")
    assert (out / "weights.bin").read_text() == "old"
    assert not leftovers(tmp_path)


def test_exchange_swaps_two_folders_in_one_step(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x").write_text("a"), (b / "x").write_text("b")
    if not outputs.exchange(a, b):
        pytest.skip("this filesystem has no RENAME_EXCHANGE")
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"


def test_foreign_files_need_overwrite(tmp_path):
    out = tmp_path / "out"
    write_output(out, "old")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SlmError, match="notes.txt.*--overwrite"):
        write_output(out, "new")
    assert (out / "notes.txt").read_text() == "mine"
    write_output(out, "new", overwrite=True)
    assert not (out / "notes.txt").exists()


def test_a_folder_without_a_manifest_is_not_replaced(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "precious.csv").write_text("1,2")
    with pytest.raises(SlmError, match="did not write"):
        outputs.check_target(out)


def test_a_file_slmkit_did_not_write_is_not_replaced(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("precious")
    with pytest.raises(SlmError, match="not written by slmkit"):
        with outputs.atomic_file(target) as tmp:
            tmp.write_text("gguf")
    assert target.read_text() == "precious"


def test_a_file_slmkit_wrote_is_replaced_atomically(tmp_path):
    target = tmp_path / "model.gguf"
    for text in ("first", "second"):
        with outputs.atomic_file(target) as tmp:
            assert tmp.suffix == ".gguf" and tmp.parent == tmp_path
            tmp.write_text(text)
    assert target.read_text() == "second"
    assert not leftovers(tmp_path)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_leftovers_of_a_killed_run_are_removed(tmp_path):
    out = tmp_path / "out"
    write_output(out, "old")
    stale = tmp_path / f".out.tmp-{dead_pid()}-abc"
    stale.mkdir()
    (stale / "weights.bin").write_text("half")
    live = tmp_path / f".out.tmp-{os.getpid()}-live"
    live.mkdir()
    write_output(out, "new")
    assert not stale.exists() and live.exists()  # a running process's temporary is not touched


def test_a_replace_killed_between_its_renames_is_undone(tmp_path):
    out = tmp_path / "out"
    write_output(out, "old")
    os.replace(out, tmp_path / f".out.old-{dead_pid()}-abc")  # killed after renaming the old output aside
    outputs.check_target(out)
    assert (out / "weights.bin").read_text() == "old"


def test_an_unwritable_location_fails_before_any_work(tmp_path):
    with pytest.raises(SlmError, match="--out: cannot write /proc/x"):
        outputs.check_target("/proc/x")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SlmError, match="is not a folder"):
        outputs.check_target(blocker / "sub" / "out")
