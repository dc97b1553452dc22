"""Zero-shot metrics exactly as lm-evaluation-harness defines them.

acc       argmax of the summed continuation log-probs is the gold choice
acc_norm  the same after dividing each sum by the choice's length in characters (the harness's `len(choice)`)
acc_bytes the same after dividing by the choice's length in UTF-8 bytes (equal to acc_norm on ASCII text)
LAMBADA   acc = the last word is the greedy continuation; perplexity = exp(-mean log-likelihood per example)
Standard errors are the sample standard deviation over examples / sqrt(n).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from slmkit.evaluate.scorer import Score, score_groups
from slmkit.evaluate.tasks import Task


def mean_stderr(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0


@dataclass
class TaskScores:
    """Per-example log-likelihoods of a multiple-choice task, kept for calibration and reports."""
    task: Task
    scores: list[list[Score]]

    def logprobs(self) -> list[np.ndarray]:
        return [np.array([s.logprob for s in row]) for row in self.scores]

    def golds(self) -> np.ndarray:
        return np.array([ex.gold for ex in self.task.examples])


def multiple_choice_metrics(task: Task, scores: list[list[Score]]) -> dict:
    acc, norm, by_bytes = [], [], []
    for ex, row in zip(task.examples, scores):
        lls = np.array([s.logprob for s in row])
        chars = np.array([float(len(c)) for c in ex.choices])
        nbytes = np.array([float(len(c.encode("utf-8"))) for c in ex.choices])
        acc.append(float(np.argmax(lls) == ex.gold))
        norm.append(float(np.argmax(lls / chars) == ex.gold))
        by_bytes.append(float(np.argmax(lls / nbytes) == ex.gold))
    metrics = {}
    for name, values in (("acc", acc), ("acc_norm", norm), ("acc_bytes", by_bytes)):
        metrics[name] = float(np.mean(values))
        metrics[f"{name}_stderr"] = mean_stderr(values)
    return metrics


def lambada_metrics(scores: list[list[Score]]) -> dict:
    greedy = [float(row[0].greedy) for row in scores]
    lls = [row[0].logprob for row in scores]
    return {"acc": float(np.mean(greedy)), "acc_stderr": mean_stderr(greedy), "perplexity": math.exp(-float(np.mean(lls)))}


def score_task(model, tokenizer, task: Task, show_progress: bool = True) -> TaskScores:
    """Scores of a task's requests; a model with its own `score_groups` (llama.cpp) scores them itself."""
    groups = [ex.requests for ex in task.examples]
    scorer = getattr(model, "score_groups", None)
    if scorer is not None:
        return TaskScores(task, scorer(tokenizer, groups, show_progress, description=task.name))
    return TaskScores(task, score_groups(model, tokenizer, groups, show_progress, description=task.name))


def evaluate_task(model, tokenizer, task: Task, show_progress: bool = True) -> tuple[dict, TaskScores]:
    """Metrics of one task (plus the raw scores they came from)."""
    start = time.perf_counter()
    scored = score_task(model, tokenizer, task, show_progress)
    metrics = lambada_metrics(scored.scores) if task.kind == "lambada" else multiple_choice_metrics(task, scored.scores)
    metrics.update(n=len(task.examples), layout=task.layout, seconds=round(time.perf_counter() - start, 3))
    return metrics, scored
