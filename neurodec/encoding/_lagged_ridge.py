"""Exact per-target cross-validated ridge on a lagged design, from its moments.

The primal route of :mod:`neurodec.ridge._primal` (one float64
eigendecomposition of the training Gram per fold, downdated from the full
Gram; scores from moments; one-pass refit with each target's own alpha),
fed with the Toeplitz moments of :mod:`neurodec.encoding._lags` instead of a
materialized ``n x p`` design. Features and targets arrive centred (the
receptive field removes their means before delaying, as MNE's
``TimeDelayingRidge`` does), so folds are not re-centred.

Notes
-----
Per fold with validation rows ``V`` and rows ``O`` left out of training:
``G_T = G - G_O`` and ``X_T^T Y = X^T Y - X_O^T Y`` (exact downdates),
``G_T = U diag(s) U^T``, ``B = U^T X_T^T Y``. For each alpha the weights
are ``U D B`` with ``D = diag(1 / (s + alpha))`` and the validation
moments follow without predictions: ``sum P^2 = (D B)^T (U^T G_V U) (D B)``,
``sum R P = (D B)^T U^T X_V^T Y``, ``sum P = (U^T S_V)^T D B``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..ridge._primal import eigh_psd
from ..ridge._scoring import score_from_moments
from ._lags import Lags, lagged_cross, lagged_gram, lagged_sums

__all__ = ["LaggedRidgeResult", "Moments", "row_moments", "solve_lagged_ridge_cv"]


@dataclass(frozen=True)
class Moments:
    """Moments of the lagged design over a set of rows."""

    gram: torch.Tensor  # (p, p) float64
    cross: torch.Tensor  # (p, n_targets)
    sums: torch.Tensor  # (p,) float64
    y_sum: torch.Tensor  # (n_targets,)
    y_sq: torch.Tensor  # (n_targets,)
    n: int

    def __add__(self, other: Moments) -> Moments:
        return Moments(*(a + b for a, b in zip(self._fields(), other._fields())), self.n + other.n)

    def __sub__(self, other: Moments) -> Moments:
        return Moments(*(a - b for a, b in zip(self._fields(), other._fields())), self.n - other.n)

    def _fields(self):
        return (self.gram, self.cross, self.sums, self.y_sum, self.y_sq)


@dataclass(frozen=True)
class LaggedRidgeResult:
    """Result of :func:`solve_lagged_ridge_cv`.

    Attributes
    ----------
    best_alphas : tensor of shape (n_targets,)
    cv_scores : tensor of shape (n_alphas, n_targets) or None
        None without cross-validation.
    coef : tensor of shape (n_features * n_delays, n_targets)
        Feature-major (column ``f * n_delays + k``).
    """

    best_alphas: torch.Tensor
    cv_scores: torch.Tensor | None
    coef: torch.Tensor


def _pieces(mask: np.ndarray) -> list[tuple[np.ndarray, int, int]]:
    """Contiguous row runs of a (R, T) mask, batched over segments sharing the same run."""
    runs: dict[tuple[int, int], list[int]] = {}
    for r, row in enumerate(mask):
        edges = np.diff(np.concatenate([[0], row.astype(np.int8), [0]]))
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            runs.setdefault((int(a), int(b)), []).append(r)
    return [(np.asarray(segs), a, b) for (a, b), segs in runs.items()]


def row_moments(
    xp: Sequence[torch.Tensor], ys: Sequence[torch.Tensor], masks: Sequence[np.ndarray], lags: Lags
) -> Moments:
    """Moments of the design rows selected by ``masks``.

    Parameters
    ----------
    xp : sequence of tensors of shape (R_g, T_g + padding, n_features)
        Zero-padded (:meth:`Lags.pad`) float64 features of each segment group.
    ys : sequence of tensors of shape (R_g, T_g, n_targets)
    masks : sequence of bool arrays of shape (R_g, T_g)
    lags : Lags
    """
    L, F, C = lags.n_delays, xp[0].shape[-1], ys[0].shape[-1]
    dev, dtype = ys[0].device, ys[0].dtype
    p = F * L
    out = Moments(
        torch.zeros(p, p, dtype=torch.float64, device=dev),
        torch.zeros(p, C, dtype=dtype, device=dev),
        torch.zeros(p, dtype=torch.float64, device=dev),
        torch.zeros(C, dtype=dtype, device=dev),
        torch.zeros(C, dtype=dtype, device=dev),
        0,
    )
    for x_g, y_g, mask in zip(xp, ys, masks):
        for segs, a, b in _pieces(mask):
            idx = torch.as_tensor(segs, device=dev)
            z = lags.window(x_g[idx], a, b)
            y = y_g[idx, a:b]
            n_rows = y.shape[0] * y.shape[1]
            y_sum, y_sq = y.sum((0, 1)), (y * y).sum((0, 1))
            out = out + Moments(lagged_gram(z, L), lagged_cross(z, y, L), lagged_sums(z, L), y_sum, y_sq, n_rows)
    return out


def _fold_scores(total: Moments, out: Moments, val: Moments, alphas: torch.Tensor, score: str) -> torch.Tensor:
    dtype = total.cross.dtype
    s, U = eigh_psd(total.gram - out.gram)
    s = s.to(dtype)
    U_d = U.to(dtype)
    B = U_d.T @ (total.cross - out.cross)
    AtA = (U.T @ val.gram @ U).to(dtype)
    AR = U_d.T @ val.cross
    sum_a = (U.T @ val.sums).to(dtype)
    sst = (val.y_sq - val.y_sum**2 / val.n).clamp_min(0)
    scores = torch.empty(len(alphas), B.shape[1], dtype=dtype, device=B.device)
    for i, alpha in enumerate(alphas.to(dtype)):
        DB = B / (s + alpha)[:, None]
        scores[i] = score_from_moments(
            rr=val.y_sq,
            rp=(DB * AR).sum(0),
            pp=(DB * (AtA @ DB)).sum(0),
            sum_r=val.y_sum,
            sum_p=sum_a @ DB,
            n=val.n,
            sst=sst,
            score=score,
        )
    return scores


def solve_lagged_ridge_cv(
    xp: Sequence[torch.Tensor],
    ys: Sequence[torch.Tensor],
    lags: Lags,
    alphas: np.ndarray,
    folds: Sequence[tuple[list[np.ndarray], list[np.ndarray]]] | None,
    *,
    score: str = "r2",
) -> LaggedRidgeResult:
    """Ridge on the lagged design of centred features, one alpha per target chosen by CV.

    Parameters
    ----------
    xp : sequence of tensors of shape (R_g, T_g + padding, n_features)
        Zero-padded float64 features per segment group (on the compute device).
    ys : sequence of tensors of shape (R_g, T_g, n_targets)
        Targets in the dtype of the large products.
    lags : Lags
    alphas : array of shape (n_alphas,)
    folds : sequence of (train_masks, val_masks) or None
        Per fold, one bool mask of shape (R_g, T_g) per group for the training
        and the validation rows; None: no cross-validation (one alpha).
    score : {"r2", "pearson"}

    Returns
    -------
    result : LaggedRidgeResult
    """
    dev, dtype = ys[0].device, ys[0].dtype
    alphas_t = torch.as_tensor(alphas, dtype=torch.float64, device=dev)
    everything = [np.ones(y.shape[:2], dtype=bool) for y in ys]
    cv_scores = None
    if folds:
        vals = [row_moments(xp, ys, val, lags) for _, val in folds]
        counts = [np.zeros(y.shape[:2], dtype=np.int64) for y in ys]
        for _, val in folds:
            for c, v in zip(counts, val):
                c += v
        partition = all(np.all(c == 1) for c in counts)
        total = vals[0]
        if partition:  # the validation blocks tile the rows: their sum is the full moments
            for v in vals[1:]:
                total = total + v
        else:
            total = row_moments(xp, ys, everything, lags)
        cv_scores = torch.zeros(len(alphas_t), ys[0].shape[-1], dtype=dtype, device=dev)
        for (train, val), val_m in zip(folds, vals):
            left_out = [~t for t in train]
            same = all(np.array_equal(o, v) for o, v in zip(left_out, val))
            out = val_m if same else row_moments(xp, ys, left_out, lags)
            cv_scores += _fold_scores(total, out, val_m, alphas_t, score)
        cv_scores /= len(folds)
        best = alphas_t[cv_scores.argmax(0)]
    else:
        total = row_moments(xp, ys, everything, lags)
        best = alphas_t[torch.zeros(ys[0].shape[-1], dtype=torch.long, device=dev)]
    if cv_scores is None:  # one alpha for every target: a Cholesky solve (~p^3 / 3) instead of an eigendecomposition
        coef = _solve_one_alpha(total, float(alphas_t[0]))
    else:
        s, U = eigh_psd(total.gram)
        U_d = U.to(dtype)
        coef = U_d @ ((U_d.T @ total.cross) / (s[:, None] + best[None, :]).to(dtype))
    return LaggedRidgeResult(best, cv_scores, coef)


def _solve_one_alpha(total: Moments, alpha: float) -> torch.Tensor:
    """``(G + alpha I)^-1 X^T Y`` by a float64 Cholesky factorization (positive definite for alpha > 0)."""
    eye = torch.eye(total.gram.shape[0], dtype=torch.float64, device=total.gram.device)
    L, info = torch.linalg.cholesky_ex(total.gram + alpha * eye)
    if int(info) != 0:  # G + alpha I lost definiteness to round-off (alpha tiny vs ||G||): same solution via eigh
        s, U = eigh_psd(total.gram)
        return (U @ ((U.T @ total.cross.double()) / (s[:, None] + alpha))).to(total.cross.dtype)
    return torch.cholesky_solve(total.cross.double(), L).to(total.cross.dtype)
