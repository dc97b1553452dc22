"""A FrugalGPT-style cascade: the SLM answers first; an unsure answer (low token log-probs) goes to the LLM.

`calibrate` turns labelled examples (confidence, was the SLM right, was the LLM right) into a
cost-accuracy curve and picks the threshold for a target accuracy or an upstream-call budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from slmkit.errors import SlmError
from slmkit.outputs import atomic_file

METRICS = ("mean", "min")


def confidence(logprobs: list[float], metric: str = "mean") -> float:
    """Mean or minimum token log-prob of an answer; an empty answer has no confidence (-inf)."""
    if metric not in METRICS:
        raise SlmError(f"unknown confidence metric {metric!r} (choose from {', '.join(METRICS)})")
    if not logprobs:
        return -math.inf
    return sum(logprobs) / len(logprobs) if metric == "mean" else min(logprobs)


@dataclass
class Cascade:
    threshold: float
    metric: str = "mean"

    def escalate(self, logprobs: list[float]) -> bool:
        return confidence(logprobs, self.metric) < self.threshold


@dataclass
class CurvePoint:
    threshold: float
    upstream_fraction: float
    accuracy: float


def cost_accuracy_curve(confidences: list[float], local_correct: list[bool], upstream_correct: list[bool]) -> list[CurvePoint]:
    """Accuracy and share of upstream calls for every distinct threshold (escalate when confidence < threshold)."""
    n = len(confidences)
    if n == 0 or not (n == len(local_correct) == len(upstream_correct)):
        raise SlmError("calibration needs the same positive number of confidences and labels")
    thresholds = sorted(set(confidences)) + [math.inf]
    curve = []
    for t in thresholds:
        up = [c < t for c in confidences]
        correct = sum(u_ok if u else l_ok for u, l_ok, u_ok in zip(up, local_correct, upstream_correct))
        curve.append(CurvePoint(t, sum(up) / n, correct / n))
    return curve


def pick_threshold(curve: list[CurvePoint], target_accuracy: float | None = None, budget: float | None = None) -> CurvePoint:
    """Cheapest point reaching `target_accuracy`, or most accurate point within `budget` (share of upstream calls)."""
    if (target_accuracy is None) == (budget is None):
        raise SlmError("give exactly one of a target accuracy and an upstream-call budget")
    if target_accuracy is not None:
        ok = [p for p in curve if p.accuracy >= target_accuracy]
        if not ok:
            best = max(p.accuracy for p in curve)
            raise SlmError(f"no threshold reaches accuracy {target_accuracy:.3f} (best is {best:.3f})")
        return min(ok, key=lambda p: (p.upstream_fraction, -p.accuracy))
    ok = [p for p in curve if p.upstream_fraction <= budget]
    return max(ok, key=lambda p: (p.accuracy, -p.upstream_fraction))  # threshold -inf side always fits: 0 calls


def plot_curve(curve: list[CurvePoint], path, chosen: CurvePoint | None = None, title: str = "cascade",
               overwrite: bool = False) -> None:
    """Save the cost-accuracy curve as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot([p.upstream_fraction for p in curve], [p.accuracy for p in curve], marker=".", label="cascade")
    if chosen is not None:
        ax.scatter([chosen.upstream_fraction], [chosen.accuracy], color="red", zorder=3,
                   label=f"threshold {chosen.threshold:.3g}")
    ax.set_xlabel("share of requests sent upstream")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_file(path, overwrite) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def is_correct(output: str, answer: str) -> bool:
    """Lenient match: the normalised output starts with the normalised reference answer."""
    norm = lambda s: " ".join("".join(c for c in s.lower() if c.isalnum() or c.isspace()).split())  # noqa: E731
    out, ref = norm(output), norm(answer)
    return bool(ref) and (out == ref or out.startswith(ref + " ") or (len(ref) > 1 and out.startswith(ref)))
