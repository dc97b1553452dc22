import json

import numpy as np
import pytest
from tiny import tiny_model

from slmkit.evaluate.tasks import Example, Task
from slmkit.evaluate.trust.bias import bbq, bias_score, crows_pairs
from slmkit.evaluate.trust.calibration import brier_score, calibration, expected_calibration_error
from slmkit.evaluate.trust.privacy import exposure, fine_tune, make_canaries, pii_completion, pii_prompts
from slmkit.evaluate.trust.robustness import KINDS, perturb, perturbed_task
from slmkit.evaluate.trust.truthfulness import load_truthfulqa, truthfulness

TEXT = "Question: Which of these metals is the best conductor of electricity?\nAnswer the question carefully."


def test_ece_of_a_perfectly_calibrated_set_is_near_zero():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0, 1, 200_000)
    correct = rng.uniform(0, 1, confidence.size) < confidence  # right exactly as often as it is confident
    assert expected_calibration_error(confidence, correct) < 0.01
    overconfident = np.full(10_000, 0.9)
    assert expected_calibration_error(overconfident, np.arange(10_000) % 2 == 0) == pytest.approx(0.4)


def test_brier_and_calibration_from_logprobs():
    assert brier_score([np.array([1.0, 0.0])], np.array([0])) == 0.0
    assert brier_score([np.array([0.5, 0.5])], np.array([0])) == pytest.approx(0.5)
    result = calibration([np.log(np.array([0.7, 0.2, 0.1])), np.log(np.array([0.6, 0.4]))], np.array([0, 1]))
    assert result["accuracy"] == 0.5 and result["mean_confidence"] == pytest.approx(0.65)
    assert result["ece"] == pytest.approx(0.5 * 0.3 + 0.5 * 0.6)


@pytest.mark.parametrize("kind", KINDS)
def test_perturbations_are_reproducible_under_a_seed(kind):
    a, b = perturb(TEXT, kind, 0.3, seed=1), perturb(TEXT, kind, 0.3, seed=1)
    assert a == b and a != TEXT
    assert perturb(TEXT, kind, 0.3, seed=2) != a
    assert perturb(TEXT, kind, 0.0, seed=1) == TEXT


def test_perturbations_keep_what_they_should():
    assert perturb(TEXT, "case", 1.0).lower() == TEXT.lower()
    assert sorted(perturb(TEXT, "swap", 0.5).split()) == sorted(TEXT.split())
    task = Task("t", "multiple_choice", "x", [Example([(TEXT, " copper"), (TEXT, " wood")], 0, ["copper", "wood"])])
    noisy = perturbed_task(task, "typo", 0.2, seed=3)
    contexts = {c for c, _ in noisy.examples[0].requests}
    assert len(contexts) == 1 and contexts != {TEXT}  # one perturbation shared by the question's choices
    assert [k for _, k in noisy.examples[0].requests] == [" copper", " wood"]


def test_truthfulqa_targets_are_derived_from_the_csv(shared_data):
    items = load_truthfulqa(shared_data / "safety/truthfulqa/TruthfulQA.csv")
    assert len(items) == 817
    first = items[0]
    assert first["mc1"][0] == "The watermelon seeds pass through your digestive system"
    assert first["mc1"][0] in first["mc2_true"] and first["mc1"][1:] == first["mc2_false"]


def test_trust_evaluations_run_on_a_tiny_model(tokenizer, shared_data):
    model = tiny_model("llama")
    tq = truthfulness(model, tokenizer, shared_data / "safety/truthfulqa/TruthfulQA.csv", limit=3, show_progress=False)
    assert 0 <= tq["mc1"] <= 1 and 0 < tq["mc2"] < 1
    crows = crows_pairs(model, tokenizer, shared_data / "safety/bias/crows_pairs_anonymized.csv", limit=6, show_progress=False)
    assert crows["n"] == 6 and sum(v["n"] for v in crows["by_bias_type"].values()) == 6
    result = bbq(model, tokenizer, [shared_data / "safety/bias/bbq/Religion.jsonl"], limit=4, show_progress=False)
    assert result["ambig"]["n"] == 2 and result["disambig"]["n"] == 2
    pii = pii_completion(model, tokenizer, shared_data / "safety/pii/presidio_synth_dataset_v2.json", limit=5, show_progress=False)
    assert pii["n"] == 5 and pii["completion_rate"] == 0.0  # a random model completes no real PII


def test_pii_prompts_stop_right_before_the_value(shared_data):
    path = shared_data / "safety/pii/presidio_synth_dataset_v2.json"
    spans = {(r["full_text"][: s["start_position"]], s["entity_value"], s["entity_type"])
             for r in json.loads(path.read_text()) for s in r["spans"]}
    prompts = pii_prompts(path, limit=50)
    assert len(prompts) == 50
    for prefix, value, kind in prompts:  # the text up to the span's first character, then the span itself
        assert (prefix, value, kind) in spans and prefix.strip()


def test_bbq_bias_score():
    doc = {"answer_info": {"ans0": ["Jewish", "Jewish"], "ans1": ["Can't answer", "unknown"], "ans2": ["Muslim", "Muslim"]},
           "additional_metadata": {"stereotyped_groups": ["Muslim"]}, "question_polarity": "neg"}
    assert bias_score([2, 2], [doc, doc]) == 1.0  # always the stereotyped group for a negative question
    assert bias_score([0, 0], [doc, doc]) == -1.0
    assert bias_score([1], [doc]) is None  # only 'unknown' answers


def test_canaries_are_seeded_and_tuning_raises_their_exposure(tokenizer):
    assert make_canaries(3, seed=5) == make_canaries(3, seed=5) != make_canaries(3, seed=6)
    model = tiny_model("llama")
    canaries = make_canaries(2, seed=0)
    before = exposure(model, tokenizer, canaries, candidates=30, show_progress=False)
    texts = [f"{p} {s}." for p, s in canaries] * 4
    tuned = fine_tune(model, tokenizer, texts, steps=40, batch_size=4, lr=3e-3)
    after = exposure(tuned, tokenizer, canaries, candidates=30, show_progress=False)
    assert after["exposure_fit"] > before["exposure_fit"] + 1
    assert after["exposure_rank"] > after["exposure_max"] - 1  # the secrets now rank at or near the top


def test_a_binary_trust_file_is_named(tmp_path):
    from slmkit.errors import SlmError

    path = tmp_path / "TruthfulQA.csv"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(SlmError, match=rf"^{path}: not UTF-8 text"):
        load_truthfulqa(path)
