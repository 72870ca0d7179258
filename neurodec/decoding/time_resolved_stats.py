"""Held-out scores per time point and max-statistic permutation p-values for time-resolved decoders.

Permuted labels are extra target columns of the same ridge fits (targets
are columns of :func:`neurodec.decoding._time_batched.fit_batched_ridge`): every
fold's decompositions are computed once and serve the observed labels and
all permutations.

Notes
-----
Max-statistic correction (Nichols & Holmes 2002): for each permutation the
largest score over all time points (or all train x test time pairs) forms
the null distribution, and the p-value of a time point is
``(1 + #{max_perm >= observed}) / (1 + n_permutations)``. It controls the
family-wise error over time points without clusters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.base import clone

from .._docs import fill_doc
from ..ridge._validation import check_alphas
from .sliding import TimeResolvedRidge

__all__ = ["TimePermutationResult", "cross_val_time_scores", "time_permutation_test"]

# Decision values held at once (elements), bounding the memory of generalization matrices.
_MAX_ELEMENTS = 2**26


@dataclass(frozen=True)
class TimePermutationResult:
    """Result of :func:`time_permutation_test`.

    Attributes
    ----------
    scores : array of shape (n_times,) or (n_train_times, n_test_times)
        Observed held-out score, averaged over folds.
    p_values : array, the shape of ``scores``
        Max-statistic (family-wise) p-values.
    null_max : array of shape (n_permutations,)
        Largest score over time points of each permutation.
    """

    scores: np.ndarray
    p_values: np.ndarray
    null_max: np.ndarray


def _fold_scores(est: TimeResolvedRidge, Xb, Y: np.ndarray, splits, n_groups: int) -> torch.Tensor:
    """Held-out scores (n_folds, *time axes, n_groups) of ``est``'s model for every column group of ``Y``."""
    alphas = check_alphas(est.alphas)
    Yt = torch.as_tensor(Y, device=Xb.device)
    out = []
    for train, val in splits:
        tr = torch.as_tensor(train, device=Xb.device)
        va = torch.as_tensor(val, device=Xb.device)
        fitted = est._fit_tensors(Xb[:, tr], Y[train], alphas)
        n_cols = Y.shape[1] // n_groups
        per_group = Xb.shape[0] * Xb.shape[0] * len(val) * n_cols  # generalization's worst case
        step = max(1, _MAX_ELEMENTS // per_group)
        parts = []
        for g0 in range(0, n_groups, step):
            cols = slice(g0 * n_cols, min(n_groups, g0 + step) * n_cols)
            D = est._decision_tensors(Xb[:, va], fitted.coef[..., cols], fitted.intercept[..., cols])
            parts.append(est._score_tensors(D, Yt[va][:, cols], (cols.stop - cols.start) // n_cols))
        out.append(torch.cat(parts, -1))
    return torch.stack(out)


def _setup(estimator: TimeResolvedRidge, X: Any, y: Any, cv: Any, groups: Any):
    if not isinstance(estimator, TimeResolvedRidge):
        raise ValueError(
            "The 'estimator' argument must be a SlidingRidge, SlidingRidgeClassifier or GeneralizingRidge. "
            f"Got {type(estimator).__name__}."
        )
    est = clone(estimator)
    est._check_params()
    Xb = est._check_X(X, reset=True)
    Y = est._encode(y, Xb.shape[1], fit=True)
    return est, Xb, Y, est._splits(cv, Y, groups)


@fill_doc
def cross_val_time_scores(
    estimator: TimeResolvedRidge, X: Any, y: Any, *, cv: Any = 5, groups: Any = None
) -> np.ndarray:
    """Held-out score of a time-resolved decoder at every time point, per fold.

    Like ``mne.decoding.cross_val_multiscore`` on a ``SlidingEstimator`` or
    ``GeneralizingEstimator``, with the fits of each fold batched over time points.

    Parameters
    ----------
    estimator : SlidingRidge, SlidingRidgeClassifier or GeneralizingRidge
        Unfitted model (cloned); its ``cv`` drives the inner alpha search.
    X : array of shape (n_epochs, n_channels, n_times)
    y : array of shape (n_epochs,) or (n_epochs, n_targets)
    cv : int, splitter or iterable of (train, test)
        Outer folds over epochs (an int gives ``KFold`` without shuffling,
        ``StratifiedKFold`` for a classifier).
    groups : array of shape (n_epochs,), optional

    Returns
    -------
    scores : array of shape (n_folds, n_times) or (n_folds, n_train_times, n_test_times)
        The estimator's ``score_func`` on each test fold (mean over targets).
    """
    est, Xb, Y, splits = _setup(estimator, X, y, cv, groups)
    return _fold_scores(est, Xb, Y, splits, 1)[..., 0].double().cpu().numpy()


@fill_doc
def time_permutation_test(
    estimator: TimeResolvedRidge,
    X: Any,
    y: Any,
    *,
    cv: Any = 5,
    n_permutations: int = 1000,
    groups: Any = None,
    random_state: Any = None,
) -> TimePermutationResult:
    """Held-out scores per time point with max-statistic permutation p-values.

    The epochs' labels (rows of ``y``) are permuted; every permutation is a
    block of extra target columns of the same fits, so each fold and time
    point is decomposed once for all permutations.

    Parameters
    ----------
    estimator : SlidingRidge, SlidingRidgeClassifier or GeneralizingRidge
        Unfitted model (cloned).
    X : array of shape (n_epochs, n_channels, n_times)
    y : array of shape (n_epochs,) or (n_epochs, n_targets)
    cv : int, splitter or iterable of (train, test)
        Outer folds over epochs, the same for every permutation.
    n_permutations : int
        Number of label permutations (at least 1).
    groups : array of shape (n_epochs,), optional
    %(random_state)s

    Returns
    -------
    result : TimePermutationResult
        One-sided: large scores are significant.
    """
    if not isinstance(n_permutations, (int, np.integer)) or n_permutations < 1:
        raise ValueError(f"The 'n_permutations' parameter must be a positive int. Got {n_permutations!r} instead.")
    est, Xb, Y, splits = _setup(estimator, X, y, cv, groups)
    rng = np.random.default_rng(random_state)
    orders = [np.arange(len(Y))] + [rng.permutation(len(Y)) for _ in range(n_permutations)]
    Y_all = np.concatenate([Y[order] for order in orders], axis=1)
    scores = _fold_scores(est, Xb, Y_all, splits, len(orders)).mean(0).double().cpu().numpy()
    observed, null = scores[..., 0], scores[..., 1:]
    null_max = null.reshape(-1, n_permutations).max(0)
    p_values = (1 + (null_max[None, :] >= observed.reshape(-1, 1)).sum(1)) / (n_permutations + 1)
    return TimePermutationResult(observed, p_values.reshape(observed.shape), null_max)
