"""Outputs that appear whole or not at all: every folder or file slmkit writes goes through here.

For a target T:
  1. `check_target(T)` runs before any slow work: T's nearest existing parent must take new files,
     and T must be absent, empty, or an earlier slmkit output (a folder whose every file its
     manifest lists; a file slmkit recorded writing) — anything else needs `overwrite=True`.
  2. Leftovers of a killed run are cleared: temporary siblings `.T.tmp-PID-*` and `.T.old-PID-*`
     whose process is gone; if T itself is missing beside an `.old` sibling, a replace was killed
     between its two renames, and the old output is put back.
  3. The new output is written into a temporary sibling `.T.tmp-PID-*` on the same filesystem.
  4. It replaces T atomically: files with one rename; folders with one `renameat2(RENAME_EXCHANGE)`
     where the kernel has it (else T is renamed aside, the new one renamed in, the old one deleted).
So at every instant T is the complete old output or the complete new one.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from slmkit.cache import cache_dir
from slmkit.errors import SlmError
from slmkit.failpoints import failpoint

MANIFEST = "slmkit.json"
RENAME_EXCHANGE = 2
AT_FDCWD = -100


def check_target(out: str | Path, overwrite: bool = False, option: str = "--out", file: bool = False) -> Path:
    """Fail now, in one line naming `option`, if `out` (a folder, or with `file` a single file)
    cannot be written or must not be replaced."""
    out = Path(out).expanduser()
    restore_interrupted(out)
    check_writable(out, option)
    if file and out.is_dir():
        raise SlmError(f"{option}: {out} is a folder; give a file name")
    if out.is_dir() and not out.is_symlink():
        foreign = foreign_files(out)
        if foreign and not overwrite:
            raise SlmError(f"{option}: {out} holds files slmkit did not write (e.g. {foreign[0]}); "
                           "choose another path or pass --overwrite")
    elif out.exists() and not overwrite and not written_by_slmkit(out):
        raise SlmError(f"{option}: {out} exists and was not written by slmkit; choose another path or pass --overwrite")
    return out


def check_writable(out: str | Path, option: str = "--out", itself: bool = False) -> None:
    """The nearest existing parent of `out` (with `itself`: `out`, a folder that will hold files)
    is a folder in which a file can really be created."""
    out = Path(out).expanduser().absolute()
    parent = out if itself else out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise SlmError(f"{option}: {out} cannot be created: {parent} is not a folder")
    try:
        probe = tempfile.mkdtemp(prefix=f".{out.name}.probe-", dir=parent)
        os.rmdir(probe)
    except OSError as err:
        raise SlmError(f"{option}: cannot write {out}: creating a file in {parent} failed ({err.strerror or err})") from None


def foreign_files(folder: Path) -> list[str]:
    """Files in a folder that slmkit did not write: neither listed in its manifest nor recorded
    when written later (a report added to a run folder). Without a manifest, every file counts."""
    present = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return present
    try:
        listed = json.loads(manifest.read_text()).get("files")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return present
    if listed is None:  # a manifest from before file lists were kept: the folder is slmkit's
        return []
    ours = set(listed) | {MANIFEST}
    return [p for p in present if p not in ours and not written_by_slmkit(folder / p)]


def dead_siblings(out: Path, kind: str) -> list[Path]:
    """Temporary siblings `.NAME.KIND-PID-*` of `out` whose process (PID) no longer runs."""
    prefix = f".{out.name}.{kind}-"
    found = sorted(out.parent.glob(glob.escape(prefix) + "*")) if out.parent.is_dir() else []
    return [p for p in found if not process_alive(p.name[len(prefix):].split("-")[0])]


def process_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def restore_interrupted(out: Path) -> None:
    """Undo what a killed run left: put a set-aside old output back, remove dead temporaries."""
    for old in dead_siblings(out, "old"):
        if not out.exists() and not out.is_symlink():
            os.replace(old, out)
        else:
            remove(old)
    for tmp in dead_siblings(out, "tmp"):
        remove(tmp)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def replace_folder(tmp: Path, out: Path) -> None:
    """Make `tmp` the folder at `out`, atomically replacing what was there."""
    if not out.exists():
        os.replace(tmp, out)
    elif exchange(tmp, out):
        failpoint("save:swapped")
        remove(tmp)  # it now holds the old output
    else:
        aside = out.parent / f".{out.name}.old-{os.getpid()}-{os.urandom(4).hex()}"
        os.replace(out, aside)
        os.replace(tmp, out)
        failpoint("save:swapped")
        remove(aside)


def list_files(folder: Path) -> None:
    """Record in the folder's manifest every file it holds, so a later run knows they are slmkit's."""
    manifest = folder / MANIFEST
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        data["files"] = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p != manifest)
        manifest.write_text(json.dumps(data, indent=2, default=str) + "\n")


@contextmanager
def atomic_folder(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside `out`; on success it becomes `out`, on failure it is removed."""
    out = check_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    try:
        yield tmp
        list_files(tmp)
        failpoint("save:written")
        replace_folder(tmp, out)
    finally:
        remove(tmp)


@contextmanager
def atomic_file(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `out` (same suffix); on success it is renamed onto `out` and recorded."""
    out = check_target(out, overwrite, file=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.tmp-{os.getpid()}-", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        failpoint("save:written")
        record_written(out, tmp)  # before the rename, so a kill right after it leaves a file slmkit knows
        os.replace(tmp, out)
        failpoint("save:swapped")
    finally:
        remove(tmp)


def written_log() -> Path:
    return cache_dir("written-files.json")


def signature(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def record_written(path: Path, content: Path | None = None) -> None:
    """Remember (size, mtime) of a file slmkit wrote at `path` (its bytes now in `content`, which a
    rename keeps unchanged), so a later run may replace it without --overwrite."""
    log = written_log()
    try:
        entries = json.loads(log.read_text()) if log.is_file() else {}
    except (OSError, json.JSONDecodeError):
        entries = {}
    entries = {p: s for p, s in entries.items() if Path(p).exists() and isinstance(s, list)}
    key = str(path.resolve())
    entries[key] = [*entries.get(key, [])[-3:], signature(content or path)]
    log.parent.mkdir(parents=True, exist_ok=True)
    tmp = log.with_name(f".{log.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(entries, indent=0))
    os.replace(tmp, log)


def written_by_slmkit(path: Path) -> bool:
    try:
        entries = json.loads(written_log().read_text())
        return signature(path) in entries.get(str(path.resolve()), [])
    except (OSError, json.JSONDecodeError, AttributeError, TypeError):
        return False
