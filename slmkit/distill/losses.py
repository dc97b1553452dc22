"""Distillation losses between teacher and student next-token distributions, and hidden-state KD.

Every logit loss takes [N, V] logits (positions flattened), softens both sides with one
temperature and returns the mean over the positions kept by `mask`, scaled by T² as in
Hinton et al. so gradients keep their size when T changes. With `top_k` (or a cached
teacher top-k) both distributions are restricted to the teacher's k most likely tokens and
renormalized there ("sparse" KD: the cache on disk is k values per position, not V).
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

KDLoss = Literal["fkl", "rkl", "jsd", "tv"]
KD_LOSSES = ("fkl", "rkl", "jsd", "tv")


def kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(P‖Q) per row from log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def generalized_jsd(log_p: torch.Tensor, log_q: torch.Tensor, beta: float) -> torch.Tensor:
    """GKD's JSD(β) between teacher P and student Q per row: β·KL(P‖M) + (1−β)·KL(Q‖M), M = βP + (1−β)Q.
    The end points are defined as the limits of JSD(β)/β and JSD(β)/(1−β): β=0 is forward KL(P‖Q),
    β=1 is reverse KL(Q‖P)."""
    if beta <= 0.0:
        return kl(log_p, log_q)
    if beta >= 1.0:
        return kl(log_q, log_p)
    log_m = torch.logsumexp(torch.stack([log_p + math.log(beta), log_q + math.log(1 - beta)]), dim=0)
    return beta * kl(log_p, log_m) + (1 - beta) * kl(log_q, log_m)


def divergence(log_p: torch.Tensor, log_q: torch.Tensor, loss: KDLoss, beta: float = 0.5) -> torch.Tensor:
    """Teacher P vs student Q, one value per row."""
    if loss == "fkl":
        return kl(log_p, log_q)
    if loss == "rkl":
        return kl(log_q, log_p)
    if loss == "jsd":
        return generalized_jsd(log_p, log_q, beta)
    if loss == "tv":
        return 0.5 * (log_p.exp() - log_q.exp()).abs().sum(-1)
    raise ValueError(f"unknown KD loss {loss!r} (valid: {', '.join(KD_LOSSES)})")


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None = None,
    *,
    teacher_topk: tuple[torch.Tensor, torch.Tensor] | None = None,
    loss: KDLoss = "fkl",
    beta: float = 0.5,
    temperature: float = 1.0,
    top_k: int | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean divergence between teacher and student over the kept positions.

    Pass full `teacher_logits` [N, V], or `teacher_topk` = (values, indices) [N, k] from a cache.
    """
    student_logits = student_logits.float()
    if mask is not None:
        keep = mask.reshape(-1).bool()
        student_logits = student_logits.reshape(-1, student_logits.size(-1))[keep]
        if teacher_logits is not None:
            teacher_logits = teacher_logits.reshape(-1, teacher_logits.size(-1))[keep]
        if teacher_topk is not None:
            teacher_topk = tuple(t.reshape(-1, t.size(-1))[keep] for t in teacher_topk)
    if student_logits.numel() == 0:
        return student_logits.sum() * 0.0
    if teacher_topk is None and top_k is not None and teacher_logits is not None:
        teacher_topk = teacher_logits.float().topk(top_k, dim=-1)
    if teacher_topk is not None:
        values, indices = teacher_topk
        teacher = values.float()
        student = student_logits.gather(-1, indices.long())
    else:
        teacher, student = teacher_logits.float(), student_logits
    log_p = F.log_softmax(teacher / temperature, dim=-1)
    log_q = F.log_softmax(student / temperature, dim=-1)
    return divergence(log_p, log_q, loss, beta).mean() * temperature**2


def parse_layer_map(spec: str | Sequence[Sequence[int]] | None, student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """'0:0,5:10' or [[0, 0], [5, 10]] → pairs (student layer, teacher layer); None maps each student
    layer's output to the teacher layer at the same relative depth."""
    if spec is None or spec == "" or spec == "auto":
        return [(i, round((i + 1) * teacher_layers / student_layers) - 1) for i in range(student_layers)]
    pairs = [tuple(int(x) for x in p.split(":")) for p in spec.split(",")] if isinstance(spec, str) else [tuple(p) for p in spec]
    for s, t in pairs:
        if not (0 <= s < student_layers and 0 <= t < teacher_layers):
            from slmkit.errors import SlmError

            raise SlmError(f"layer map pair {s}:{t} is out of range (student has {student_layers} layers, teacher {teacher_layers})")
    return pairs


class HiddenStateKD(nn.Module):
    """MSE between mapped student and teacher layer outputs; a learned linear projection lifts the
    student's hidden states to the teacher's width when they differ (as in TinyBERT / MiniLM)."""

    def __init__(self, layer_map: list[tuple[int, int]], student_width: int, teacher_width: int):
        super().__init__()
        self.layer_map = list(layer_map)
        self.projections = nn.ModuleList(
            nn.Identity() if student_width == teacher_width else nn.Linear(student_width, teacher_width, bias=False)
            for _ in self.layer_map
        )

    def forward(self, student_hidden: Sequence[torch.Tensor], teacher_hidden: Sequence[torch.Tensor],
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """`*_hidden` are the models' `hidden_states` tuples (index 0 = embeddings, i+1 = layer i's output)."""
        total = 0.0
        for (s, t), project in zip(self.layer_map, self.projections):
            diff = (project(student_hidden[s + 1].float()) - teacher_hidden[t + 1].float()).pow(2).mean(-1)
            total = total + (diff[mask.bool()].mean() if mask is not None else diff.mean())
        return total / max(1, len(self.layer_map))
