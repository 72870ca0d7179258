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
on CPU per cache-sized block of targets, scored before it leaves the cache
(the CPU loop runs in numpy on views of the tensors: see
:mod:`neurodec.ridge._host_blas`). Each block is first shifted by one of its
samples, which brings targets far from zero to the scale of their spread
before any float32 mean is taken. Rotating
the targets first (``U^T Y_T``, then one small product per alpha) costs
``n_train^2 t`` more per fold: the maps remove it (as himalaya's kernel
solver does), at ``a n_val n_train`` floats of memory per fold. For a linear
kernel these equal the primal predictions exactly.

Refit: ``dual_coef = U diag(1 / (s + alpha_t)) U^T Y`` on the full centred
kernel, the targets sorted by their alpha (one column gather there, one back);
a run of equal alphas large enough to pay for
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
validation maps ``a n n_train`` and refit maps up to ``a n^2`` in ``dtype``
(at most :data:`REFIT_MAP_MEMORY_FRACTION` of the device's memory, 2 GiB
on CPU), the full kernel's eigenvectors in float64 and ``dtype``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._logging import get_logger
from ._batching import total_bytes
from ._host_blas import namespace, viewer
from ._primal import alpha_groups, eigh_psd
from ._scoring import pearson_from_moments, r2_from_sse, score_predictions

__all__ = ["REFIT_MAP_MEMORY_FRACTION", "DualPlan"]

logger = get_logger(__name__)

#: Share of the device's memory (CUDA) or RAM (CPU) the cached refit maps may take together.
REFIT_MAP_MEMORY_FRACTION = 1 / 8
# On CPU also at most this: a cluster job's memory limit is often far below the node's physical RAM.
_CPU_REFIT_MAP_CAP = 2 * 2**30

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
    splits : sequence of (train, val) index arrays, "loo", or None (no search: refit only)
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
        self.searches = splits is not None
        if self.loo:
            self.U2 = U * U
            self.folds: list[_Fold] = []
        else:
            self.folds = [self._fold(K, tr, va) for tr, va in splits or []]

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

    def cv_scores(self, Y: torch.Tensor, score: str) -> torch.Tensor:
        """Mean validation score per alpha and target: tensor of shape (n_alphas, n_targets).

        ``Y`` (n_samples, n_targets) need not be centred: each block of targets
        is shifted by one of its samples, each fold centred on its training means.
        """
        if self.loo:
            return self._loo_scores(Y, score)
        n_alphas, t = len(self.alphas), Y.shape[1]
        scores = torch.zeros(n_alphas, t, dtype=self.dtype, device=Y.device)
        view = viewer(Y.device, sum(f.maps.numel() for f in self.folds) * 2.0 * t)
        folds = [(view(f.maps).reshape(-1, f.maps.shape[-1]), view(f.train), view(f.val)) for f in self.folds]
        for cols in self._column_chunks(t, Y.element_size(), Y.device):
            Yb = self._shifted(view(Y)[:, cols])
            for maps, train, val in folds:
                scores[:, cols] += self._fold_scores(maps, Yb[train], Yb[val], score)
        return scores / len(self.folds)

    def _shifted(self, Yb):
        """A block of targets (array or tensor) minus its first sample (a copy; the block itself without intercept).

        With an intercept only differences between samples matter. The shift
        brings the values to the scale of their spread (in float32, exactly for
        targets far from zero), so that the float32 means taken next, and the
        centring by them, lose nothing to a large mean.
        """
        return Yb - Yb[0] if self.fit_intercept else Yb

    def _fold_scores(self, maps, Y_train, Y_val, score: str) -> torch.Tensor:
        """Scores (n_alphas, n_targets) of one fold from its rows of a shifted block (fresh copies, changed here)."""
        xp = namespace(Y_train)
        n_val = Y_val.shape[0]
        if self.fit_intercept:
            train_mean = Y_train.mean(0)
            Y_train -= train_mean
            Y_val -= train_mean
        # Every alpha in one GEMM: (n_alphas n_val x n_train) @ (n_train x targets).
        P = xp.matmul(maps, Y_train).reshape(len(self.alphas), n_val, -1)
        val_sums = Y_val.sum(0)
        R_c = Y_val - val_sums / n_val
        sst = torch.as_tensor(_sum_products(R_c, R_c, "vt,vt->t"))
        if score == "r2":
            P -= Y_val  # in place: minus the residuals
            return r2_from_sse(torch.as_tensor(_sum_products(P, P, "avt,avt->at")), sst)
        return pearson_from_moments(
            rp=torch.as_tensor(_sum_products(Y_val, P, "vt,avt->at")),
            pp=torch.as_tensor(_sum_products(P, P, "avt,avt->at")),
            sum_r=torch.as_tensor(val_sums),
            sum_p=torch.as_tensor(P.sum(1)),
            n=n_val,
            sst=sst,
        )

    def _column_chunks(self, t: int, itemsize: int, device: torch.device) -> list[slice]:
        """Target columns processed together: all at once on an accelerator, cache-sized blocks on CPU.

        On CPU a block's targets, their fold copies and the predictions of all
        alphas stay in cache between the GEMM and the scoring, instead of
        streaming ``n_alphas n_val`` floats per target through memory twice.
        """
        if device.type != "cpu":
            return [slice(0, t)]
        rows = max([self.n_samples] + [fold.maps.shape[0] * fold.maps.shape[1] for fold in self.folds])
        size = max(_MIN_CHUNK, _CPU_CHUNK_BYTES // (itemsize * rows))
        return [slice(i, min(i + size, t)) for i in range(0, t, size)]

    def _loo_scores(self, Y, score) -> torch.Tensor:
        alphas = self.alphas
        Yc = Y - Y.mean(0) if self.fit_intercept else Y
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

    def refit(self, Y: torch.Tensor, best_alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dual coefficients (n_samples, n_targets), projected to zero sum, and the targets' means (n_targets,).

        The targets (``Y`` need not be centred) are sorted by their alpha in
        one column gather, centred, each run of equal alphas solved in place,
        and the solutions gathered back in order: two gathers of the batch
        instead of a scatter per alpha. The means are zeros without intercept;
        :meth:`intercept` completes the model.
        """
        n, t = Y.shape
        view = viewer(Y.device, 2.0 * n * n * t)
        self._build_refit_maps(best_alphas, view)
        order = torch.argsort(best_alphas, stable=True)
        alphas, counts = torch.unique_consecutive(best_alphas[order], return_counts=True)
        Ys = view(torch.empty(Y.shape, dtype=self.dtype, device=Y.device))
        _take_columns(view(Y.to(self.dtype)), view(order), Ys)
        if self.fit_intercept:
            # Centred exactly, after a shift (see _shifted): a constant left in Ys comes out scaled by
            # 1 / alpha and swamps the float32 solutions of small alphas before the projection removes it.
            first = Ys[0] + 0  # a copy
            Ys -= first
            shifted_mean = Ys.mean(0)
            Ys -= shifted_mean
        start = 0
        for alpha, count in zip(alphas.tolist(), counts.tolist()):
            Ys[:, start : start + count] = self._solve_one_alpha(Ys[:, start : start + count], alpha, view)
            start += count
        back = view(torch.argsort(order))
        dual = torch.empty(Y.shape, dtype=self.dtype, device=Y.device)
        _take_columns(Ys, back, view(dual))
        del Ys
        if not self.fit_intercept:
            return dual, torch.zeros(t, dtype=self.dtype, device=Y.device)
        out = view(dual)
        out -= out.mean(0)
        return dual, torch.as_tensor((first + shifted_mean)[back])

    def intercept(self, dual: torch.Tensor, y_mean: torch.Tensor) -> torch.Tensor:
        """``y_mean - r @ dual`` (``r`` the training kernel's row means): ``predict = K(x, X) @ dual + intercept``."""
        if not self.fit_intercept:
            return torch.zeros_like(y_mean)
        return y_mean - self.row_mean.to(self.dtype) @ dual

    def _build_refit_maps(self, best_alphas: torch.Tensor, view) -> None:
        """Form the ``n x n`` map of every alpha that enough targets of the batch chose.

        Through the map a target costs one GEMM column (``2 n^2``), through the
        rotation two (``4 n rank``); building the map costs ``2 n^2 rank`` in
        float64, about twice the float32 cost per FLOP. It is built when at
        least ``2 rank`` targets chose the alpha (and the rank exceeds ``n / 2``),
        so that it costs at most half what the targets save, and while all maps
        stay within :data:`REFIT_MAP_MEMORY_FRACTION` of the device's memory
        (on CPU also within 2 GiB; at NSD size, 9,000 trials, a map is 324 MB
        in float32), most-chosen alphas first: the other alphas' targets go
        through the rotation.
        """
        n, rank = self.U.shape
        if 2 * rank <= n:
            return
        map_bytes = n * n * self.U.element_size()
        share = int(REFIT_MAP_MEMORY_FRACTION * total_bytes(self.U.device))
        if self.U.device.type == "cpu":
            share = min(share, _CPU_REFIT_MAP_CAP)
        room = share // map_bytes - len(self._refit_maps)
        alphas, counts = torch.unique(best_alphas, return_counts=True)
        for alpha, count in sorted(zip(alphas.tolist(), counts.tolist()), key=lambda pair: -pair[1]):
            if count < 2 * rank or alpha in self._refit_maps:
                continue
            if room <= 0:
                logger.debug("Refit maps use their memory share; alpha %g goes through the rotation.", alpha)
                continue
            U, s = view(self.U64), view(self.s64)
            self._refit_maps[alpha] = torch.as_tensor((U / (s + alpha)) @ U.T).to(self.dtype)
            room -= 1

    def _solve_one_alpha(self, Y, alpha: float, view):
        """``U diag(1 / (s + alpha)) U^T Y`` for targets (array or tensor, as ``view`` gives) that chose ``alpha``."""
        W = self._refit_maps.get(alpha)
        if W is not None:
            return view(W) @ Y
        U, s = view(self.U), view(self.s)
        return U @ ((U.T @ Y) / (s + alpha)[:, None])


def _take_columns(Y, index, out) -> None:
    """Columns ``index`` of an array or tensor into ``out`` (``np.take`` with ``out`` and no bounds
    check: ~5x faster than ``out[...] = Y[:, index]``)."""
    if isinstance(Y, np.ndarray):
        np.take(Y, index, axis=1, out=out, mode="clip")
    else:
        torch.index_select(Y, 1, index, out=out)


def _sum_products(a, b, spec: str):
    """``einsum(spec, a, b)`` for arrays (no temporary on CPU), ``(a * b).sum(-2)`` for tensors.

    ``spec`` contracts the samples axis, second to last in ``b``.
    """
    if isinstance(a, np.ndarray):
        return np.einsum(spec, a, b)
    return (a * b).sum(-2)
