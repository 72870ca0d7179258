"""Input checks shared by the ridge estimators (run once, in ``fit``)."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

__all__ = [
    "DEFAULT_ALPHAS",
    "RIDGE_PARAMETER_CONSTRAINTS",
    "FiniteCheckedTargets",
    "check_alphas",
    "check_finite",
    "is_streamed",
    "resolve_splits",
    "warn_alpha_edge",
]

#: The default ridge penalties of every neurodec estimator: 1e-2 to 1e8, two per decade.
DEFAULT_ALPHAS = np.logspace(-2, 8, 21)


#: scikit-learn parameter constraints shared by the ridge estimators: ``fit`` validates them once,
#: at the outermost call (nested estimators skip it, see ``sklearn.base._fit_context``).
RIDGE_PARAMETER_CONSTRAINTS: dict[str, list] = {
    "alphas": ["array-like", None],
    "cv": ["cv_object", StrOptions({"loo", "gcv"})],
    "fit_intercept": ["boolean"],
    "score_func": [StrOptions({"r2", "pearson"})],
    "device": "no_validation",  # resolved (and checked) by neurodec._device.resolve_device
    "dtype": [StrOptions({"float32", "float64"})],
    "n_targets_batch": [Interval(numbers.Integral, 1, None, closed="left"), None],
    "warn_alpha_edge": ["boolean"],
    "verbose": ["verbose"],
}


def check_alphas(alphas: Any) -> np.ndarray:
    """Return ``alphas`` as a 1-D float64 array of positive finite values."""
    if alphas is None:
        return DEFAULT_ALPHAS.copy()
    arr = np.asarray(alphas.cpu() if isinstance(alphas, torch.Tensor) else alphas, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"The 'alphas' parameter must be a non-empty sequence of positive finite numbers. Got {alphas!r}.")
    return arr


def check_finite(values: Any, name: str) -> None:
    """Raise a ValueError naming ``name`` and counting NaN or infinite entries."""
    n_bad = int((~torch.isfinite(values)).sum()) if isinstance(values, torch.Tensor) else int((~np.isfinite(values)).sum())
    if n_bad:
        raise ValueError(f"Input {name} contains {n_bad} NaN or infinite value(s); remove or impute them before fitting.")


def is_streamed(Y: Any) -> bool:
    """Whether ``Y`` is read lazily (memmap, h5py, zarr: sliceable, with shape and dtype)."""
    if isinstance(Y, np.memmap):
        return True
    if isinstance(Y, (np.ndarray, torch.Tensor, list, tuple)) or hasattr(Y, "iloc"):
        return False
    return hasattr(Y, "shape") and hasattr(Y, "dtype") and hasattr(Y, "__getitem__")


class FiniteCheckedTargets:
    """Wrap a streamed target array so that every block read is checked for NaN/inf."""

    def __init__(self, Y: Any) -> None:
        self.Y = Y
        self.shape = tuple(Y.shape)
        self.dtype = Y.dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        block = np.asarray(self.Y[key])
        finite = np.isfinite(block)
        if not finite.all():
            n_bad = int(finite.size - np.count_nonzero(finite))
            cols = key[1] if isinstance(key, tuple) and len(key) > 1 else slice(None)
            raise ValueError(
                f"Input Y contains {n_bad} NaN or infinite value(s) in targets {cols.start}:{cols.stop}; "
                "remove or impute them before fitting."
            )
        return block


def resolve_splits(cv: Any, X: Any, n_samples: int, groups: Any) -> list[tuple[np.ndarray, np.ndarray]] | str:
    """Turn the ``cv`` parameter into a list of (train, val) index arrays, or "loo"."""
    from sklearn.model_selection import KFold

    if n_samples < 2:
        raise ValueError(f"Ridge cross-validation needs at least 2 samples. Got 1 sample (n_samples = {n_samples}).")
    if isinstance(cv, str):
        if cv.lower() not in ("loo", "gcv"):
            raise ValueError(f"The 'cv' parameter must be an int, a splitter, 'loo' or 'gcv'. Got {cv!r} instead.")
        return "loo"
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        if cv < 2:
            raise ValueError(f"The 'cv' parameter must be >= 2 folds. Got {cv} instead.")
        if n_samples < cv:
            raise ValueError(f"Cannot do {cv}-fold cross-validation with {n_samples} sample(s); use cv <= n_samples.")
        cv = KFold(n_splits=int(cv))
    if hasattr(cv, "split"):
        splits = list(cv.split(np.zeros((n_samples, 1)), None, groups))
    elif isinstance(cv, Iterable):
        splits = list(cv)
    else:
        raise ValueError(f"The 'cv' parameter must be an int, a splitter, 'loo' or 'gcv'. Got {cv!r} instead.")
    if not splits:
        raise ValueError("The 'cv' parameter gave no split.")
    out = []
    for i, (train, val) in enumerate(splits):
        train, val = np.asarray(train, dtype=np.int64), np.asarray(val, dtype=np.int64)
        if len(train) == 0 or len(val) == 0:
            raise ValueError(f"Split {i} of 'cv' has an empty train or validation set ({len(train)}, {len(val)}).")
        out.append((train, val))
    return out


def warn_alpha_edge(
    best_alphas: Any, cv_scores: Any, alphas: np.ndarray, *, estimator: str, stacklevel: int = 3
) -> None:
    """Warn when predicted targets (best CV score > 0) sit at an end of the alpha grid.

    The one alpha-edge rule of every neurodec ridge fit (single-penalty and
    banded). A target without signal is best served by the strongest penalty
    (a constant prediction), so it lands on the largest alpha whatever the
    grid; only targets the model predicts tell whether the grid is too narrow.
    Excluded targets (NaN alpha or scores) are not counted.

    Parameters
    ----------
    best_alphas : array or tensor of shape (n_targets,)
    cv_scores : array or tensor of shape (n_candidates, n_targets)
        Cross-validation score of each alpha (or banded candidate at its best alpha).
    alphas : array of shape (n_alphas,)
        The grid searched.
    estimator : str
        Names the call in the warning, e.g. "RidgeCV.fit".
    stacklevel : int
        As in :func:`warnings.warn`: the frame of the user's call.
    """
    if len(alphas) < 2:
        return
    as_numpy = lambda a: np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64)  # noqa: E731
    best_alphas = as_numpy(best_alphas).reshape(-1)
    cv_scores = as_numpy(cv_scores).reshape(-1, best_alphas.size)
    fitted = np.isfinite(best_alphas) & np.isfinite(cv_scores).any(axis=0)
    predicted = np.zeros(best_alphas.size, dtype=bool)
    predicted[fitted] = np.nanmax(cv_scores[:, fitted], axis=0) > 0
    low = predicted & np.isclose(best_alphas, alphas.min())
    high = predicted & np.isclose(best_alphas, alphas.max())
    if not (low.any() or high.any()):
        return
    log_min, log_max = np.log10(alphas.min()) - 2 * low.any(), np.log10(alphas.max()) + 2 * high.any()
    grid = f"np.logspace({log_min:g}, {log_max:g}, {int(round(2 * (log_max - log_min))) + 1})"
    warnings.warn(
        f"{estimator}: {int(low.sum() + high.sum())} of the {int(predicted.sum())} targets with a positive "
        f"cross-validated score chose an alpha at the edge of the grid ({int(low.sum())} the smallest, "
        f"{alphas.min():g}; {int(high.sum())} the largest, {alphas.max():g}); their penalty may be off. "
        f"Widen the grid, e.g. alphas={grid}, or pass warn_alpha_edge=False.",
        UserWarning,
        stacklevel=stacklevel,
    )
