"""Calibration of multiple-choice answers: expected calibration error (equal-width bins) and Brier score.

The model's answer distribution is the softmax of the choices' summed log-likelihoods (the
harness's `prob_norm`); its confidence is the top probability, correct when the top choice is gold.
"""

from __future__ import annotations

import numpy as np


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """sum over bins of |bin accuracy - bin mean confidence| x bin share; bins are (lo, hi] on [0, 1]."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def brier_score(probs: list[np.ndarray], gold: np.ndarray) -> float:
    """Mean over questions of the squared distance between the choice probabilities and the one-hot gold."""
    return float(np.mean([((p - np.eye(len(p))[g]) ** 2).sum() for p, g in zip(probs, gold)]))


def calibration(logprobs: list[np.ndarray], gold: np.ndarray, bins: int = 15) -> dict:
    """ECE, Brier score, accuracy and mean confidence from per-question choice log-likelihoods."""
    probs = [softmax(lp) for lp in logprobs]
    confidence = np.array([p.max() for p in probs])
    correct = np.array([float(p.argmax() == g) for p, g in zip(probs, gold)])
    return {
        "ece": expected_calibration_error(confidence, correct, bins),
        "brier": brier_score(probs, gold),
        "accuracy": float(correct.mean()),
        "mean_confidence": float(confidence.mean()),
        "bins": bins,
        "n": len(probs),
    }
