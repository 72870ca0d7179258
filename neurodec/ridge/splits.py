"""Cross-validation splitters for autocorrelated time series.

``BlockedKFold`` cuts the samples into contiguous validation blocks (like
``KFold`` without shuffling) and drops ``gap`` samples on each side of the
validation block from the training set, so that temporal autocorrelation
(e.g. the hemodynamic response, ~10 s in fMRI) does not leak validation
information into training.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from sklearn.model_selection import BaseCrossValidator

__all__ = ["BlockedKFold"]


class BlockedKFold(BaseCrossValidator):
    """K contiguous folds with a gap of excluded samples around each validation block.

    Parameters
    ----------
    n_splits : int
        Number of folds (at least 2).
    gap : int
        Samples removed from the training set on each side of the validation
        block (at least 0). ``gap=0`` reproduces ``KFold(n_splits)``.

    Examples
    --------
    >>> from neurodec.ridge import BlockedKFold
    >>> [val.tolist() for _, val in BlockedKFold(3, gap=1).split(range(6))]
    [[0, 1], [2, 3], [4, 5]]
    """

    def __init__(self, n_splits: int = 5, gap: int = 0) -> None:
        if not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
            raise ValueError(f"The 'n_splits' parameter of BlockedKFold must be an int >= 2. Got {n_splits!r} instead.")
        if not isinstance(gap, (int, np.integer)) or gap < 0:
            raise ValueError(f"The 'gap' parameter of BlockedKFold must be an int >= 0. Got {gap!r} instead.")
        self.n_splits = n_splits
        self.gap = gap

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of folds."""
        return self.n_splits

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train, val)`` index arrays.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Only its length is used.
        y, groups : ignored

        Raises
        ------
        ValueError
            If a training set would be empty.
        """
        n = len(X) if not hasattr(X, "shape") else X.shape[0]
        if n < self.n_splits:
            raise ValueError(f"BlockedKFold cannot make {self.n_splits} folds with {n} sample(s).")
        # KFold's fold sizes: the first n % k folds get one extra sample.
        sizes = np.full(self.n_splits, n // self.n_splits)
        sizes[: n % self.n_splits] += 1
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        index = np.arange(n)
        for start, stop in zip(bounds[:-1], bounds[1:]):
            train = np.concatenate([index[: max(0, start - self.gap)], index[stop + self.gap :]])
            if len(train) == 0:
                raise ValueError(
                    f"BlockedKFold(n_splits={self.n_splits}, gap={self.gap}) leaves no training sample for the "
                    f"validation block {start}:{stop} of {n} samples; use a smaller gap."
                )
            yield train, index[start:stop]

    def _iter_test_indices(self, X: Any = None, y: Any = None, groups: Any = None) -> Iterator[np.ndarray]:
        for _, val in self.split(X, y, groups):
            yield val
