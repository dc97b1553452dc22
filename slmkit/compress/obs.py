"""The OBS column sweep shared by SparseGPT and GPTQ (and their joint sparse + quantized form).

Columns of W [out, in] are processed left to right in blocks. Each column is pruned (mask)
and/or quantized, and the error it leaves is pushed onto the not-yet-processed columns
through the upper Cholesky factor of the inverse Hessian H⁻¹ (H = XᵀX of the layer's
inputs), so later columns compensate for earlier ones. Updates inside a block are applied
at once ("lazy batch"); the block's accumulated error updates the rest in one matmul.

References: Frantar & Alistarh 2023 (SparseGPT, Alg. 1), Frantar et al. 2022 (GPTQ).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Protocol

import torch

from slmkit.compress.mask import lowest_k_mask


class ColumnQuantizer(Protocol):
    """Quantizes one column at a time; may (re)compute its scales at group starts."""

    group_size: int  # 0 = one set of scales per output row for the whole matrix

    def prepare(self, column: int, weights: torch.Tensor) -> None:
        """Called at column 0 and at each group start with the current (error-updated) weights
        from `column` onward: [out, in - column]."""

    def quantize(self, column: int, w: torch.Tensor) -> torch.Tensor:
        """Quantize-dequantize one column [out] and return it."""


@contextmanager
def one_thread() -> Iterator[None]:
    """Run many tiny ops on one thread: intra-op threads only add synchronisation at this size
    (5x slower on a busy 2-core CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def inverse_hessian_factor(hessian: torch.Tensor, damp: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """(upper Cholesky factor of (H + λI)⁻¹, dead-input mask). λ = `damp` × mean diagonal.

    Inputs that never fire (zero diagonal) get H_jj = 1 so the factorisation exists; their
    weights are zeroed by the caller since they never affect the output."""
    H = hessian.clone().double()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    H.diagonal().add_(damp * torch.mean(torch.diag(H)))
    H = H.float()  # as the reference implementations: float32 factorisations are ~2x faster on CPU
    for attempt in range(5):  # escalate damping if H is numerically indefinite
        L, info = torch.linalg.cholesky_ex(H)
        if info == 0:
            break
        H.diagonal().add_(damp * torch.mean(torch.diag(H)) * 10 ** attempt)
    # H⁻¹ = L⁻ᵀ L⁻¹ via a triangular solve: torch.cholesky_inverse is many times slower on CPU.
    L_inv = torch.linalg.solve_triangular(L, torch.eye(L.shape[0], dtype=L.dtype), upper=False)
    Hinv = L_inv.T @ L_inv
    U, info = torch.linalg.cholesky_ex(Hinv, upper=True)
    if info != 0:  # float32 round-off on an ill-conditioned H: redo this step in float64
        U = torch.linalg.cholesky(Hinv.double(), upper=True).float()
    return U, dead


@torch.no_grad()
def obs_sweep(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    sparsity: float = 0.0,
    pruned_of_m: tuple[int, int] | None = None,
    quantizer: ColumnQuantizer | None = None,
    blocksize: int = 128,
    damp: float = 0.01,
    segments: list[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prune (unstructured `sparsity`, or `pruned_of_m` = (P, M): P of every M consecutive inputs) and/or quantize W.

    Returns (new weight [out, in] float32, mask of pruned weights). The unstructured mask is
    chosen per block by the OBS saliency w² / [H⁻¹]²_jj, exactly int(sparsity · size) per block.
    Rows are independent given H, so Linears sharing an input can be swept as one stacked W;
    `segments` (their row counts) then keeps the per-block mask budget per Linear, making the
    stacked sweep equal to separate ones.
    """
    W = weight.detach().float().clone(memory_format=torch.contiguous_format)  # Conv1D views are transposed
    rows, columns = W.shape
    Hinv, dead = inverse_hessian_factor(hessian, damp)
    W[:, dead] = 0
    pruned = torch.zeros_like(W, dtype=torch.bool)
    if quantizer is not None:
        quantizer.prepare(0, W)
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        W1 = W[:, i1:i2].clone()
        Hinv1 = Hinv[i1:i2, i1:i2]
        Err1 = torch.zeros_like(W1)
        mask1 = torch.zeros_like(W1, dtype=torch.bool)
        diag = torch.diag(Hinv1)
        if pruned_of_m is None and sparsity > 0:
            saliency = W1.pow(2) / diag.pow(2).unsqueeze(0)
            mask1 = torch.cat([lowest_k_mask(part, sparsity, scope="layer") for part in saliency.split(segments or [rows])])
        with one_thread():
            for i in range(i2 - i1):
                col = i1 + i
                if pruned_of_m is not None and i % pruned_of_m[1] == 0:
                    drop, m = pruned_of_m
                    saliency = W1[:, i : i + m].pow(2) / diag[i : i + m].pow(2).unsqueeze(0)
                    mask1[:, i : i + m].scatter_(1, saliency.topk(drop, dim=1, largest=False).indices, True)
                if quantizer is not None and quantizer.group_size and col % quantizer.group_size == 0 and col:
                    quantizer.prepare(col, torch.cat([W1[:, i:], W[:, i2:]], dim=1))
                w = W1[:, i]
                q = w.masked_fill(mask1[:, i], 0.0)
                if quantizer is not None:
                    q = quantizer.quantize(col, q).masked_fill(mask1[:, i], 0.0)
                err = (w - q) / Hinv1[i, i]
                W1[:, i + 1 :].addr_(err, Hinv1[i, i + 1 :], alpha=-1.0)  # rank-1 update in place
                W1[:, i] = q
                Err1[:, i] = err
        W[:, i1:i2] = W1
        pruned[:, i1:i2] = mask1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return W, pruned
