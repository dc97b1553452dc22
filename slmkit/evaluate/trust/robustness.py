"""Accuracy under seeded input perturbations (character typos, word swaps, case changes) and its drop from clean.

Only the question side (the context) is perturbed; choices stay as they are. A perturbation is a
pure function of (text, rate, seed), so a run is reproducible.
"""

from __future__ import annotations

import random
import string
import zlib

from slmkit.evaluate.tasks import Example, Task

KINDS = ("typo", "swap", "case")


def text_rng(text: str, seed: int) -> random.Random:
    return random.Random(seed * 1_000_003 + zlib.crc32(text.encode()))


def typos(text: str, rate: float, rng: random.Random) -> str:
    """Each letter, with probability `rate`, is deleted, doubled, replaced or swapped with the next."""
    chars, out, i = list(text), [], 0
    while i < len(chars):
        c = chars[i]
        if c.isalpha() and rng.random() < rate:
            op = rng.randrange(4)
            if op == 0:
                pass
            elif op == 1:
                out += [c, c]
            elif op == 2:
                out.append(rng.choice(string.ascii_lowercase))
            elif i + 1 < len(chars):
                out += [chars[i + 1], c]
                i += 1
            else:
                out.append(c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


def word_swaps(text: str, rate: float, rng: random.Random) -> str:
    """Each word, with probability `rate`, trades places with its right neighbour (within a line)."""
    lines = []
    for line in text.split("\n"):
        words = line.split(" ")
        i = 0
        while i < len(words) - 1:
            if words[i] and words[i + 1] and rng.random() < rate:
                words[i], words[i + 1] = words[i + 1], words[i]
                i += 1
            i += 1
        lines.append(" ".join(words))
    return "\n".join(lines)


def case_changes(text: str, rate: float, rng: random.Random) -> str:
    """Each word, with probability `rate`, becomes UPPER, lower or Title case."""
    def change(word: str) -> str:
        if not word or rng.random() >= rate:
            return word
        return rng.choice((str.upper, str.lower, str.title))(word)
    return "\n".join(" ".join(change(w) for w in line.split(" ")) for line in text.split("\n"))


PERTURB = {"typo": typos, "swap": word_swaps, "case": case_changes}


def perturb(text: str, kind: str, rate: float, seed: int = 0) -> str:
    """`text` perturbed by `kind` at `rate`; the same (text, kind, rate, seed) always gives the same output."""
    return PERTURB[kind](text, rate, text_rng(text, seed))


def perturbed_task(task: Task, kind: str, rate: float, seed: int = 0) -> Task:
    """The task with every context perturbed (the same perturbation for all choices of a question)."""
    examples = []
    for ex in task.examples:
        contexts = {c: perturb(c, kind, rate, seed) for c, _ in ex.requests}
        examples.append(Example([(contexts[c], k) for c, k in ex.requests], ex.gold, ex.choices))
    return Task(f"{task.name}[{kind}@{rate}]", task.kind, task.layout, examples)


def robustness(model, tokenizer, task: Task, clean: dict, rates: dict[str, float] | None = None, seed: int = 0,
               show_progress: bool = True) -> dict:
    """acc / acc_norm of `task` under each perturbation and the drop from the clean metrics."""
    from slmkit.evaluate.zeroshot import evaluate_task

    rates = rates or {"typo": 0.05, "swap": 0.1, "case": 0.2}
    result = {"task": task.name, "seed": seed, "clean_acc": clean["acc"], "clean_acc_norm": clean["acc_norm"], "perturbations": {}}
    for kind, rate in rates.items():
        metrics, _ = evaluate_task(model, tokenizer, perturbed_task(task, kind, rate, seed), show_progress)
        result["perturbations"][kind] = {
            "rate": rate, "acc": metrics["acc"], "acc_norm": metrics["acc_norm"],
            "acc_drop": clean["acc"] - metrics["acc"], "acc_norm_drop": clean["acc_norm"] - metrics["acc_norm"],
        }
    drops = [p["acc_drop"] for p in result["perturbations"].values()]
    result["mean_acc_drop"] = sum(drops) / len(drops)
    return result
