"""The torch-free GGUF header reader agrees with the gguf package, and files llama.cpp cannot load are one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slmkit.errors import SlmError
from slmkit.layouts.gguf_header import check_loadable, tensor_bytes
from slmkit.models.embedded import EMBEDDED


@pytest.fixture(scope="module")
def embedded() -> Path:
    return Path(EMBEDDED["smollm2-135m"].path())


def test_header_matches_gguf_reader(embedded):
    from gguf import GGUFReader

    reader = GGUFReader(embedded)
    header = check_loadable(embedded)
    assert [t.name for t in header.tensors] == [t.name for t in reader.tensors]
    for mine, theirs in zip(header.tensors, reader.tensors):
        assert header.data_start + mine.offset == theirs.data_offset
        assert tensor_bytes(mine) == theirs.n_bytes
    assert header.metadata["general.architecture"] == "llama"
    assert header.metadata["llama.context_length"] == int(reader.fields["llama.context_length"].contents())


def write_tiny(path: Path, arch: str = "llama") -> None:
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), arch)
    writer.add_tensor("token_embd.weight", np.zeros((8, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.mark.parametrize("damage, message", [
    ("truncate", "truncated: its tensors need"),
    ("header", "a damaged GGUF header"),
    ("magic", "not a GGUF file"),
    ("arch", "not one llama.cpp knows"),
])
def test_unloadable_files_are_one_line_errors(tmp_path, damage, message):
    path = tmp_path / "m.gguf"
    write_tiny(path, "nonesuch" if damage == "arch" else "llama")
    if damage != "arch":
        check_loadable(path)  # the undamaged file passes
    raw = path.read_bytes()
    cut = {"truncate": raw[:-100], "header": raw[:40], "magic": b"GGML" + raw[4:], "arch": raw}[damage]
    path.write_bytes(cut)
    with pytest.raises(SlmError, match=message) as err:
        check_loadable(path)
    assert "\n" not in str(err.value)


def test_cli_refuses_a_truncated_file_before_loading(tmp_path, embedded):
    path = tmp_path / "cut.gguf"
    with open(embedded, "rb") as src:
        path.write_bytes(src.read(4_000_000))
    for args in (["eval", str(path), "--backend", "llama.cpp", "--ppl", "pydoc"], ["eval", str(path), "--ppl", "pydoc"]):
        run = subprocess.run([sys.executable, "-m", "slmkit.cli", *args], capture_output=True, text=True, timeout=120)
        assert run.returncode != 0
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and "truncated" in lines[0], run.stderr
