import torch
from serving import one_thread  # noqa: F401 (autouse fixture)
from tiny import tiny_model

from slmkit.collab.speculative import accept_or_resample, speculative_generate
from slmkit.generation import SamplingParams, generate_ids


def test_greedy_output_equals_target_token_for_token():
    target = tiny_model("llama", seed=0)
    draft = tiny_model("llama", seed=0, num_hidden_layers=1)  # a cheaper, different copy: it will often be wrong
    prompt = torch.tensor([[5, 17, 42, 99, 7]])
    params = SamplingParams(max_new_tokens=24, temperature=0.0)
    expected = generate_ids(target, prompt, params)
    for k, adaptive in [(1, False), (3, True)]:
        got, stats = speculative_generate(target, draft, prompt, params, k=k, adaptive=adaptive)
        assert got == expected
        assert stats.tokens == len(expected) and 0 <= stats.accepted <= stats.proposed
        assert stats.target_forwards < len(expected) or stats.acceptance_rate == 0


def test_identical_draft_accepts_everything():
    target = tiny_model("llama", seed=1)
    params = SamplingParams(max_new_tokens=24, temperature=0.0)
    got, stats = speculative_generate(target, target, torch.tensor([[3, 4, 5]]), params, k=4, adaptive=False)
    assert stats.acceptance_rate == 1.0
    assert stats.target_forwards == 5  # 24 tokens at 5 per verification


def test_acceptance_rule_reproduces_target_distribution():
    gen = torch.Generator().manual_seed(0)
    p = torch.tensor([0.5, 0.2, 0.2, 0.1, 0.0])
    q = torch.tensor([0.1, 0.5, 0.1, 0.1, 0.2])
    n = 20000
    counts = torch.zeros(5)
    for _ in range(n):
        drafted = int(torch.multinomial(q, 1, generator=gen))
        out = accept_or_resample(p, q, drafted, gen)
        counts[drafted if out is None else out] += 1
    freq = counts / n
    sigma = (p * (1 - p) / n).sqrt()
    assert torch.all((freq - p).abs() <= 5 * sigma + 1e-9), freq
    assert counts[4] == 0  # never a token the target gives zero probability


def test_sampled_speculative_matches_target_marginal():
    target = tiny_model("llama", seed=2, vocab_size=320)
    draft = tiny_model("llama", seed=3, num_hidden_layers=1)
    prompt = torch.tensor([[11, 12, 13]])
    with torch.no_grad():
        p = torch.softmax(target(prompt).logits[0, -1] / 1.5, -1)
    top = p.argmax().item()
    n = 300
    hits = sum(speculative_generate(target, draft, prompt, SamplingParams(max_new_tokens=1, temperature=1.5, seed=s),
                                    k=2)[0][0] == top for s in range(n))
    sigma = (p[top] * (1 - p[top]) / n).sqrt().item()
    assert abs(hits / n - p[top].item()) < 5 * sigma


def test_generate_command_with_draft_prints_the_same_text(tiny_folder):
    from typer.testing import CliRunner

    from slmkit.cli import app

    base = CliRunner().invoke(app, ["generate", str(tiny_folder), "def f(x):", "-n", "12"])
    fast = CliRunner().invoke(app, ["generate", str(tiny_folder), "def f(x):", "-n", "12", "--draft", str(tiny_folder)])
    assert base.exit_code == 0 and fast.exit_code == 0, fast.output
    assert base.stdout == fast.stdout
    assert "draft acceptance 100%" in fast.stderr
