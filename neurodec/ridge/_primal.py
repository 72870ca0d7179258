"""Primal ridge solver: one float64 eigendecomposition of the p x p Gram per fold.

Notes
-----
Let ``X`` (n x p) be centred once by its full-data mean (this changes
nothing for a model with an intercept and keeps later float32 products free
of cancellation). Per fold, with training rows ``T`` and the rows ``O`` left
out of training (the validation block, plus any gap):

* ``X_T^T X_T = X^T X - X_O^T X_O`` (a downdate, float64), then centring on
  the training fold: ``G_T = X_T^T X_T - n_T mu_T mu_T^T`` with
  ``mu_T = (sum_all - sum_O) / n_T``; the same for ``X_T^T Y_T`` with the
  targets' training means. This is exactly the centring that scikit-learn and
  himalaya apply to the training fold.
* ``G_T = V diag(s) V^T`` (float64), then ``A = (X_val - mu_T) V`` once per
  fold and ``B = V^T X_T^T Y_T`` once per target batch (float32).
* For each alpha, validation predictions are ``A diag(1 / (s + alpha)) B``.
  On CUDA all alphas go through one GEMM, ``A @ [D_1 B | D_2 B | ...]``
  (p x a t on the right), instead of one GEMM per alpha: larger products keep
  the GPU busy at one kernel launch, and the target batch is sized for the
  alpha axis (:meth:`PrimalPlan.bytes_per_target`). On CPU the alphas go in
  groups whose products stay under 16 MiB (see :func:`alpha_groups`). When
  the validation block has more rows than there are features, scores come
  from moments instead (``B^T D (A^T A) D B``), one p x p by p x a t GEMM.

Refit: the full-data Gram is decomposed once and each target gets its own
shrinkage in the eigenbasis, ``coef = V (diag_t(1 / (s + alpha_t)) * B)``,
so weights are computed for each target's best alpha only.

Leave-one-out: with ``Q = X V``, the hat matrix diagonal for each alpha is
``1/n + (Q * Q) @ (1 / (s + alpha))`` and the exact LOO residuals are
``(y - y_hat) / (1 - h)``.

FLOP model (t targets, k folds, a alphas, n_v validation rows per fold):
``X^T Y`` and the downdates ``2 n p t`` each; rotations ``2 k p^2 t``;
validation predictions ``2 a n p t`` (or ``2 (a + 1) k p^2 t`` on the
moment route when ``p < n_v``, where ``A^T R`` is rotated from the
already computed ``X_val^T Y_val``); refit ``4 p^2 t``. Decompositions cost
``(k + 1) * ~9 p^3`` in float64, independent of ``t``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ._scoring import score_from_moments, score_predictions

__all__ = ["PrimalPlan", "alpha_groups", "eigh_psd", "shrink_all_alphas"]


def eigh_psd(G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigendecomposition of a symmetric PSD matrix; round-off negatives set to 0."""
    s, V = torch.linalg.eigh(G)
    return s.clamp_min(0), V


# On CPU an all-alpha product larger than the caches loses more to memory traffic in the
# elementwise scoring that follows than one large GEMM gains (measured, one thread: 10 alphas
# at once 1.3x slower than one GEMM per alpha at n_val=400, p=1024, 4000 targets; groups of
# 2 alphas (13 MB) as fast as the loop, of 5 (32 MB) 1.3x slower), so CPU groups are capped
# in bytes; other devices (CUDA) take all alphas in one GEMM.
_CPU_GROUP_BYTES = 16 * 2**20


def alpha_groups(n_alphas: int, bytes_per_alpha: int, device: torch.device) -> list[slice]:
    """Slices of the alpha axis whose products are formed together (one GEMM per slice).

    Parameters
    ----------
    n_alphas : int
    bytes_per_alpha : int
        Size of one alpha's largest product (e.g. its validation predictions).
    device : torch.device
        CPU: groups capped at 16 MiB; other devices: one group.
    """
    if device.type != "cpu":
        return [slice(0, n_alphas)]
    size = max(1, min(n_alphas, _CPU_GROUP_BYTES // max(1, bytes_per_alpha)))
    return [slice(i, min(i + size, n_alphas)) for i in range(0, n_alphas, size)]


def shrink_all_alphas(B: torch.Tensor, s: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """``B / (s + alpha)`` for every alpha at once: tensor of shape (p, n_alphas, n_targets).

    Laid out so that ``.view(p, n_alphas * n_targets)`` feeds one GEMM for all alphas.
    """
    shrink = 1.0 / (s[:, None] + alphas.to(s.dtype)[None, :])  # (p, n_alphas)
    return shrink[:, :, None] * B[:, None, :]


def complement(index: np.ndarray, n: int) -> np.ndarray:
    """Indices in ``range(n)`` that are not in ``index``."""
    mask = np.ones(n, dtype=bool)
    mask[np.asarray(index)] = False
    return np.flatnonzero(mask)


@dataclass(frozen=True)
class _Fold:
    """Target-independent quantities of one primal fold."""

    val: torch.Tensor  # (n_val,) validation rows
    rows: torch.Tensor  # rows whose products are subtracted (downdate) or used directly
    downdate: bool
    n_train: int
    x_rows: torch.Tensor  # (n_rows, p)
    mu: torch.Tensor  # (p,) training mean of the centred X (zeros without intercept)
    s: torch.Tensor  # (p,) eigenvalues of the centred training Gram
    V: torch.Tensor  # (p, p) eigenvectors
    A: torch.Tensor  # (n_val, p) centred validation rows in the eigenbasis
    AtA: torch.Tensor | None  # (p, p) for the moment route, else None
    A_sum: torch.Tensor | None  # (p,) column sums of A for the moment route
    rows_are_val: bool  # the downdated rows are exactly the validation rows
    x_val_sum: torch.Tensor  # (p,) column sums of the validation rows


class PrimalPlan:
    """Everything the primal solver precomputes before seeing any target.

    Parameters
    ----------
    X : tensor of shape (n_samples, n_features)
        On the compute device.
    splits : sequence of (train, val) index arrays, "loo", or None (no search: refit only)
    n_alphas : int
        Used to choose between predictions and moments per fold.
    fit_intercept : bool
    dtype : torch.dtype
        Dtype of the large products; decompositions are float64.
    """

    def __init__(
        self, X: torch.Tensor, splits: Sequence | str, *, n_alphas: int, fit_intercept: bool, dtype: torch.dtype
    ) -> None:
        X64 = X.to(torch.float64)
        n, p = X64.shape
        self.n_samples, self.n_features = n, p
        self.fit_intercept = fit_intercept
        self.dtype = dtype
        self.x_mean = X64.mean(0) if fit_intercept else torch.zeros(p, dtype=torch.float64, device=X.device)
        Xc64 = X64 - self.x_mean
        self.x = Xc64.to(dtype)
        gram = Xc64.T @ Xc64
        s, V = eigh_psd(gram)
        self.s, self.V = s.to(dtype), V.to(dtype)
        self.loo = isinstance(splits, str)
        self.searches = splits is not None
        if self.loo:
            Q64 = Xc64 @ V
            self.Q = Q64.to(dtype)
            self.Q2 = Q64 * Q64  # float64: leverages near 1 need the precision
            self.folds: list[_Fold] = []
        else:
            x_sum = Xc64.sum(0)
            self.folds = [self._fold(Xc64, gram, x_sum, tr, va, n_alphas) for tr, va in splits or []]

    def _fold(self, Xc64, gram, x_sum, train, val, n_alphas) -> _Fold:
        n, p = Xc64.shape
        dev = Xc64.device
        out = complement(train, n)
        downdate = len(out) <= len(train)
        rows = torch.as_tensor(out if downdate else np.asarray(train), device=dev, dtype=torch.long)
        x_rows64 = Xc64[rows]
        if downdate:
            g_train = gram - x_rows64.T @ x_rows64
            sum_train = x_sum - x_rows64.sum(0)
        else:
            g_train = x_rows64.T @ x_rows64
            sum_train = x_rows64.sum(0)
        n_train = len(train)
        if self.fit_intercept:
            mu = sum_train / n_train
            g_train = g_train - n_train * torch.outer(mu, mu)
        else:
            mu = torch.zeros(p, dtype=torch.float64, device=dev)
        s, V = eigh_psd(g_train)
        val_t = torch.as_tensor(np.asarray(val), device=dev, dtype=torch.long)
        A64 = (Xc64[val_t] - mu) @ V
        n_val = len(val)
        # Moments cost 2p^2 per target and alpha (plus one A^T R), predictions 2 n_val p.
        use_moments = n_alphas * p * p + n_val * p < n_alphas * n_val * p
        return _Fold(
            val=val_t,
            rows=rows,
            downdate=downdate,
            n_train=n_train,
            x_rows=x_rows64.to(self.dtype),
            mu=mu.to(self.dtype),
            s=s.to(self.dtype),
            V=V.to(self.dtype),
            A=A64.to(self.dtype),
            AtA=(A64.T @ A64).to(self.dtype) if use_moments else None,
            A_sum=A64.sum(0).to(self.dtype) if use_moments else None,
            rows_are_val=downdate and np.array_equal(np.sort(np.asarray(val)), out),
            x_val_sum=Xc64[val_t].sum(0).to(self.dtype),
        )

    def bytes_per_target(self, n_alphas: int) -> int:
        """Working memory per target of one batch (all temporaries, generous).

        The per-alpha products of all alphas are formed at once: ``n_alphas``
        shrunk rotations (p each) and ``n_alphas`` blocks of predictions (and
        their residuals) per target, so the alpha axis scales the budget.
        """
        n, p = self.n_samples, self.n_features
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        n_pred = n if self.loo else max((0 if f.AtA is not None else len(f.val) for f in self.folds), default=0)
        per_target_alphas = n_alphas if self.x.device.type != "cpu" else 1  # CPU groups: fixed byte cap
        return itemsize * (4 * n + 6 * p + per_target_alphas * (2 * p + 3 * n_pred + 4) + 2 * n_alphas + 8)

    def centre_targets(self, Y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shift targets by their full-data mean (zeros without intercept)."""
        y_mean = Y.mean(0) if self.fit_intercept else torch.zeros(Y.shape[1], dtype=Y.dtype, device=Y.device)
        return Y - y_mean, y_mean

    def cv_scores(self, Yc: torch.Tensor, XtY: torch.Tensor, alphas: torch.Tensor, score: str) -> torch.Tensor:
        """Mean validation score per alpha and target: tensor of shape (n_alphas, n_targets)."""
        if self.loo:
            return self._loo_scores(Yc, XtY, alphas, score)
        scores = torch.zeros(len(alphas), Yc.shape[1], dtype=self.dtype, device=Yc.device)
        y_sum = Yc.sum(0)
        for fold in self.folds:
            Y_rows = Yc[fold.rows]
            x_rows_Y = fold.x_rows.T @ Y_rows
            if fold.downdate:
                xty = XtY - x_rows_Y
                ysum_train = y_sum - Y_rows.sum(0)
            else:
                xty, ysum_train = x_rows_Y, Y_rows.sum(0)
            if self.fit_intercept:
                ybar = ysum_train / fold.n_train
                xty = xty - torch.outer(fold.mu, ysum_train)
            else:
                ybar = torch.zeros_like(ysum_train)
            B = fold.V.T @ xty
            R = Yc[fold.val] - ybar
            sst = ((R - R.mean(0)) ** 2).sum(0)
            if fold.AtA is not None:
                AtR, rr, sum_r = self._rotated_residuals(fold, R, x_rows_Y, ybar), (R * R).sum(0), R.sum(0)
            rows = len(fold.val) if fold.AtA is None else B.shape[0]
            for g in alpha_groups(len(alphas), rows * R.numel() // len(fold.val) * R.element_size(), R.device):
                DB = shrink_all_alphas(B, fold.s, alphas[g])  # (p, group, t)
                DB_flat = DB.view(B.shape[0], -1)
                if fold.AtA is None:
                    # The group's alphas in one GEMM: (n_val x p) @ (p x group t).
                    P = (fold.A @ DB_flat).view(len(fold.val), DB.shape[1], -1)
                    scores[g] += score_predictions(R[:, None, :], P, sst, score)
                    continue
                scores[g] += score_from_moments(
                    rr=rr,
                    rp=(DB * AtR[:, None, :]).sum(0),
                    pp=(DB * (fold.AtA @ DB_flat).view_as(DB)).sum(0),
                    sum_r=sum_r,
                    sum_p=(fold.A_sum @ DB_flat).view(DB.shape[1], -1),
                    n=len(fold.val),
                    sst=sst,
                    score=score,
                )
        return scores / len(self.folds)

    @staticmethod
    def _rotated_residuals(fold: _Fold, R: torch.Tensor, x_rows_Y: torch.Tensor, ybar: torch.Tensor) -> torch.Tensor:
        """``A^T R`` (p x t); from ``X_val^T Y_val`` when already at hand (2 p^2 t instead of 2 n_val p t)."""
        if not fold.rows_are_val or len(fold.val) <= fold.V.shape[0]:
            return fold.A.T @ R
        # (X_v - 1 mu^T)^T (Y_v - 1 ybar^T), expanded; Y_v sums are those of R shifted back by ybar.
        n_val = len(fold.val)
        y_val_sum = R.sum(0) + n_val * ybar
        centred = x_rows_Y - torch.outer(fold.mu, y_val_sum) - torch.outer(fold.x_val_sum - n_val * fold.mu, ybar)
        return fold.V.T @ centred

    def _loo_scores(self, Yc, XtY, alphas, score) -> torch.Tensor:
        B = self.V.T @ XtY
        shrink = 1.0 / (self.s.to(torch.float64)[:, None] + alphas.to(torch.float64)[None, :])
        leverage = self.Q2 @ shrink + (1.0 / self.n_samples if self.fit_intercept else 0.0)
        one_minus_h = (1 - leverage).clamp_min(torch.finfo(self.dtype).eps).to(self.dtype)
        sst = ((Yc - Yc.mean(0)) ** 2).sum(0)
        scores = torch.empty(len(alphas), Yc.shape[1], dtype=self.dtype, device=Yc.device)
        Y3 = Yc[:, None, :]
        for g in alpha_groups(len(alphas), Yc.numel() * Yc.element_size(), Yc.device):
            DB = shrink_all_alphas(B, self.s, alphas[g])
            # The group's alphas in one GEMM; LOO residuals are (y - y_hat) / (1 - h), h per sample and alpha.
            fitted = (self.Q @ DB.view(B.shape[0], -1)).view(self.n_samples, DB.shape[1], -1)
            E = (Y3 - fitted) / one_minus_h[:, g, None]
            scores[g] = score_predictions(Y3, Y3 - E, sst, score)
        return scores

    def refit(self, XtY: torch.Tensor, best_alphas: torch.Tensor) -> torch.Tensor:
        """Weights of shape (n_features, n_targets), each target at its own alpha."""
        B = self.V.T @ XtY
        return self.V @ (B / (self.s[:, None] + best_alphas.to(self.dtype)[None, :]))
