"""Input checks shared by the ridge estimators (run once, in ``fit``)."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

__all__ = [
    "FiniteCheckedTargets",
    "check_alphas",
    "check_finite",
    "is_streamed",
    "resolve_splits",
    "warn_alpha_edge",
]

DEFAULT_ALPHAS = np.logspace(-2, 8, 11)


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
        n_bad = int((~np.isfinite(block)).sum())
        if n_bad:
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


def warn_alpha_edge(best_alphas: np.ndarray, cv_scores: np.ndarray, alphas: np.ndarray) -> None:
    """Warn once when targets choose the smallest or largest alpha of the grid."""
    if len(alphas) < 2:
        return
    informative = np.ptp(cv_scores, axis=0) > 0  # constant targets score the same everywhere
    low = informative & np.isclose(best_alphas, alphas.min())
    high = informative & np.isclose(best_alphas, alphas.max())
    n_low, n_high = int(low.sum()), int(high.sum())
    if n_low + n_high == 0:
        return
    lo, hi = np.log10(alphas.min()), np.log10(alphas.max())
    widened = f"np.logspace({lo - 2 * bool(n_low):g}, {hi + 2 * bool(n_high):g}, {len(alphas) + 2 * bool(n_low) + 2 * bool(n_high)})"
    warnings.warn(
        f"{n_low + n_high} of {len(best_alphas)} targets have their best alpha at the edge of the grid "
        f"({n_low} at the smallest, {alphas.min():g}; {n_high} at the largest, {alphas.max():g}). "
        f"Widen the grid, e.g. alphas={widened}, or pass warn_alpha_edge=False to silence this warning.",
        UserWarning,
        stacklevel=3,
    )
