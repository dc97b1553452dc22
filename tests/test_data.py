import json

import pytest
import torch

from slmkit.data.calibration import calibration_batch, token_stream
from slmkit.data.corpus import check_source, corpus_text, load_documents, wikitext_rows
from slmkit.errors import SlmError


def test_text_jsonl_json_and_pydoc_sources(tmp_path):
    (tmp_path / "a.txt").write_text("hello world\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "one"}) + "\n\n" + json.dumps({"text": "two"}) + "\n")
    (tmp_path / "c.json").write_text(json.dumps([{"text": "x"}, "y"]))
    assert load_documents(str(tmp_path / "a.txt")) == ["hello world\n"]
    assert load_documents(str(tmp_path / "b.jsonl")) == ["one", "two"]
    assert load_documents(str(tmp_path / "c.json")) == ["x", "y"]
    assert corpus_text(str(tmp_path / "b.jsonl")) == "one\n\ntwo"
    docs = load_documents("pydoc")
    assert len(docs) > 50 and sum(map(len, docs)) > 100_000


def test_missing_file_and_missing_field_are_one_line_errors(tmp_path):
    with pytest.raises(SlmError, match="not found"):
        check_source(str(tmp_path / "nope.txt"))
    (tmp_path / "d.jsonl").write_text(json.dumps({"content": "x"}) + "\n")
    with pytest.raises(SlmError, match="no text field 'text'.*content"):
        load_documents(str(tmp_path / "d.jsonl"))


def test_wikitext_rows_follow_the_hf_split():
    raw = " \n = Title = \n \n Some text . \n"
    assert wikitext_rows(raw) == ["", " = Title = \n", "", " Some text . \n"]


def test_wikitext_raw_file_joins_like_the_hf_test_split(shared_data):
    path = shared_data / "wikitext2" / "wiki.test.raw"
    rows = load_documents(str(path))
    assert len(rows) == 4358
    text = corpus_text(str(path))
    assert text.startswith("\n\n = Robert Boulter = \n\n\n\n\n Robert Boulter is")


def test_calibration_windows_are_full_seeded_and_reproducible(tokenizer, tmp_path):
    docs = tmp_path / "short.jsonl"
    docs.write_text("".join(json.dumps({"text": f"doc {i} is short."}) + "\n" for i in range(400)))
    a = calibration_batch(tokenizer, str(docs), nsamples=6, seqlen=64, seed=1)
    b = calibration_batch(tokenizer, str(docs), nsamples=6, seqlen=64, seed=1)
    c = calibration_batch(tokenizer, str(docs), nsamples=6, seqlen=64, seed=2)
    assert a.shape == (6, 64) and a.dtype == torch.long
    assert torch.equal(a, b) and not torch.equal(a, c)
    stream = token_stream(tokenizer, str(docs))
    assert (stream == tokenizer.eos_token_id).sum() == 400  # documents joined with EOS


def test_calibration_refuses_a_corpus_shorter_than_one_window(tokenizer, tmp_path):
    (tmp_path / "t.txt").write_text("tiny")
    with pytest.raises(SlmError, match="fewer than one window"):
        calibration_batch(tokenizer, str(tmp_path / "t.txt"), nsamples=2, seqlen=512)


@pytest.mark.parametrize("name, text, line", [
    ("broken.jsonl", '{"text": "one"}\n{"text": "two"\n{"text": "three"}\n', 2),
    ("blank.jsonl", '{"text": "one"}\n\n\n{"text": \n', 4),
    ("broken.json", '[\n  {"text": "one"},\n  {"text" "two"}\n]\n', 3),
])
def test_json_errors_name_the_file_and_the_line(tmp_path, name, text, line):
    from slmkit.data.records import check_text_file, read_records

    path = tmp_path / name
    path.write_text(text)
    for read in (read_records, check_text_file):  # the full read and the quick check before work agree
        with pytest.raises(SlmError, match=rf"^{path}: line {line}: invalid JSON"):
            read(path)


def test_a_binary_data_file_is_named(tmp_path):
    path = tmp_path / "weights.txt"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(SlmError, match=rf"^{path}: not UTF-8 text"):
        load_documents(str(path))


def test_shared_data_folder_comes_from_the_environment_or_beside_the_checkout(monkeypatch, tmp_path):
    from pathlib import Path

    import slmkit
    from slmkit.data.shared import shared_data_dir

    monkeypatch.setenv("SLMKIT_SHARED_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path and shared_data_dir("elsewhere") == Path("elsewhere")
    monkeypatch.delenv("SLMKIT_SHARED_DATA")
    assert shared_data_dir() == Path(slmkit.__file__).resolve().parents[1].parent / "shared" / "data"
