"""Dimensionality reduction of features, fitted on training stimuli only.

Fitting a projection on every stimulus would let test images shape the
features a model is evaluated on; :func:`fit_reducer` sees only the rows of
the training stimuli, and the fitted reducer then transforms every row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["REDUCTIONS", "fit_reducer", "transform_rows"]

REDUCTIONS = ("pca", "srp")


def fit_reducer(kind: str, X_fit: np.ndarray, *, n_components: int, random_state: int = 0) -> Any:
    """Fit a scikit-learn reducer on ``X_fit``, array of shape (n_fit, n_features).

    Parameters
    ----------
    kind : {"pca", "srp"}
        :class:`sklearn.decomposition.PCA` or
        :class:`sklearn.random_projection.SparseRandomProjection`.
    X_fit : array of shape (n_fit, n_features)
        Features of the training stimuli only.
    n_components : int
        Output dimensionality (PCA: at most min(n_fit, n_features)).
    random_state : int
        Seed of the reducer (PCA's randomized solvers, the random projection).
    """
    if kind == "pca":
        from sklearn.decomposition import PCA

        limit = min(X_fit.shape)
        if not 1 <= n_components <= limit:
            raise ValueError(
                f"n_components={n_components} for PCA must be between 1 and min(n_fit_stimuli, n_features) = {limit}."
            )
        return PCA(n_components=n_components, random_state=random_state).fit(X_fit)
    from sklearn.random_projection import SparseRandomProjection

    if n_components < 1:
        raise ValueError(f"n_components must be a positive integer. Got {n_components}.")
    return SparseRandomProjection(n_components=n_components, random_state=random_state).fit(X_fit)


def transform_rows(reducer: Any, data: Any, *, chunk_rows: int = 1024) -> "Any":
    """Yield ``(start, reduced rows)`` of ``data`` (array-like of shape (n, n_features)) chunk by chunk."""
    for start in range(0, data.shape[0], chunk_rows):
        chunk = np.asarray(data[start : start + chunk_rows], dtype=np.float32)
        yield start, np.asarray(reducer.transform(chunk), dtype=np.float32)
