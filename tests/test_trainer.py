import copy

import pytest
import torch
from tiny import tiny_model

from slmkit.tune.options import TrainOptions
from slmkit.tune.trainer import CausalLMObjective, collate, corpus_windows, cosine_lr, example_indices, train


def options(**kw):
    base = dict(max_steps=6, batch_size=2, seqlen=32, lr=3e-3, warmup_steps=2, precision="no", seed=1)
    return TrainOptions(**{**base, **kw})


def test_cosine_schedule_warms_up_then_decays_to_floor():
    lrs = [cosine_lr(s, 1.0, 4, 20, 0.1) for s in range(21)]
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))
    assert lrs[20] == pytest.approx(0.1)


def test_processes_read_disjoint_slices_that_cover_each_epoch():
    seen = [i for step in range(5) for rank in range(2) for i in example_indices(step, 0, rank, 2, 2, 1, 20, 0)]
    assert sorted(seen) == list(range(20))


def test_collate_pads_labels_with_ignore_index():
    batch = collate([{"input_ids": torch.tensor([5, 6, 7]), "labels": torch.tensor([5, 6, 7])},
                     {"input_ids": torch.tensor([8]), "labels": torch.tensor([8])}], pad_id=0)
    assert batch["labels"][1].tolist() == [8, -100, -100]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_training_lowers_loss_and_reports_throughput(tokenizer):
    examples = corpus_windows(tokenizer, "pydoc", 32, max_tokens=32 * 16)
    result = train(CausalLMObjective(tiny_model()), examples, options(max_steps=12), show_progress=False)
    assert result.steps == 12 and result.tokens == 12 * 2 * 32
    assert sum(result.losses[-3:]) / 3 < result.losses[0] - 0.3
    assert result.tokens_per_s > 0


def test_resume_continues_exactly(tokenizer, tmp_path):
    examples = corpus_windows(tokenizer, "pydoc", 32, max_tokens=32 * 10)
    model = tiny_model()
    full = train(CausalLMObjective(copy.deepcopy(model)), examples, options(), show_progress=False)
    ckpt = str(tmp_path / "ckpt")
    first = train(CausalLMObjective(copy.deepcopy(model)), examples, options(save_every=3, checkpoint_dir=ckpt),
                  show_progress=False, stop_after=4)  # "killed" after step 4: step 4 is lost
    assert first.steps == 4
    resumed = train(CausalLMObjective(copy.deepcopy(model)), examples, options(save_every=3, checkpoint_dir=ckpt, resume=True),
                    show_progress=False)
    assert resumed.resumed_from == 3 and resumed.steps == 6
    assert resumed.losses == pytest.approx(full.losses, rel=1e-5, abs=1e-6)


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def run_cli(args, failpoint: str = "", **kw):
    import os
    import subprocess
    import sys

    env = dict(os.environ, SLMKIT_PROGRESS="0", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), SLMKIT_FAILPOINT=failpoint)
    return subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_two_process_accelerate_launch_runs_the_same_command(tmp_path):
    import json

    from tiny import save_tiny

    teacher, student = save_tiny(tmp_path / "t", seed=1), save_tiny(tmp_path / "s", seed=2)
    # On a machine without GPUs `--multi_gpu` starts torchrun; the trainer's Accelerator(cpu=True) then uses gloo.
    proc = run_cli(["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                    "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "slmkit.cli", "distill", "--teacher", str(teacher),
                    "--student", str(student), "--max-steps", "3", "--seqlen", "32", "--batch-size", "2", "--save-every", "2",
                    "--out", str(tmp_path / "out")])
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    training = json.loads((tmp_path / "out" / "slmkit.json").read_text())["training"]
    assert training["tokens"] == 3 * 2 * 2 * 32  # steps x processes x batch x seqlen
    state = json.loads((tmp_path / "out.checkpoints" / "step-0000002" / "trainer_state.json").read_text())
    assert state["world"] == 2


@pytest.mark.slow
def test_kill_9_then_resume_loses_only_steps_since_last_checkpoint(tmp_path):
    import json

    from tiny import save_tiny

    model = save_tiny(tmp_path / "m")
    args = ["-m", "slmkit.cli", "distill", "--teacher", str(model), "--student", str(model), "--ce-weight", "1",
            "--max-steps", "40", "--seqlen", "32", "--save-every", "3", "--out", str(tmp_path / "out")]
    proc = run_cli(args, failpoint="train@8")  # SIGKILL right after step 8: no cleanup runs
    proc.communicate(timeout=300)
    assert proc.returncode == -9
    ckpt = tmp_path / "out.checkpoints"
    done = sorted(p.name for p in ckpt.glob("step-*") if (p / "trainer_state.json").is_file())
    assert done, "no checkpoint was written before the kill"
    last = int(done[-1].split("-")[1])
    assert not list(ckpt.glob(".tmp-*/trainer_state.json"))
    assert not (tmp_path / "out").exists()
    resumed = run_cli(args + ["--resume"])
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    training = json.loads((tmp_path / "out" / "slmkit.json").read_text())["training"]
    assert last == 6 and training["resumed_from"] == last and training["steps"] == 40


class BreaksAt(CausalLMObjective):
    """CE, except that from optimizer step `step` on the loss (or only its gradient) is not finite."""

    def __init__(self, model, step: int, where: str):
        super().__init__(model)
        self.calls, self.step, self.where = 0, step, where

    def forward(self, batch):
        self.calls += 1
        loss = super().forward(batch)
        if self.calls < self.step:
            return loss
        if self.where == "loss":
            return loss * float("nan")
        return loss + (self.model.lm_head.weight[0, 0] * 0).sqrt()  # a finite loss whose gradient is NaN


@pytest.mark.parametrize("where", ["loss", "gradient"])
def test_a_non_finite_step_stops_training_and_keeps_the_last_good_checkpoint(tokenizer, tmp_path, where):
    from slmkit.errors import SlmError
    from slmkit.tune.trainer import latest_checkpoint

    examples = corpus_windows(tokenizer, "pydoc", 32, max_tokens=32 * 10)
    model = tiny_model()
    ckpt = tmp_path / "ckpt"
    objective = BreaksAt(model, step=3, where=where)  # batch_size 2, no accumulation: one call per step
    with pytest.raises(SlmError, match=rf"^training stopped at step 3: the {where if where == 'loss' else 'gradient norm'} "
                                       rf"is nan; nothing was saved; the last good checkpoint is .*step-0000002$"):
        train(objective, examples, options(save_every=1, checkpoint_dir=str(ckpt)), show_progress=False)
    assert latest_checkpoint(ckpt).name == "step-0000002"
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the bad step never reached the weights
    good = copy.deepcopy(tiny_model())
    train(CausalLMObjective(good), examples, options(max_steps=6), show_progress=False, stop_after=2)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), good.parameters()))
