import json

import pytest
import torch
from tiny import save_tiny, tiny_model, tiny_tokenizer
from typer.testing import CliRunner

from slmkit.cli import app
from slmkit.cli.flags import parse_options
from slmkit.errors import SlmError
from slmkit.tune.options import PretrainOptions
from slmkit.tune.pretrain import non_embedding_params, pretrain, split_stream

runner = CliRunner()
BASE = dict(data="pydoc", seqlen=32, batch_size=4, lr=3e-3, warmup_steps=2, heldout_tokens=1024,
            eval_seqlen=64, eval_windows=8, precision="no")


def options(**kw):
    return PretrainOptions(**{**BASE, **kw})


def test_pretraining_lowers_heldout_perplexity():
    model, result, rate = pretrain(tiny_model(), tiny_tokenizer(), options(max_steps=30), show_progress=False)
    ppl = [e["perplexity"] for e in result.evals]
    assert [e["step"] for e in result.evals] == [0, 30]
    assert ppl[-1] < 0.8 * ppl[0]
    assert result.tokens == 30 * 4 * 32
    assert rate["non_embedding_params"] == non_embedding_params(model) > 0 and 0 < rate["mfu"] < 1


def test_heldout_tokens_never_enter_training():
    stream = torch.arange(1000)
    windows, heldout = split_stream(stream, 64, 200, "x")
    assert len(windows) == 12 and torch.equal(heldout, torch.arange(800, 1000))
    assert max(int(w["input_ids"].max()) for w in windows) < 800


def test_resume_after_k_steps_gives_bit_identical_weights(tmp_path):
    tok = tiny_tokenizer()
    kw = dict(max_steps=8, save_every=3, grad_accum=2, eval_every=4)
    full, _, _ = pretrain(tiny_model(seed=3), tok, options(**kw, checkpoint_dir=str(tmp_path / "a")), show_progress=False)
    ckpt = str(tmp_path / "b")
    pretrain(tiny_model(seed=3), tok, options(**kw, checkpoint_dir=ckpt), show_progress=False, stop_after=3)
    torch.manual_seed(1234)  # the resumed run must not depend on the process's RNG state
    resumed, result, _ = pretrain(tiny_model(seed=3), tok, options(**kw, checkpoint_dir=ckpt, resume=True), show_progress=False)
    assert result.resumed_from == 3 and result.steps == 8
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_bad_options_are_one_line_errors(tmp_path):
    with pytest.raises(SlmError, match=r"^--data: .*not found"):
        parse_options(PretrainOptions, {"data": str(tmp_path / "missing.txt")})
    with pytest.raises(SlmError, match=r"^--warmup-steps: "):
        parse_options(PretrainOptions, {"data": "pydoc", "warmup_steps": -1})
    short = tmp_path / "short.txt"
    short.write_text("a few words only")
    with pytest.raises(SlmError, match="fewer than one"):
        pretrain(tiny_model(), tiny_tokenizer(), options(data=str(short)), show_progress=False)
    result = runner.invoke(app, ["pretrain", str(tmp_path / "nope"), "--data", "pydoc", "--out", str(tmp_path / "o")])
    assert isinstance(result.exception, SlmError) and str(result.exception).startswith("MODEL_DIR: ")
    assert "\n" not in str(result.exception)


def test_pretrain_command_writes_a_scratch_model(tmp_path):
    src = save_tiny(tmp_path / "init")
    out = tmp_path / "out"
    result = runner.invoke(app, ["pretrain", str(src), "--data", "pydoc", "--max-steps", "3", "--seqlen", "32",
                                 "--eval-seqlen", "64", "--eval-windows", "2", "--heldout-tokens", "512",
                                 "--save-every", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "tokens/s" in result.output and "MFU" in result.output
    manifest = json.loads((out / "slmkit.json").read_text())
    assert manifest["origin"] == "scratch" and manifest["training"]["steps"] == 3
    assert (tmp_path / "out.checkpoints").is_dir()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)
