"""Ridge regression batched over time points: one SVD per time point and fold, reused by every alpha and target.

Time-resolved decoding fits one ridge per time point ``b`` from the
``n_channels`` sensors to the targets. All time points go through the same
batched tensor operations (no Python loop over fits):

* per fold, the centred training block of every time point is decomposed
  once, ``X_c[b] = U[b] diag(S[b]) V[b]^T`` (batched float64 thin SVD, which
  is the cheaper of the primal and dual forms whichever of ``n_train`` and
  ``n_channels`` is smaller);
* targets are rotated once, ``B[b] = U[b]^T (Y_train - ybar)``, validation
  rows once, ``A[b] = (X_val[b] - mu[b]) V[b]``;
* each alpha costs one batched GEMM, ``A[b] diag(S / (S^2 + alpha)) B[b]``.

Targets are columns, so extra columns (permuted labels of a permutation
test) reuse the same decompositions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..ridge._scoring import score_predictions

__all__ = ["BatchedRidge", "fit_batched_ridge", "score_batched"]

# Validation predictions held at once (elements) when alphas are evaluated together.
_MAX_ELEMENTS = 2**24


@dataclass(frozen=True)
class BatchedRidge:
    """Fitted ridge per time point.

    Attributes
    ----------
    coef : tensor of shape (n_batch, n_channels, n_targets)
    intercept : tensor of shape (n_batch, n_targets)
    best_alphas : tensor of shape (n_batch, n_targets)
    cv_scores : tensor of shape (n_alphas, n_batch, n_targets) or None
    """

    coef: torch.Tensor
    intercept: torch.Tensor
    best_alphas: torch.Tensor
    cv_scores: torch.Tensor | None


def score_batched(R: torch.Tensor, P: torch.Tensor, score: str) -> torch.Tensor:
    """Scores of predictions ``P`` of ``R``, both of shape (..., n_rows, n_targets): shape (..., n_targets)."""
    R, P = torch.broadcast_tensors(R, P)
    lead, (n, t) = R.shape[:-2], R.shape[-2:]
    R2 = R.movedim(-2, 0).reshape(n, -1)
    P2 = P.movedim(-2, 0).reshape(n, -1)
    sst = ((R2 - R2.mean(0)) ** 2).sum(0)
    return score_predictions(R2, P2, sst, score).reshape(*lead, t)


class _Decomposition:
    """The SVD of the centred training rows of every time point, and the target means."""

    def __init__(self, X: torch.Tensor, Y: torch.Tensor, fit_intercept: bool, dtype: torch.dtype) -> None:
        X64 = X.to(torch.float64)
        self.mu = X64.mean(1, keepdim=True) if fit_intercept else torch.zeros_like(X64[:, :1])
        self.ybar = Y.mean(0) if fit_intercept else torch.zeros_like(Y[0])
        U, S, Vh = torch.linalg.svd(X64 - self.mu, full_matrices=False)
        self.S = S.to(dtype)  # (B, k)
        self.V = Vh.transpose(1, 2).to(dtype)  # (B, p, k)
        self.B = U.to(dtype).transpose(1, 2) @ (Y - self.ybar)  # (B, k, t)
        self.dtype = dtype

    def shrink(self, alphas: torch.Tensor) -> torch.Tensor:
        """``S / (S^2 + alpha)`` for alphas broadcastable to (B, 1 or t): shape (B, k, t or 1)."""
        S = self.S[:, :, None]
        return S / (S * S + alphas.to(self.dtype)[:, None, :])

    def coef(self, alphas: torch.Tensor) -> torch.Tensor:
        """Weights (B, p, t) with one alpha per (time point, target): ``alphas`` of shape (B, t)."""
        return self.V @ (self.B * self.shrink(alphas))

    def intercept(self, coef: torch.Tensor) -> torch.Tensor:
        return self.ybar - (self.mu.to(coef.dtype) @ coef)[:, 0]


def fit_batched_ridge(
    X: torch.Tensor,
    Y: torch.Tensor,
    alphas: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]] | None,
    *,
    fit_intercept: bool = True,
    score: str = "r2",
) -> BatchedRidge:
    """Ridge per time point, one alpha per (time point, target) chosen by cross-validation.

    Parameters
    ----------
    X : tensor of shape (n_batch, n_samples, n_channels)
        One design per time point (the batch axis).
    Y : tensor of shape (n_samples, n_targets)
        Targets shared by every time point, in the dtype of the large products.
    alphas : array of shape (n_alphas,)
    splits : sequence of (train, val) index arrays, or None
        None (or a single alpha): no search, every target takes ``alphas[0]``.
    fit_intercept : bool
    score : {"r2", "pearson"}

    Returns
    -------
    result : BatchedRidge
    """
    dev, dtype = Y.device, Y.dtype
    alphas_t = torch.as_tensor(np.asarray(alphas, dtype=np.float64), device=dev)
    n_batch, t = X.shape[0], Y.shape[1]
    cv_scores = None
    if splits and len(alphas_t) > 1:
        cv_scores = torch.zeros(len(alphas_t), n_batch, t, dtype=dtype, device=dev)
        for train, val in splits:
            tr = torch.as_tensor(np.asarray(train), device=dev)
            va = torch.as_tensor(np.asarray(val), device=dev)
            dec = _Decomposition(X[:, tr], Y[tr], fit_intercept, dtype)
            A = ((X[:, va].to(torch.float64) - dec.mu).to(dtype)) @ dec.V  # (B, n_val, k)
            R = Y[va] - dec.ybar
            # alphas in chunks of one batched product each (few kernel launches, bounded memory)
            step = max(1, _MAX_ELEMENTS // (n_batch * len(va) * t))
            for i in range(0, len(alphas_t), step):
                chunk = alphas_t[i : i + step, None, None, None].to(dtype)
                S = dec.S[None, :, :, None]
                P = A @ (dec.B * (S / (S * S + chunk)))  # (n_chunk, B, n_val, t)
                cv_scores[i : i + step] += score_batched(R, P, score)
        cv_scores /= len(splits)
        best = alphas_t[cv_scores.argmax(0)]
    else:
        best = alphas_t[:1].expand(n_batch, t)
    dec = _Decomposition(X, Y, fit_intercept, dtype)
    coef = dec.coef(best)
    return BatchedRidge(coef, dec.intercept(coef), best, cv_scores)
