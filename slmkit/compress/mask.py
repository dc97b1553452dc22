"""Masks that zero exactly the requested number of lowest-scoring weights."""

from __future__ import annotations

import torch


def lowest_k_mask(scores: torch.Tensor, sparsity: float, scope: str = "row") -> torch.Tensor:
    """Boolean mask (True = prune) of the lowest-scoring weights: exactly int(sparsity * n) per row
    (scope "row") or per matrix (scope "layer"). Equal scores are pruned lowest index first (a
    stable sort, as Wanda's reference), so ties never depend on the top-k kernel."""
    if scope == "row":
        k = int(scores.shape[1] * sparsity)
        mask = torch.zeros_like(scores, dtype=torch.bool)
        if k:
            mask.scatter_(1, scores.sort(dim=1, stable=True).indices[:, :k], True)
        return mask
    k = int(scores.numel() * sparsity)
    flat = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    if k:
        flat[scores.flatten().sort(stable=True).indices[:k]] = True
    return flat.view_as(scores)


def nm_mask(scores: torch.Tensor, kept: int, m: int) -> torch.Tensor:
    """Boolean mask (True = prune) keeping the `kept` highest scores in every M consecutive inputs of each row."""
    rows, columns = scores.shape
    if columns % m:
        from slmkit.errors import SlmError

        raise SlmError(f"pattern {kept}:{m} needs in_features divisible by {m}; a layer has {columns}")
    groups = scores.reshape(rows, columns // m, m)
    mask = torch.zeros_like(groups, dtype=torch.bool)
    mask.scatter_(2, groups.topk(m - kept, dim=2, largest=False).indices, True)
    return mask.view(rows, columns)


def prune_mask(scores: torch.Tensor, sparsity: float, kept_of_m: tuple[int, int] | None, scope: str = "row") -> torch.Tensor:
    """The N:M mask when a pattern (kept N of M) is given, else the exact lowest-k mask."""
    return nm_mask(scores, *kept_of_m) if kept_of_m else lowest_k_mask(scores, sparsity, scope)


def satisfies_nm(weight: torch.Tensor, n: int, m: int) -> bool:
    """True when every group of M consecutive inputs in every row has at most N non-zeros."""
    rows, columns = weight.shape
    if columns % m:
        return False
    return bool(((weight.reshape(rows, columns // m, m) != 0).sum(-1) <= n).all())
