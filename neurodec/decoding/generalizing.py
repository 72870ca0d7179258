"""Temporal generalization: a ridge decoder trained at each time point, tested at every time point.

:class:`GeneralizingRidge` is MNE's ``GeneralizingEstimator(Ridge(alpha))``
batched: the decoders of all training times come from one batched SVD per
fold (:mod:`neurodec.decoding._time_batched`), and the (train time x test time)
predictions are one batched product instead of ``n_times^2`` calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import RegressorMixin

from .._docs import fill_doc
from .sliding import TimeResolvedRidge

__all__ = ["GeneralizingRidge"]


@fill_doc
class GeneralizingRidge(RegressorMixin, TimeResolvedRidge):
    """Temporal generalization with ridge decoders, batched over time points.

    Parameters
    ----------
    alphas, cv, fit_intercept, score_func, dtype, warn_alpha_edge
        As in :class:`SlidingRidge`.
    %(device)s

    Attributes
    ----------
    coef_ : array of shape (n_times, n_channels, n_targets)
        The decoder trained at each time point.
    intercept_ : array of shape (n_times, n_targets)
    best_alphas_ : array of shape (n_times, n_targets)
    cv_scores_ : array of shape (n_alphas, n_times, n_targets) or None
    alphas_ : array of shape (n_alphas,)
    n_features_in_ : int
    n_times_ : int

    See Also
    --------
    SlidingRidge : each decoder tested at its own time point only.

    Examples
    --------
    >>> import numpy as np
    >>> from neurodec.decoding import GeneralizingRidge
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.standard_normal((40, 5, 8)), rng.standard_normal(40)
    >>> model = GeneralizingRidge(alphas=[1.0]).fit(X, y)
    >>> model.predict(X).shape, model.score_times(X, y).shape
    ((40, 8, 8), (8, 8))
    """

    def _decision_tensors(self, Xb: torch.Tensor, coef: torch.Tensor, intercept: torch.Tensor) -> torch.Tensor:
        """Decision values (n_train_times, n_test_times, n_epochs, n_columns)."""
        return torch.einsum("unp,tpc->tunc", Xb.to(coef.dtype), coef) + intercept[:, None, None, :]

    def predict(self, X: Any) -> np.ndarray:
        """Predictions of shape (n_epochs, n_train_times, n_test_times[, n_targets])."""
        D = self._decision(X)
        return D[..., 0] if self._ravel else D
