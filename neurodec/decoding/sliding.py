"""Time-resolved decoding: one ridge decoder per time point, all fitted in batched tensor operations.

:class:`SlidingRidge` is MNE's ``SlidingEstimator(Ridge(alpha))`` without the
loop of fits: every time point's decoder comes out of one batched SVD (see
:mod:`neurodec.decoding._time_batched`), and each target's alpha at each time
point is chosen by cross-validation on the same decompositions.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from .._device import resolve_device
from .._docs import fill_doc
from ..ridge._scoring import SCORES
from ..ridge._validation import check_alphas, check_finite, resolve_splits, warn_alpha_edge
from ._time_batched import fit_batched_ridge, score_batched

__all__ = ["SlidingRidge"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class TimeResolvedRidge(BaseEstimator):
    """Shared fit, validation and scoring of the time-resolved ridge decoders (not public)."""

    _scores: tuple[str, ...] = SCORES

    def __init__(
        self,
        alphas: Any = None,
        *,
        cv: Any = 5,
        fit_intercept: bool = True,
        score_func: str = "r2",
        device: Any = "auto",
        dtype: str = "float32",
        warn_alpha_edge: bool = True,
    ) -> None:
        self.alphas = alphas
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.score_func = score_func
        self.device = device
        self.dtype = dtype
        self.warn_alpha_edge = warn_alpha_edge

    # -- inputs -----------------------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.score_func not in self._scores:
            raise ValueError(
                f"The 'score_func' parameter must be one of {self._scores}. Got {self.score_func!r} instead."
            )
        if self.dtype not in _DTYPES:
            raise ValueError(f"The 'dtype' parameter must be one of {tuple(_DTYPES)}. Got {self.dtype!r} instead.")

    def _check_X(self, X: Any, *, reset: bool) -> torch.Tensor:
        """Epochs (n_epochs, n_channels, n_times) as a float64 tensor (n_times, n_epochs, n_channels)."""
        arr = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
        if arr.ndim != 3:
            raise ValueError(
                f"The 'X' argument of {type(self).__name__} must be epochs of shape (n_epochs, n_channels, n_times). "
                f"Got shape {arr.shape}."
            )
        arr = arr.astype(np.float64, copy=False)
        check_finite(arr, "X")
        if reset:
            self.n_features_in_, self.n_times_ = arr.shape[1], arr.shape[2]
        elif arr.shape[1:] != (self.n_features_in_, self.n_times_):
            raise ValueError(
                f"X has {arr.shape[1]} channels and {arr.shape[2]} time points, but {type(self).__name__} was fitted "
                f"with {self.n_features_in_} and {self.n_times_}."
            )
        return torch.as_tensor(arr, device=resolve_device(self.device)).permute(2, 0, 1)

    def _encode(self, y: Any, n_samples: int, *, fit: bool) -> np.ndarray:
        """Targets as a float array (n_samples, n_columns)."""
        Y = np.asarray(y, dtype=np.float64)
        if Y.ndim not in (1, 2) or Y.shape[0] != n_samples:
            raise ValueError(
                f"The 'y' argument must be of shape (n_epochs,) or (n_epochs, n_targets) with n_epochs={n_samples}. "
                f"Got shape {Y.shape}."
            )
        check_finite(Y, "y")
        Y = Y.reshape(n_samples, -1)
        if fit:
            self._ravel, self._n_encoded = np.ndim(y) == 1, Y.shape[1]
        return Y

    @property
    def _n_columns(self) -> int:
        return self.coef_.shape[-1]

    @property
    def _n_label_columns(self) -> int:
        """Columns that encode one label set (set by ``_encode`` at fit time)."""
        return self._n_encoded

    def _splits(self, cv: Any, Y: np.ndarray, groups: Any = None):
        """Folds over epochs; an int ``cv`` of a classifier stratifies by class, as scikit-learn and MNE do."""
        n = Y.shape[0]
        if self._is_classifier() and isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
            from sklearn.model_selection import StratifiedKFold

            labels = Y.argmax(1) if Y.shape[1] > 1 else Y[:, 0] > 0
            return list(StratifiedKFold(int(cv)).split(np.zeros((n, 1)), labels))
        return resolve_splits(cv, None, n, groups)

    # -- fitting ----------------------------------------------------------------------------------
    def _fit_tensors(self, Xb: torch.Tensor, Y: np.ndarray, alphas: np.ndarray, groups: Any = None):
        Yt = torch.as_tensor(Y, device=Xb.device).to(_DTYPES[self.dtype])
        # the first label set (the observed one, in a permutation test) stratifies the folds every column shares
        search = len(alphas) > 1 and self.cv is not None
        splits = self._splits(self.cv, Y[:, : self._n_label_columns], groups) if search else None
        return fit_batched_ridge(
            Xb, Yt, alphas, splits, fit_intercept=self.fit_intercept,
            score="r2" if self._is_classifier() else self.score_func,  # classifiers search alphas by ridge R^2
        )

    def _is_classifier(self) -> bool:
        return False

    def fit(self, X: Any, y: Any, groups: Any = None) -> TimeResolvedRidge:
        """Fit one ridge per time point; each target's alpha at each time point by cross-validation.

        Parameters
        ----------
        X : array of shape (n_epochs, n_channels, n_times)
        y : array of shape (n_epochs,) or (n_epochs, n_targets)
        groups : array of shape (n_epochs,), optional
            Group labels for a group-aware ``cv`` splitter.

        Returns
        -------
        self
        """
        self._check_params()
        alphas = check_alphas(self.alphas)
        Xb = self._check_X(X, reset=True)
        Y = self._encode(y, Xb.shape[1], fit=True)
        result = self._fit_tensors(Xb, Y, alphas, groups)
        self.alphas_ = alphas
        self.coef_ = result.coef.double().cpu().numpy()
        self.intercept_ = result.intercept.double().cpu().numpy()
        self.best_alphas_ = result.best_alphas.cpu().numpy()
        self.cv_scores_ = None if result.cv_scores is None else result.cv_scores.double().cpu().numpy()
        if self.cv_scores_ is not None and self.warn_alpha_edge:
            warn_alpha_edge(
                self.best_alphas_.reshape(-1), self.cv_scores_.reshape(len(alphas), -1), alphas,
                estimator=f"{type(self).__name__}.fit",
            )
        return self

    # -- predictions and scores -------------------------------------------------------------------
    def _decision_tensors(self, Xb: torch.Tensor, coef: torch.Tensor, intercept: torch.Tensor) -> torch.Tensor:
        """Decision values (n_times, n_epochs, n_columns): each time point's decoder on its own time point."""
        return Xb.to(coef.dtype) @ coef + intercept[:, None, :]

    def _fitted_tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.as_tensor(self.coef_, device=device), torch.as_tensor(self.intercept_, device=device)

    def _decision(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "coef_")
        Xb = self._check_X(X, reset=False)
        D = self._decision_tensors(Xb, *self._fitted_tensors(Xb.device))
        return D.movedim(-2, 0).cpu().numpy()  # epochs first

    def _score_tensors(self, D: torch.Tensor, Y: torch.Tensor, n_groups: int) -> torch.Tensor:
        """Scores (..., n_groups) of decision values (..., n_rows, n_groups * n_columns) against encoded ``Y``."""
        scores = score_batched(Y.to(D.dtype), D, self.score_func)
        return scores.reshape(*scores.shape[:-1], n_groups, -1).mean(-1)

    def score_times(self, X: Any, y: Any) -> np.ndarray:
        """Score at every time point (mean over targets) of the decoders on ``X``.

        Parameters
        ----------
        X : array of shape (n_epochs, n_channels, n_times)
        y : array of shape (n_epochs,) or (n_epochs, n_targets)

        Returns
        -------
        scores : array of shape (n_times,) (:class:`GeneralizingRidge`: (n_train_times, n_test_times))
        """
        check_is_fitted(self, "coef_")
        Xb = self._check_X(X, reset=False)
        Y = torch.as_tensor(self._encode(y, Xb.shape[1], fit=False), device=Xb.device)
        if Y.shape[1] != self._n_columns:
            raise ValueError(f"The 'y' argument must hold {self._n_columns} target(s) per epoch. Got {Y.shape[1]}.")
        D = self._decision_tensors(Xb, *self._fitted_tensors(Xb.device))
        return self._score_tensors(D, Y, 1)[..., 0].cpu().numpy()

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean of :meth:`score_times` over time points: one number, as scikit-learn expects."""
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__}.score does not support sample_weight.")
        return float(np.nanmean(self.score_times(X, y)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


@fill_doc
class SlidingRidge(RegressorMixin, TimeResolvedRidge):
    """One ridge decoder per time point (time-resolved decoding), batched over time points.

    Parameters
    ----------
    alphas : array of shape (n_alphas,), optional
        Ridge penalties (unnormalized, as scikit-learn's ``Ridge``); default
        ``np.logspace(-2, 8, 21)``. With one value no search is run.
    cv : int, splitter or iterable of (train, val)
        Folds over epochs for the alpha search (an int gives ``KFold``).
    fit_intercept : bool
    score_func : {"r2", "pearson"}
        Criterion of the alpha search and of :meth:`score_times`.
    %(device)s
    dtype : {"float32", "float64"}
        Dtype of the products (decompositions are float64).
    warn_alpha_edge : bool
        Warn when predicted targets choose an alpha at an end of the grid.

    Attributes
    ----------
    coef_ : array of shape (n_times, n_channels, n_targets)
    intercept_ : array of shape (n_times, n_targets)
    best_alphas_ : array of shape (n_times, n_targets)
    cv_scores_ : array of shape (n_alphas, n_times, n_targets) or None
    alphas_ : array of shape (n_alphas,)
    n_features_in_ : int
        Number of channels.
    n_times_ : int

    See Also
    --------
    GeneralizingRidge : train at each time point, test at every time point.
    cross_val_time_scores, time_permutation_test : held-out scores and their significance.

    Examples
    --------
    >>> import numpy as np
    >>> from neurodec.decoding import SlidingRidge
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.standard_normal((40, 5, 8)), rng.standard_normal(40)
    >>> SlidingRidge(alphas=[1.0]).fit(X, y).predict(X).shape
    (40, 8)
    """

    def predict(self, X: Any) -> np.ndarray:
        """Predictions of shape (n_epochs, n_times[, n_targets]) (no target axis after a 1-D fit)."""
        D = self._decision(X)
        return D[..., 0] if self._ravel else D
