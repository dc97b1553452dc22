import copy
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import torch
import torch.nn.functional as F
from tiny import tiny_model, tiny_tokenizer

from slmkit.distill.distill import distill
from slmkit.distill.losses import HiddenStateKD, generalized_jsd, kd_loss, parse_layer_map
from slmkit.distill.objective import DistillObjective, check_same_tokenizer
from slmkit.distill.options import DistillOptions
from slmkit.distill.teacher_cache import cache_teacher_logits, load_teacher_cache
from slmkit.errors import SlmError
from slmkit.tune.trainer import corpus_windows

LOSSES = ["fkl", "rkl", "jsd", "tv"]


def logits_of(*probs):
    return torch.tensor(probs).log()


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("top_k", [None, 5])
def test_each_loss_is_zero_for_identical_distributions(loss, top_k):
    x = torch.randn(7, 20)
    assert kd_loss(x, x.clone(), loss=loss, temperature=2.0, top_k=top_k).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(x, x * 1.5, loss=loss).item() > 1e-4
    assert kd_loss(x, x + 3.0, loss=loss).item() == pytest.approx(0.0, abs=1e-5)


def test_losses_match_closed_form_on_a_toy_pair():
    p, q = logits_of([0.5, 0.5]), logits_of([0.25, 0.75])  # teacher P, student Q
    fkl = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    rkl = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    m = [0.375, 0.625]
    jsd = 0.5 * (0.5 * math.log(0.5 / m[0]) + 0.5 * math.log(0.5 / m[1])) + 0.5 * (0.25 * math.log(0.25 / m[0]) + 0.75 * math.log(0.75 / m[1]))
    assert kd_loss(q, p, loss="fkl").item() == pytest.approx(fkl, rel=1e-5)
    assert kd_loss(q, p, loss="rkl").item() == pytest.approx(rkl, rel=1e-5)
    assert kd_loss(q, p, loss="jsd", beta=0.5).item() == pytest.approx(jsd, rel=1e-5)
    assert kd_loss(q, p, loss="tv").item() == pytest.approx(0.25, rel=1e-5)
    # torch's own KL agrees with the forward KL
    assert kd_loss(q, p).item() == pytest.approx(F.kl_div(q.log_softmax(-1), p.log_softmax(-1), log_target=True, reduction="sum").item(), rel=1e-5)


def test_jsd_end_points_and_limits_are_the_two_kls():
    t, s = torch.randn(5, 11), torch.randn(5, 11)
    fkl, rkl = kd_loss(s, t, loss="fkl"), kd_loss(s, t, loss="rkl")
    assert kd_loss(s, t, loss="jsd", beta=0.0).item() == pytest.approx(fkl.item(), rel=1e-6)
    assert kd_loss(s, t, loss="jsd", beta=1.0).item() == pytest.approx(rkl.item(), rel=1e-6)
    log_p, log_q = t.double().log_softmax(-1), s.double().log_softmax(-1)
    b = 1e-5
    assert (generalized_jsd(log_p, log_q, b) / b).mean().item() == pytest.approx(fkl.item(), rel=1e-3)
    assert (generalized_jsd(log_p, log_q, 1 - b) / b).mean().item() == pytest.approx(rkl.item(), rel=1e-3)
    half = kd_loss(s, t, loss="jsd", beta=0.5).item()
    assert half == pytest.approx(kd_loss(t, s, loss="jsd", beta=0.5).item(), rel=1e-5) and half <= math.log(2)


def test_temperature_softens_and_scales_by_t_squared():
    t, s = torch.randn(4, 9), torch.randn(4, 9)
    assert kd_loss(s, t, temperature=2.0).item() == pytest.approx(4 * kd_loss(s / 2, t / 2).item(), rel=1e-5)


def test_top_k_with_full_vocabulary_equals_full_loss_and_mask_drops_positions():
    t, s = torch.randn(6, 10), torch.randn(6, 10)
    assert kd_loss(s, t, top_k=10, loss="rkl").item() == pytest.approx(kd_loss(s, t, loss="rkl").item(), rel=1e-5)
    mask = torch.tensor([1, 1, 0, 0, 0, 0])
    assert kd_loss(s, t, mask=mask).item() == pytest.approx(kd_loss(s[:2], t[:2]).item(), rel=1e-6)


def test_hidden_state_kd_projects_when_widths_differ():
    assert parse_layer_map(None, 2, 4) == [(0, 1), (1, 3)]
    assert parse_layer_map("0:0,1:3", 2, 4) == [(0, 0), (1, 3)]
    with pytest.raises(SlmError, match="out of range"):
        parse_layer_map("2:0", 2, 4)
    kd = HiddenStateKD([(0, 0)], 8, 16)
    student = [torch.randn(2, 3, 8)] * 2
    teacher = [None, torch.randn(2, 3, 16)]
    loss = kd(student, teacher)
    loss.backward()
    assert kd.projections[0].weight.grad is not None
    same = HiddenStateKD([(0, 0)], 8, 8)
    assert same(student, student).item() == 0.0


def held_out_kl(student, teacher, ids):
    with torch.no_grad():
        return kd_loss(student(ids).logits.flatten(0, 1), teacher(ids).logits.flatten(0, 1)).item()


def opts(**kw):
    base = dict(teacher="unused", max_steps=15, batch_size=2, seqlen=32, lr=3e-3, warmup_steps=2, precision="no")
    return DistillOptions(**{**base, **kw})


@pytest.mark.parametrize("loss", ["fkl", "jsd"])
def test_kd_moves_a_student_toward_its_teacher(tokenizer, loss):
    teacher, student = tiny_model(seed=1), tiny_model(seed=2)
    held_out = torch.stack([w["input_ids"] for w in corpus_windows(tokenizer, "pydoc", 32)[-4:]])
    before = held_out_kl(student, teacher, held_out)
    student, result = distill(student, tokenizer, opts(loss=loss, temperature=2.0), teacher=teacher, show_progress=False)
    assert held_out_kl(student, teacher, held_out) < 0.7 * before
    assert result.steps == 15


def test_hidden_state_kd_trains_projection_with_student(tokenizer):
    teacher, student = tiny_model(seed=1, hidden_size=48, num_hidden_layers=3), tiny_model(seed=2)
    objective = DistillObjective(student, teacher, opts(hidden_weight=1.0, layer_map="0:1,1:2"))
    names = [n for n, p in objective.named_parameters() if p.requires_grad]
    assert any(n.startswith("hidden.projections") for n in names) and not any("teacher" in n for n in names)
    batch = corpus_windows(tokenizer, "pydoc", 16, max_tokens=64)[0]
    loss = objective({k: v[None] for k, v in batch.items()})
    loss.backward()
    assert objective.hidden.projections[0].weight.grad.abs().sum() > 0


def test_teacher_cache_replaces_the_teacher(tokenizer, tmp_path):
    teacher, student = tiny_model(seed=1), tiny_model(seed=2)
    windows = torch.stack([w["input_ids"] for w in corpus_windows(tokenizer, "pydoc", 32, max_tokens=32 * 12)])
    path = cache_teacher_logits(teacher, tokenizer, windows, top_k=16, path=tmp_path / "t.safetensors", show_progress=False)
    examples, meta = load_teacher_cache(path)
    assert meta["top_k"] == "16" and len(examples) == len(windows)
    with torch.no_grad():
        expected = teacher(windows[:1]).logits.topk(16, dim=-1)
    assert torch.equal(examples[0]["teacher_indices"].long(), expected.indices[0])
    held_out = windows[-2:]
    before = held_out_kl(student, teacher, held_out)
    student, result = distill(student, tokenizer, opts(teacher=None, teacher_cache=str(path)), show_progress=False)
    assert held_out_kl(student, teacher, held_out) < before


def test_different_tokenizers_refuse_logit_kd_and_suggest_sequence_kd(tokenizer):
    other = copy.deepcopy(tiny_tokenizer())
    other.add_tokens(["<extra-token>"])
    check_same_tokenizer(tokenizer, tokenizer)
    with pytest.raises(SlmError, match="sequence"):
        check_same_tokenizer(tokenizer, other)
    with pytest.raises(SlmError, match="--mode sequence"):
        distill(tiny_model(), tokenizer, opts(), teacher=tiny_model(seed=1), teacher_tokenizer=other, show_progress=False)


def test_on_policy_student_samples_are_learned_only_on_generated_tokens(tokenizer):
    teacher, student = tiny_model(seed=1), tiny_model(seed=2)
    objective = DistillObjective(student, teacher, opts(mode="onpolicy", prompt_tokens=8, new_tokens=6, lambda_onpolicy=1.0))
    ids = torch.stack([w["input_ids"] for w in corpus_windows(tokenizer, "pydoc", 32, max_tokens=64)])
    new_ids, labels, attention = objective.student_samples(ids)
    assert torch.equal(new_ids[:, :8], ids[:, :8])
    assert (labels[:, :8] == -100).all() and (labels[:, 8:] != -100).sum() == attention[:, 8:].sum()
    _, result = distill(student, tokenizer, opts(mode="onpolicy", prompt_tokens=8, new_tokens=6, lambda_onpolicy=1.0, max_steps=2),
                        teacher=teacher, show_progress=False)
    assert result.steps == 2 and all(math.isfinite(x) for x in result.losses)


class FakeOpenAI(BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.seen.append(body)
        prompt = body["messages"][-1]["content"]
        reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"The answer to {prompt[:20]!r} is 42."}}]}
        data = json.dumps(reply).encode()
        self.send_response(200 if self.path == "/v1/chat/completions" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    server = HTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_sequence_kd_from_an_openai_compatible_endpoint(tokenizer, endpoint, tmp_path, shared_data):
    records = json.loads((shared_data / "instruct" / "alpaca_en_demo.json").read_text())[:6]
    data = tmp_path / "prompts.json"
    data.write_text(json.dumps(records))
    FakeOpenAI.seen.clear()
    student = tiny_model()
    student, result = distill(student, tokenizer, opts(teacher=endpoint, mode="sequence", data=str(data), new_tokens=32,
                                                       seqlen=32, max_steps=3, endpoint_model="teacher-x"), show_progress=False)
    assert len(FakeOpenAI.seen) == 6 and FakeOpenAI.seen[0]["model"] == "teacher-x"
    assert FakeOpenAI.seen[0]["messages"][0]["content"].startswith(records[0]["instruction"])
    assert result.steps == 3


def test_endpoint_teacher_refuses_logit_kd(tokenizer, endpoint):
    with pytest.raises(SlmError, match="--mode sequence"):
        distill(tiny_model(), tokenizer, opts(teacher=endpoint), show_progress=False)


def test_sequence_kd_from_a_local_teacher(tokenizer, tmp_path):
    from tiny import save_tiny

    teacher = save_tiny(tmp_path / "teacher", seed=3)
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Describe topic number {i} of the Python language reference.",
                                        "input": "", "output": ""}) + "\n" for i in range(4)))
    student, result = distill(tiny_model(), tokenizer, opts(teacher=str(teacher), mode="sequence", data=str(data), new_tokens=12,
                                                            seqlen=32, max_steps=2), show_progress=False)
    assert result.steps == 2 and result.tokens == 2 * 2 * 32
