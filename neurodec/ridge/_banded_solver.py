"""Banded ridge solver: random search over band weights, cross-validated alphas.

Banded (group) ridge gives each feature space ``b`` its own regularization.
Scaling the columns of band ``b`` by ``sqrt(gamma_b)`` (``gamma`` on the
simplex) and fitting an ordinary ridge with penalty ``alpha`` is the same
model with per-band penalties ``alpha / gamma_b``. For every candidate
``gamma`` this solver scores all ``alphas`` by cross-validation for all targets
and keeps, per target, the best ``(gamma, alpha)``: himalaya's random search
(``solve_group_ridge_random_search``), with the same candidates and the same
selection rule.

Each candidate is an ordinary ridge on rescaled features, solved by the core
solver's plans (:mod:`neurodec.ridge._primal`, :mod:`neurodec.ridge._dual`):
downdated per-fold Grams, one float64 eigendecomposition per fold, all alphas
in one GEMM. What the candidates share is computed once per target batch:
``X^T Y`` (a candidate only rescales it, ``D X^T Y`` with
``D = diag(sqrt(gamma))``) in the primal form; the per-band kernels
``K_b = X_b X_b^T`` (a candidate's kernel is ``sum_b gamma_b K_b``) in the
dual form, used when there are fewer training samples than features.
Targets whose best candidate improves are refit at once from the plan in hand.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from neurodec._device import resolve_device
from neurodec._logging import progress
from neurodec.ridge._batching import TargetStager, choose_n_targets_batch, run_target_batches
from neurodec.ridge._dual import DualPlan
from neurodec.ridge._primal import PrimalPlan
from neurodec.ridge.solvers import _choose_method

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
    method : {"primal", "dual"}
    """

    coef: np.ndarray
    intercept: np.ndarray
    best_gammas: np.ndarray
    best_alphas: np.ndarray
    deltas: np.ndarray
    cv_scores: np.ndarray
    method: str


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


class _Candidates:
    """Builds each candidate's core plan and its refit, from what all candidates share."""

    def __init__(self, X, band_of_column, splits, *, method, n_alphas, fit_intercept, dtype):
        X64 = X.to(torch.float64)
        self.X, self.band_of_column, self.splits = X, band_of_column, splits
        self.method, self.n_alphas, self.fit_intercept, self.dtype = method, n_alphas, fit_intercept, dtype
        self.x_mean = X64.mean(0) if fit_intercept else torch.zeros_like(X64[0])
        self.xc = (X64 - self.x_mean).to(dtype)
        if method == "dual":
            Xc64 = X64 - self.x_mean
            n_bands = int(band_of_column.max()) + 1
            self.kernels = [Xc64[:, band_of_column == b] @ Xc64[:, band_of_column == b].T for b in range(n_bands)]

    def shared(self, Yc):
        """Per target batch: ``X^T Y`` (primal) or nothing (dual)."""
        return self.xc.T @ Yc if self.method == "primal" else None

    def solve(self, gamma, Yc, y_mean, xty, alphas, score):
        """CV scores (n_alphas, n_targets) of one candidate and a refit function for chosen targets."""
        scale = gamma.sqrt()[self.band_of_column]
        if self.method == "primal":
            plan = PrimalPlan(
                self.X * scale.to(self.X.dtype),
                self.splits,
                n_alphas=self.n_alphas,
                fit_intercept=self.fit_intercept,
                dtype=self.dtype,
            )
            xty_c = scale.to(self.dtype)[:, None] * xty
            scores = plan.cv_scores(Yc, xty_c, alphas, score)
            return scores, lambda idx, a: scale.to(self.dtype)[:, None] * plan.refit(xty_c[:, idx], a)
        K = sum(g * k for g, k in zip(gamma.tolist(), self.kernels))
        plan = DualPlan(K, self.splits, alphas=alphas, fit_intercept=self.fit_intercept, dtype=self.dtype)
        scores = plan.cv_scores(Yc, score)
        # weights of the rescaled features are Z^T dual; on the original features, gamma_b X_b^T dual
        return scores, lambda idx, a: (scale**2).to(self.dtype)[:, None] * (
            self.xc.T @ plan.refit(Yc[:, idx], a)[0]
        )


def solve_banded_ridge_cv(
    X: Any,
    Y: Any,
    band_slices: Sequence[slice],
    gammas: np.ndarray,
    *,
    alphas: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]] | str,
    device: Any = "auto",
    dtype: torch.dtype = torch.float32,
    n_targets_batch: int | None = None,
    fit_intercept: bool = True,
    score: str = "r2",
    method: str = "auto",
    verbose: bool | int = False,
) -> BandedRidgeCVResult:
    """Banded ridge with band weights chosen per target among ``gammas``.

    Parameters
    ----------
    X : array or tensor of shape (n_samples, n_features)
        Features, the bands as contiguous column blocks.
    Y : array, tensor, memmap or h5py.Dataset of shape (n_samples, n_targets)
        Targets, read in column batches.
    band_slices : sequence of slice
        Column block of each band, covering every column once, in order.
    gammas : array of shape (n_candidates, n_bands)
        Candidate band weights (see :func:`generate_band_weights`).
    alphas : array of shape (n_alphas,)
        Ridge penalties tried for every candidate.
    splits : sequence of (train, val) index arrays, or "loo"
        Cross-validation folds, or exact leave-one-out.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device
        Where to compute; "auto" picks CUDA when available.
    dtype : torch.dtype
        Dtype of the large products; Grams, kernels and eigendecompositions are float64.
    n_targets_batch : int or None
        Targets per batch (each batch repeats the candidates' decompositions);
        by default the largest that fits the memory budget of the core solver.
    fit_intercept : bool
        Center features and targets (per training fold, then on all samples).
    score : {"r2", "pearson"}
        Validation score maximized per target.
    method : {"auto", "primal", "dual"}
        "auto" uses the dual (kernel) form when ``n_train < n_features``.
    verbose : bool or int
        Progress bars over target batches and candidates.

    Returns
    -------
    BandedRidgeCVResult
    """
    dev = resolve_device(device)
    X = torch.as_tensor(X).to(dev)  # kept in its own precision for the float64 Grams
    gammas_t = torch.as_tensor(np.asarray(gammas, dtype=np.float64), device=dev)
    alphas_t = torch.as_tensor(np.asarray(alphas, dtype=np.float64), device=dev)
    n_samples, n_features = X.shape
    n_targets = int(Y.shape[1])
    band_of_column = torch.empty(n_features, dtype=torch.long, device=dev)
    for b, sl in enumerate(band_slices):
        band_of_column[sl] = b
    method = _choose_method(method, n_features, splits, n_samples)
    candidates = _Candidates(
        X, band_of_column, splits, method=method, n_alphas=len(alphas_t), fit_intercept=fit_intercept, dtype=dtype
    )
    eps = torch.finfo(dtype).eps
    cv_scores = torch.empty(len(gammas_t), n_targets, dtype=dtype)
    best_candidate = torch.zeros(n_targets, dtype=torch.long)
    best_alpha = torch.empty(n_targets, dtype=torch.float64)
    coef = torch.empty(n_features, n_targets, dtype=dtype)
    intercept = torch.empty(n_targets, dtype=dtype)

    stager = TargetStager(Y, device=dev, dtype=dtype)

    def process(start: int, stop: int) -> None:
        Yb = stager.get(start, stop)
        y_mean = Yb.mean(0) if fit_intercept else torch.zeros_like(Yb[0])
        Yc = Yb - y_mean
        xty = candidates.shared(Yc)
        stager.stage_next(start, stop)  # the next block is read (pinned, side stream on CUDA) meanwhile
        best = torch.full((stop - start,), -math.inf, dtype=dtype, device=dev)
        batch_coef = torch.zeros(n_features, stop - start, dtype=dtype, device=dev)
        for c in progress(range(len(gammas_t)), verbose=verbose, desc="band weight candidates"):
            scores, refit = candidates.solve(gammas_t[c], Yc, y_mean, xty, alphas_t, score)
            cand_best, cand_alpha = scores.max(0)
            cv_scores[c, start:stop] = cand_best.cpu()
            better = torch.nonzero(cand_best > best + eps).ravel()
            if len(better) == 0:
                continue
            best[better] = cand_best[better]
            batch_coef[:, better] = refit(better, alphas_t[cand_alpha[better]])
            best_candidate[start + better.cpu()] = c
            best_alpha[start + better.cpu()] = alphas_t[cand_alpha[better]].cpu()
        coef[:, start:stop] = batch_coef.cpu()
        intercept[start:stop] = (y_mean - candidates.x_mean.to(dtype) @ batch_coef).cpu()

    if n_targets_batch is None:
        itemsize = torch.empty((), dtype=dtype).element_size()
        # the core plans' temporaries (all alphas at once: shrunk rotations, predictions and
        # residuals per alpha), plus this batch's weights and scores per candidate
        n_alphas = len(alphas_t)
        per_alpha = 2 * max(n_samples, n_features) + 3 * n_samples + 4
        per_target = itemsize * (3 * n_samples + 7 * n_features + n_alphas * per_alpha + len(gammas_t) + 8)
        n_targets_batch = choose_n_targets_batch(n_targets, per_target, device=dev)
    run_target_batches(n_targets, n_targets_batch, process, device=dev, verbose=verbose)
    best_gammas = gammas_t.cpu()[best_candidate].T
    return BandedRidgeCVResult(
        coef=coef.numpy(),
        intercept=intercept.numpy(),
        best_gammas=best_gammas.numpy(),
        best_alphas=best_alpha.numpy(),
        deltas=torch.log(best_gammas / best_alpha[None]).numpy(),
        cv_scores=cv_scores.numpy(),
        method=method,
    )
