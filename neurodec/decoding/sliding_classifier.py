"""Time-resolved classification: ridge on +-1 (one-vs-rest) targets per time point, batched.

:class:`SlidingRidgeClassifier` is MNE's ``SlidingEstimator(RidgeClassifier(alpha))``
without the loop of fits: labels become +-1 columns (one column for two
classes, one per class otherwise, as scikit-learn's ``RidgeClassifier``),
fitted by the batched ridge of :mod:`neurodec.decoding._time_batched`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin

from .._docs import fill_doc
from .sliding import TimeResolvedRidge

__all__ = ["SlidingRidgeClassifier"]


def _auc(D: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """ROC AUC over the rows (axis -1) from ranks (Mann-Whitney U); ties count one half; NaN without both classes."""
    n_pos = positive.sum(-1)
    n_neg = positive.shape[-1] - n_pos
    greater = (D[..., :, None] > D[..., None, :]).to(D.dtype) + 0.5 * (D[..., :, None] == D[..., None, :]).to(D.dtype)
    pair = positive[..., :, None] & ~positive[..., None, :]
    both = (n_pos * n_neg) > 0
    auc = (greater * pair).sum((-1, -2)) / (n_pos * n_neg).clamp_min(1)
    return torch.where(both, auc, torch.full_like(auc, float("nan")))


@fill_doc
class SlidingRidgeClassifier(ClassifierMixin, TimeResolvedRidge):
    """One ridge classifier per time point, batched over time points.

    Parameters
    ----------
    alphas, cv, fit_intercept, dtype, warn_alpha_edge
        As in :class:`SlidingRidge`; the alpha search maximizes the R^2 of
        the +-1 targets (the ridge criterion), and an int ``cv`` gives
        ``StratifiedKFold``.
    score_func : {"accuracy", "roc_auc"}
        Score of :meth:`score_times`; "roc_auc" needs two classes.
    %(device)s

    Attributes
    ----------
    classes_ : array of shape (n_classes,)
    coef_ : array of shape (n_times, n_channels, n_columns)
        One column for two classes (positive: ``classes_[1]``), else one per class.
    intercept_ : array of shape (n_times, n_columns)
    best_alphas_ : array of shape (n_times, n_columns)
    cv_scores_ : array of shape (n_alphas, n_times, n_columns) or None
    n_features_in_ : int
    n_times_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from neurodec.decoding import SlidingRidgeClassifier
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.standard_normal((40, 5, 8)), np.repeat(["face", "house"], 20)
    >>> SlidingRidgeClassifier(alphas=[1.0]).fit(X, y).predict(X).shape
    (40, 8)
    """

    _scores = ("accuracy", "roc_auc")

    def __init__(
        self,
        alphas: Any = None,
        *,
        cv: Any = 5,
        fit_intercept: bool = True,
        score_func: str = "accuracy",
        device: Any = "auto",
        dtype: str = "float32",
        warn_alpha_edge: bool = True,
    ) -> None:
        super().__init__(
            alphas, cv=cv, fit_intercept=fit_intercept, score_func=score_func, device=device, dtype=dtype,
            warn_alpha_edge=warn_alpha_edge,
        )

    def _is_classifier(self) -> bool:
        return True

    def _encode(self, y: Any, n_samples: int, *, fit: bool) -> np.ndarray:
        labels = np.asarray(y)
        if labels.ndim != 1 or labels.shape[0] != n_samples:
            raise ValueError(
                f"The 'y' argument must hold one label per epoch, shape ({n_samples},). Got {labels.shape}."
            )
        if fit:
            self.classes_ = np.unique(labels)
            if len(self.classes_) < 2:
                raise ValueError(f"SlidingRidgeClassifier needs at least 2 classes in y. Got {self.classes_.tolist()}.")
            if self.score_func == "roc_auc" and len(self.classes_) != 2:
                raise ValueError(f"score_func='roc_auc' needs 2 classes. Got {len(self.classes_)}.")
            self._ravel = True
        unknown = ~np.isin(labels, self.classes_)
        if unknown.any():
            raise ValueError(f"The 'y' argument holds labels unseen in fit: {np.unique(labels[unknown]).tolist()}.")
        onehot = (labels[:, None] == self.classes_[None, :]).astype(np.float64) * 2 - 1
        Y = onehot[:, 1:] if len(self.classes_) == 2 else onehot
        if fit:
            self._n_encoded = Y.shape[1]
        return Y

    def _score_tensors(self, D: torch.Tensor, Y: torch.Tensor, n_groups: int) -> torch.Tensor:
        """Accuracy or AUC (..., n_groups) of decision values (..., n_rows, n_groups * n_columns)."""
        D = D.reshape(*D.shape[:-1], n_groups, -1).movedim(-3, -1)  # (..., groups, columns, rows)
        Y = Y.to(D.dtype).reshape(Y.shape[0], n_groups, -1).movedim(0, -1)
        if self.score_func == "roc_auc":
            return _auc(D[..., 0, :], Y[..., 0, :] > 0)
        if D.shape[-2] == 1:
            return ((D[..., 0, :] > 0) == (Y[..., 0, :] > 0)).to(D.dtype).mean(-1)
        return (D.argmax(-2) == Y.argmax(-2)).to(D.dtype).mean(-1)

    def decision_function(self, X: Any) -> np.ndarray:
        """Decision values (n_epochs, n_times[, n_classes]) (no class axis for two classes)."""
        D = self._decision(X)
        return D[..., 0] if D.shape[-1] == 1 else D

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels of shape (n_epochs, n_times)."""
        D = self._decision(X)
        index = (D[..., 0] > 0).astype(int) if D.shape[-1] == 1 else D.argmax(-1)
        return self.classes_[index]
