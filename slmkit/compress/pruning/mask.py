"""Masks that zero exactly the requested number of lowest-scoring weights."""

from __future__ import annotations

import torch


def lowest_k_mask(scores: torch.Tensor, sparsity: float, scope: str = "row") -> torch.Tensor:
    """Boolean mask (True = prune) of the lowest-scoring weights: exactly int(sparsity * n) per row
    (scope "row") or per matrix (scope "layer"); ties are broken by position, never by over-pruning."""
    if scope == "row":
        k = int(scores.shape[1] * sparsity)
        mask = torch.zeros_like(scores, dtype=torch.bool)
        if k:
            mask.scatter_(1, scores.topk(k, dim=1, largest=False).indices, True)
        return mask
    k = int(scores.numel() * sparsity)
    flat = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    if k:
        flat[scores.flatten().topk(k, largest=False).indices] = True
    return flat.view_as(scores)


def sparsity_of(weight: torch.Tensor) -> float:
    return 1.0 - weight.count_nonzero().item() / weight.numel()
