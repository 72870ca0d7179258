"""Banded ridge solver: random search over band weights, cross-validated alphas.

Banded (group) ridge gives each feature space ``b`` its own regularization.
Scaling the columns of band ``b`` by ``sqrt(gamma_b)`` (``gamma`` on the
simplex) and fitting an ordinary ridge with penalty ``alpha`` is the same
model with per-band penalties ``alpha / gamma_b``. For every candidate
``gamma`` this solver scores all ``alphas`` by cross-validation for all targets
and keeps, per target, the best ``(gamma, alpha)``: himalaya's random search
(``solve_group_ridge_random_search``), with the same candidates and the same
selection rule.

Speed comes from never touching the samples inside the search: the Gram
matrix ``X^T X`` and ``X^T Y`` of each training fold are computed once (by
downdating the full ones with the validation block) and each candidate only
rescales them, ``D G D`` and ``D X^T Y`` with ``D = diag(sqrt(gamma))``,
before one float64 eigendecomposition and one GEMM per alpha.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from neurodec._device import resolve_device
from neurodec._logging import progress

__all__ = ["BandedRidgeCVResult", "generate_band_weights", "solve_banded_ridge_cv"]


@dataclasses.dataclass(frozen=True)
class BandedRidgeCVResult:
    """What :func:`solve_banded_ridge_cv` returns (numpy arrays on the CPU).

    Attributes
    ----------
    coef : array of shape (n_features, n_targets)
        Weights on the unscaled features, refit on all samples.
    intercept : array of shape (n_targets,)
        Zeros when ``fit_intercept=False``.
    best_gammas : array of shape (n_bands, n_targets)
        Selected band weights (on the simplex) per target.
    best_alphas : array of shape (n_targets,)
        Selected alpha per target.
    deltas : array of shape (n_bands, n_targets)
        ``log(best_gammas / best_alphas)``: the log band scalings, as himalaya reports them.
    cv_scores : array of shape (n_candidates, n_targets)
        Cross-validation score of each candidate at its best alpha, averaged over folds.
    """

    coef: np.ndarray
    intercept: np.ndarray
    best_gammas: np.ndarray
    best_alphas: np.ndarray
    deltas: np.ndarray
    cv_scores: np.ndarray


def generate_band_weights(
    n_candidates: int,
    n_bands: int,
    *,
    concentration: float | Sequence[float] = (0.1, 1.0),
    random_state: int | np.random.RandomState | None = None,
) -> np.ndarray:
    """Candidate band weights on the simplex, drawn as himalaya draws them.

    The first candidate is the uniform weighting (plain ridge on all bands);
    the others are Dirichlet samples whose concentration cycles through
    ``concentration`` (small values favour a few bands, 1 is uniform on the
    simplex, ``inf`` gives equal weights). With the same integer
    ``random_state`` the candidates equal himalaya's
    ``generate_dirichlet_samples`` (with its first row set to uniform).

    Parameters
    ----------
    n_candidates : int
        Number of candidates.
    n_bands : int
        Number of feature spaces.
    concentration : float or sequence of float
        Dirichlet concentrations, cycled.
    random_state : int, RandomState or None
        Seed of the legacy ``numpy.random.RandomState`` stream.

    Returns
    -------
    gammas : array of shape (n_candidates, n_bands)
        Each row sums to one.
    """
    if n_candidates < 1 or n_bands < 1:
        raise ValueError(f"n_candidates and n_bands must be >= 1. Got {n_candidates} and {n_bands}.")
    rs = random_state if isinstance(random_state, np.random.RandomState) else np.random.RandomState(random_state)
    concentrations = np.atleast_1d(np.asarray(concentration, dtype=float))
    per_concentration = math.ceil(n_candidates / len(concentrations))
    blocks = []
    for conc in concentrations:
        if np.isinf(conc):
            blocks.append(np.full((per_concentration, n_bands), 1.0 / n_bands))
        else:
            blocks.append(rs.dirichlet([conc] * n_bands, per_concentration))
    # interleave the concentrations: c0, c1, c0, c1, ... (draws still happen block by block)
    gammas = np.stack(blocks, axis=1).reshape(-1, n_bands)[:n_candidates]
    gammas[0] = 1.0 / n_bands
    return gammas


def _fold_statistics(X, Y, splits, fit_intercept):
    """Per-fold centered training Gram (float64) and X^T Y, by downdating the full products."""
    import torch

    X64 = X.double()
    gram = X64.T @ X64
    xty = X.T @ Y
    n_samples = X.shape[0]
    x_sum, y_sum = X64.sum(0), Y.sum(0)
    folds = []
    for train, val in splits:
        Xv, Yv = X[val], Y[val]
        n_train = n_samples - len(val)
        g = gram - Xv.double().T @ Xv.double()
        b = xty - Xv.T @ Yv
        x_mean = (x_sum - Xv.double().sum(0)) / n_train
        y_mean = (y_sum - Yv.sum(0)) / n_train
        if fit_intercept:
            g = g - n_train * torch.outer(x_mean, x_mean)
            b = b - n_train * torch.outer(x_mean.to(X.dtype), y_mean)
            Xv = Xv - x_mean.to(X.dtype)
            Yv = Yv - y_mean
        folds.append((g, b, Xv, Yv))
    return folds


def _score_alphas(Yv, Q, A, eigvals, alphas, score):
    """Validation score per alpha: predictions ``Q diag(1/(s+alpha)) A``, one GEMM per alpha."""
    import torch

    out = torch.empty(len(alphas), Yv.shape[1], dtype=torch.float64, device=Yv.device)
    sst = ((Yv - Yv.mean(0)) ** 2).sum(0) if score == "r2" else None
    for i, alpha in enumerate(alphas.tolist()):
        shrink = (1.0 / (eigvals + alpha)).to(Q.dtype)
        sse = ((Yv - (Q * shrink) @ A) ** 2).sum(0).double()
        if score == "r2":
            out[i] = torch.where(sst > 0, 1.0 - sse / sst.double(), torch.zeros_like(sse))
        else:
            out[i] = -sse / Yv.shape[0]
    return out


def _select(scores, alphas):
    """Best alpha per target, himalaya's rule: fold mean, ties go to the larger alpha."""
    import torch

    mean = scores.mean(0) + (torch.log(alphas.double()) * 1e-10)[:, None]
    best = mean.argmax(0)
    return best, mean.gather(0, best[None])[0]


def solve_banded_ridge_cv(
    X: Any,
    Y: Any,
    band_slices: Sequence[slice],
    gammas: np.ndarray,
    *,
    alphas: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    device: Any = "auto",
    dtype: Any = "float32",
    n_targets_batch: int | None = None,
    fit_intercept: bool = True,
    score: str = "r2",
    verbose: bool | int = False,
) -> BandedRidgeCVResult:
    """Banded ridge with band weights chosen per target among ``gammas``.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Features, the bands as contiguous column blocks.
    Y : array of shape (n_samples, n_targets)
        Targets.
    band_slices : sequence of slice
        Column block of each band, covering every column once, in order.
    gammas : array of shape (n_candidates, n_bands)
        Candidate band weights (see :func:`generate_band_weights`).
    alphas : array of shape (n_alphas,)
        Ridge penalties tried for every candidate.
    splits : sequence of (train, val) index arrays
        Cross-validation folds.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device
        Where to compute; "auto" picks CUDA when available.
    dtype : str or torch.dtype
        Dtype of the large products; Gram matrices and eigendecompositions are float64.
    n_targets_batch : int or None
        Targets per batch (bounds memory; each batch repeats the eigendecompositions).
    fit_intercept : bool
        Center features and targets (per training fold, then on all samples).
    score : {"r2", "l2"}
        Validation score: R^2 per fold, or himalaya's default negative mean squared error.
    verbose : bool or int
        Progress bar over candidates.

    Returns
    -------
    BandedRidgeCVResult
    """
    import torch

    dev = resolve_device(device)
    dt = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    X = torch.as_tensor(np.asarray(X), dtype=dt, device=dev)
    Y = torch.as_tensor(np.asarray(Y), dtype=dt, device=dev)
    gammas_t = torch.as_tensor(np.asarray(gammas, dtype=np.float64), device=dev)
    alphas_t = torch.as_tensor(np.asarray(alphas, dtype=np.float64), device=dev)
    n_samples, n_features = X.shape
    n_targets = Y.shape[1]
    band_of_column = torch.empty(n_features, dtype=torch.long, device=dev)
    for b, sl in enumerate(band_slices):
        band_of_column[sl] = b
    splits = [(torch.as_tensor(tr, device=dev), torch.as_tensor(va, device=dev)) for tr, va in splits]
    batch = n_targets if n_targets_batch is None else int(n_targets_batch)
    eps = torch.finfo(dt).eps

    cv_scores = torch.empty(len(gammas_t), n_targets, dtype=torch.float64, device=dev)
    best_score = torch.full((n_targets,), -math.inf, dtype=torch.float64, device=dev)
    best_candidate = torch.zeros(n_targets, dtype=torch.long, device=dev)
    best_alpha_index = torch.zeros(n_targets, dtype=torch.long, device=dev)
    for start in range(0, n_targets, batch):
        cols = slice(start, start + batch)
        folds = _fold_statistics(X, Y[:, cols], splits, fit_intercept)
        candidates = progress(
            range(len(gammas_t)), verbose=verbose, desc="banded ridge candidates", total=len(gammas_t)
        )
        for c in candidates:
            scale = gammas_t[c][band_of_column].sqrt()
            fold_scores = []
            for g, b, Xv, Yv in folds:
                eigvals, V = torch.linalg.eigh(scale[:, None] * g * scale[None, :])
                V_scaled = (scale[:, None] * V).to(dt)
                fold_scores.append(
                    _score_alphas(Yv, Xv @ V_scaled, V_scaled.T @ b, eigvals.clamp_min(0), alphas_t, score)
                )
            best, cand_scores = _select(torch.stack(fold_scores), alphas_t)
            cv_scores[c, cols] = cand_scores
            better = cand_scores > best_score[cols] + eps
            best_score[cols] = torch.where(better, cand_scores, best_score[cols])
            best_candidate[cols] = torch.where(better, c, best_candidate[cols])
            best_alpha_index[cols] = torch.where(better, best, best_alpha_index[cols])

    coef, intercept = _refit(X, Y, band_of_column, gammas_t, alphas_t, best_candidate, best_alpha_index, fit_intercept)
    best_gammas = gammas_t[best_candidate].T
    best_alphas = alphas_t[best_alpha_index]
    return BandedRidgeCVResult(
        coef=coef.cpu().numpy(),
        intercept=intercept.cpu().numpy(),
        best_gammas=best_gammas.cpu().numpy(),
        best_alphas=best_alphas.cpu().numpy(),
        deltas=torch.log(best_gammas / best_alphas[None]).cpu().numpy(),
        cv_scores=cv_scores.cpu().numpy(),
    )


def _refit(X, Y, band_of_column, gammas, alphas, best_candidate, best_alpha_index, fit_intercept):
    """Weights on all samples, one eigendecomposition per selected candidate."""
    import torch

    X64 = X.double()
    x_mean = X64.mean(0) if fit_intercept else torch.zeros_like(X64[0])
    y_mean = Y.double().mean(0) if fit_intercept else torch.zeros_like(Y[0], dtype=torch.float64)
    gram = X64.T @ X64 - X.shape[0] * torch.outer(x_mean, x_mean)
    coef = torch.zeros(X.shape[1], Y.shape[1], dtype=torch.float64, device=X.device)
    for c in torch.unique(best_candidate).tolist():
        targets = torch.nonzero(best_candidate == c).ravel()
        scale = gammas[c][band_of_column].sqrt()
        eigvals, V = torch.linalg.eigh(scale[:, None] * gram * scale[None, :])
        xty = X64.T @ Y[:, targets].double() - X.shape[0] * torch.outer(x_mean, y_mean[targets])
        projected = (scale[:, None] * V).T @ xty
        shrink = 1.0 / (eigvals.clamp_min(0)[:, None] + alphas[best_alpha_index[targets]][None, :])
        coef[:, targets] = scale[:, None] * (V @ (projected * shrink))
    intercept = y_mean - x_mean @ coef
    return coef.to(X.dtype), intercept.to(X.dtype)
