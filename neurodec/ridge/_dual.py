"""Dual (kernel) ridge solver: one float64 eigendecomposition of the n_train x n_train kernel per fold.

Notes
-----
Per fold, the training kernel is centred on the training fold (the kernel of
features centred by their training mean),
``K_c = K_TT - r 1^T - 1 r^T + m`` with ``r`` its row means and ``m`` its
grand mean, and decomposed ``K_c = U diag(s) U^T`` in float64. The centred
validation-vs-train kernel gives, for every alpha, the map from training
targets to validation predictions, ``M_alpha = K_VT,c U diag(1 / (s + alpha)) U^T``
(``n_val x n_train``), formed once in float64 before any target is seen.
Per target batch the validation predictions of all alphas are then
``[M_1; M_2; ...] @ (Y_T - ybar_T)``, one GEMM: on CUDA for the whole batch,
on CPU per cache-sized block of targets, scored before it leaves the cache. Rotating
the targets first (``U^T Y_T``, then one small product per alpha) costs
``n_train^2 t`` more per fold: the maps remove it (as himalaya's kernel
solver does), at ``a n_val n_train`` floats of memory per fold. For a linear
kernel these equal the primal predictions exactly.

Refit: ``dual_coef = U diag(1 / (s + alpha_t)) U^T Y`` on the full centred
kernel, the targets grouped by their alpha; a group large enough to pay for
it goes through the cached ``n x n`` map of its alpha (``2 n^2 t`` instead
of ``4 n^2 t`` through the rotation; himalaya forms every used alpha's
``n x n`` product with all targets, ``2 a n^2 t``). The result is
projected to zero sum (exact in theory), so that
``predict(x) = K(x, X_train) @ dual_coef + intercept`` with
``intercept = ybar - r @ dual_coef``.

Precision: the kernel and its decompositions are float64; the products that
scale with the number of targets run in ``dtype``. With ``truncate=True``
(the linear kernel of features, :func:`neurodec.ridge.solve_ridge_cv`)
eigen-directions below the numerical rank (``s <= s_max * n * eps64``) are
dropped before the cast to ``dtype``. They add nothing to predictions or to
``coef = X_c^T dual_coef`` in exact arithmetic, but a rank-deficient kernel
(``p < n_train``) leaves ``n - p`` null directions whose dual coefficients
``u^T y / alpha`` are large, and ``X_c^T dual_coef`` then cancels them in
float32, losing ~100x the primal route's accuracy (and differing between
CPU and CUDA BLAS). Truncating removes the cancellation and shrinks the
products to the rank; CPU and CUDA follow this one policy.

Leave-one-out: hat diagonal ``1/n + (U * U) @ (s / (s + alpha))``.

FLOP model (t targets, k folds, a alphas): validation predictions
``2 a n n_train t``; refit ``2 n^2 t`` (``4 n^2 t`` for alphas chosen by fewer
than ``2 n`` targets of a batch); independent of ``t``: decompositions
``(k + 1) * ~9 n_train^3``, validation maps ``2 a n n_train^2`` and refit maps
``2 n^3`` per alpha used, all in float64. Memory besides the target batch:
validation maps ``a n n_train`` and refit maps up to ``a n^2`` in ``dtype``,
the full kernel's eigenvectors in float64 and ``dtype``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ._primal import alpha_groups, eigh_psd
from ._scoring import score_predictions

__all__ = ["DualPlan"]

_CPU_CHUNK_BYTES = 4 * 2**20  # the predictions of one CPU block of targets (all alphas, one fold)
_MIN_CHUNK = 256  # targets: narrower GEMMs lose BLAS efficiency


def _decompose(Kc: torch.Tensor, truncate: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 eigendecomposition, optionally without the numerically null directions."""
    s, U = eigh_psd(Kc)
    if not truncate or len(s) == 0:
        return s, U
    keep = s > s.max() * len(s) * torch.finfo(torch.float64).eps
    return s[keep], U[:, keep]


def _centre_kernel(K: torch.Tensor, fit_intercept: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre a square training kernel; return it, its row means and grand mean."""
    if not fit_intercept:
        zero = torch.zeros((), dtype=K.dtype, device=K.device)
        return K, torch.zeros(K.shape[0], dtype=K.dtype, device=K.device), zero
    r = K.mean(1)
    m = r.mean()
    return K - r[:, None] - r[None, :] + m, r, m


@dataclass(frozen=True)
class _Fold:
    train: torch.Tensor
    val: torch.Tensor
    maps: torch.Tensor  # (n_alphas, n_val, n_train): training targets -> validation predictions


class DualPlan:
    """Everything the dual solver precomputes before seeing any target.

    Parameters
    ----------
    K : tensor of shape (n_samples, n_samples)
        Training kernel, float64, on the compute device.
    splits : sequence of (train, val) index arrays, or "loo"
    alphas : tensor of shape (n_alphas,)
        The penalties every target is scored with.
    fit_intercept : bool
    dtype : torch.dtype
        Dtype of the large products.
    truncate : bool
        Drop eigen-directions below the numerical rank (see Notes of the
        module). Predictions are unchanged in exact arithmetic, the dual
        coefficients lose their null-space part; for kernels of features.
    """

    def __init__(
        self,
        K: torch.Tensor,
        splits: Sequence | str,
        *,
        alphas: torch.Tensor,
        fit_intercept: bool,
        dtype: torch.dtype,
        truncate: bool = False,
    ) -> None:
        self.n_samples = K.shape[0]
        self.alphas = alphas.to(device=K.device, dtype=torch.float64)
        self.fit_intercept = fit_intercept
        self.dtype = dtype
        self.truncate = truncate
        Kc, self.row_mean, _ = _centre_kernel(K, fit_intercept)
        s, U = _decompose(Kc, truncate)
        self.s, self.U = s.to(dtype), U.to(dtype)
        self.s64, self.U64 = s, U  # the refit maps are formed in float64
        self._refit_maps: dict[float, torch.Tensor] = {}  # alpha -> U diag(1 / (s + alpha)) U^T, built on demand
        self.loo = isinstance(splits, str)
        if self.loo:
            self.U2 = U * U
            self.folds: list[_Fold] = []
        else:
            self.folds = [self._fold(K, tr, va) for tr, va in splits]

    def _fold(self, K: torch.Tensor, train, val) -> _Fold:
        dev = K.device
        tr = torch.as_tensor(np.asarray(train), device=dev, dtype=torch.long)
        va = torch.as_tensor(np.asarray(val), device=dev, dtype=torch.long)
        Kc, r, m = _centre_kernel(K[tr][:, tr], self.fit_intercept)
        s, U = _decompose(Kc, self.truncate)
        K_vt = K[va][:, tr]
        if self.fit_intercept:
            K_vt = K_vt - K_vt.mean(1, keepdim=True) - r[None, :] + m
        shrink = 1.0 / (s[None, :] + self.alphas[:, None])  # (n_alphas, rank)
        maps = ((K_vt @ U)[None] * shrink[:, None, :]) @ U.T
        return _Fold(train=tr, val=va, maps=maps.to(self.dtype))

    def bytes_per_target(self, n_alphas: int) -> int:
        """Working memory per target of one batch (all temporaries, generous)."""
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        # All alphas at once: n_alphas shrunk rotations and prediction blocks (and residuals) per target.
        n = self.n_samples
        n_pred = n if self.loo else max((len(f.val) for f in self.folds), default=0)
        per_target_alphas = n_alphas if self.U.device.type != "cpu" else 1  # CPU groups: fixed byte cap
        return itemsize * (7 * n + per_target_alphas * (2 * n + 3 * n_pred + 4) + 2 * n_alphas + 8)

    def centre_targets(self, Y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shift targets by their full-data mean (zeros without intercept)."""
        y_mean = Y.mean(0) if self.fit_intercept else torch.zeros(Y.shape[1], dtype=Y.dtype, device=Y.device)
        return Y - y_mean, y_mean

    def cv_scores(self, Yc: torch.Tensor, score: str) -> torch.Tensor:
        """Mean validation score per alpha and target: tensor of shape (n_alphas, n_targets)."""
        if self.loo:
            return self._loo_scores(Yc, score)
        n_alphas, t = len(self.alphas), Yc.shape[1]
        scores = torch.zeros(n_alphas, t, dtype=self.dtype, device=Yc.device)
        for cols in self._column_chunks(t, Yc.element_size(), Yc.device):
            Yb = Yc[:, cols]
            for fold in self.folds:
                Y_train = Yb[fold.train]
                ybar = Y_train.mean(0) if self.fit_intercept else torch.zeros_like(Y_train[0])
                Y_train -= ybar
                R = Yb[fold.val] - ybar
                sst = ((R - R.mean(0)) ** 2).sum(0)
                # Every alpha in one GEMM: (n_alphas n_val x n_train) @ (n_train x chunk).
                P = (fold.maps.view(-1, fold.maps.shape[-1]) @ Y_train).view(n_alphas, len(fold.val), -1)
                scores[:, cols] += score_predictions(R[None], P, sst, score, dim=1)
        return scores / len(self.folds)

    def _column_chunks(self, t: int, itemsize: int, device: torch.device) -> list[slice]:
        """Target columns scored together: all at once on an accelerator, cache-sized blocks on CPU.

        On CPU a block's targets, their fold copies and the predictions of all
        alphas stay in cache between the GEMM and the scoring, instead of
        streaming ``n_alphas n_val`` floats per target through memory twice.
        """
        if device.type != "cpu":
            return [slice(0, t)]
        rows = max(self.n_samples, max(fold.maps.shape[0] * fold.maps.shape[1] for fold in self.folds))
        size = max(_MIN_CHUNK, _CPU_CHUNK_BYTES // (itemsize * rows))
        return [slice(i, min(i + size, t)) for i in range(0, t, size)]

    def _loo_scores(self, Yc, score) -> torch.Tensor:
        alphas = self.alphas
        B = self.U.T @ Yc
        ratio = self.s64[:, None] / (self.s64[:, None] + alphas.to(torch.float64)[None, :])
        leverage = self.U2 @ ratio + (1.0 / self.n_samples if self.fit_intercept else 0.0)
        one_minus_h = (1 - leverage).clamp_min(torch.finfo(self.dtype).eps).to(self.dtype)
        ratio = ratio.to(self.dtype)
        sst = ((Yc - Yc.mean(0)) ** 2).sum(0)
        scores = torch.empty(len(alphas), Yc.shape[1], dtype=self.dtype, device=Yc.device)
        Y3 = Yc[:, None, :]
        for g in alpha_groups(len(alphas), Yc.numel() * Yc.element_size(), Yc.device):
            RB = ratio[:, g, None] * B[:, None, :]  # (rank, group, t)
            fitted = (self.U @ RB.view(B.shape[0], -1)).view(self.n_samples, RB.shape[1], -1)
            E = (Y3 - fitted) / one_minus_h[:, g, None]
            scores[g] = score_predictions(Y3, Y3 - E, sst, score)
        return scores

    def refit(self, Yc: torch.Tensor, y_mean: torch.Tensor, best_alphas: torch.Tensor):
        """Dual coefficients (n_samples, n_targets) and intercepts (n_targets,)."""
        dual = torch.empty_like(Yc)
        for alpha in torch.unique(best_alphas).tolist():
            cols = torch.nonzero(best_alphas == alpha).squeeze(1)
            dual[:, cols] = self._solve_one_alpha(Yc[:, cols], alpha)
        if not self.fit_intercept:
            return dual, torch.zeros_like(y_mean)
        dual = dual - dual.mean(0)
        return dual, y_mean - self.row_mean.to(self.dtype) @ dual

    def _solve_one_alpha(self, Y: torch.Tensor, alpha: float) -> torch.Tensor:
        """``U diag(1 / (s + alpha)) U^T Y`` for the targets that chose ``alpha``.

        Through the cached ``n x n`` map of ``alpha`` (one GEMM, ``2 n^2 t``)
        once building it (``2 n^2 rank`` in float64, about twice the cost of
        float32 per FLOP) costs at most half what the targets save, else
        through the rotation (``4 n rank t``).
        """
        n, rank = self.U.shape
        W = self._refit_maps.get(alpha)
        if W is None and 2 * rank > n and Y.shape[1] >= 2 * rank:
            W = self._refit_maps[alpha] = ((self.U64 / (self.s64 + alpha)) @ self.U64.T).to(self.dtype)
        if W is not None:
            return W @ Y
        return self.U @ ((self.U.T @ Y) / (self.s + alpha)[:, None])
