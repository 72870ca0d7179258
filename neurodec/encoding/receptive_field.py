"""Temporal receptive fields: FIR delays of stimulus features -> exact per-channel CV ridge.

:class:`TemporalReceptiveField` is a scikit-learn regressor (``clone``,
``Pipeline`` and ``GridSearchCV`` work, unlike MNE's ``ReceptiveField``,
mne-python#5089) whose fit never builds the ``n_times x (n_features *
n_delays)`` design: the lagged Gram and cross products come from
cross-correlations (:mod:`neurodec.encoding._lags`), and the regularization
of every channel is chosen by exact K-fold cross-validation with one
eigendecomposition per fold (:mod:`neurodec.encoding._lagged_ridge`).
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
from ..ridge._scoring import SCORES, pearson_targets, r2_targets
from ..ridge._validation import check_alphas, check_finite, warn_alpha_edge
from ._lagged_ridge import solve_lagged_ridge_cv
from ._lags import Lags, lagged_predict

__all__ = ["TemporalReceptiveField"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _as_3d(X: Any) -> tuple[np.ndarray, bool]:
    """Features as (n_epochs, n_times, n_features) float64; whether they were continuous (no epochs axis)."""
    arr = np.asarray(X.detach().cpu() if isinstance(X, torch.Tensor) else X, dtype=np.float64)
    if arr.ndim not in (2, 3):
        raise ValueError(
            "The 'X' argument must be of shape (n_times, n_features) or (n_epochs, n_times, n_features). "
            f"Got shape {arr.shape}."
        )
    return (arr[None], True) if arr.ndim == 2 else (arr, False)


def _targets_3d(y: Any, continuous: bool) -> np.ndarray:
    """Targets as (n_epochs, n_times, n_channels), read in the layout of X (continuous or epoched)."""
    arr = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y, dtype=np.float64)
    ndim = arr.ndim - (0 if continuous else 1)
    if ndim not in (1, 2):
        expected = "(n_times[, n_channels])" if continuous else "(n_epochs, n_times[, n_channels])"
        raise ValueError(f"The 'y' argument must be of shape {expected}, like X. Got shape {arr.shape}.")
    if ndim == 1:
        arr = arr[..., None]
    return arr[None] if continuous else arr


def _segments(X3: np.ndarray, continuous: bool, runs: Any) -> list[slice]:
    """Slices of the time axis of a continuous recording, one per run (a new run wherever the label changes)."""
    n = X3.shape[1]
    if runs is None:
        return [slice(0, n)]
    if not continuous:
        raise ValueError(
            "The 'runs' argument applies to continuous X of shape (n_times, n_features); epochs are segments already."
        )
    labels = np.asarray(runs)
    if labels.shape != (n,):
        raise ValueError(
            f"The 'runs' argument must hold one label per time sample, shape ({n},). Got shape {labels.shape}."
        )
    cuts = np.concatenate([[0], np.flatnonzero(labels[1:] != labels[:-1]) + 1, [n]])
    return [slice(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])]


@fill_doc
class TemporalReceptiveField(RegressorMixin, BaseEstimator):
    """Temporal (spectro-/spatio-temporal) receptive field fitted by cross-validated ridge.

    Each channel ``c`` is modelled as ``y_c(t) = b_c + sum_f sum_d w[c, f, d]
    x_f(t - d)`` over the delays ``d`` from ``tmin`` to ``tmax``: positive
    delays look into the past of the stimulus (encoding), negative ones into
    its future (decoding, anticipation). Every channel gets its own ridge
    penalty, chosen by cross-validation.

    Parameters
    ----------
    tmin, tmax : float
        First and last delay in seconds (``tmin <= tmax``); delays are
        ``round(tmin * sfreq) .. round(tmax * sfreq)`` samples, as in MNE.
    sfreq : float
        Sampling frequency of ``X`` and ``y`` in Hz.
    alphas : array of shape (n_alphas,), optional
        Ridge penalties (unnormalized, as scikit-learn's ``Ridge`` and MNE's
        ``TimeDelayingRidge``); default ``np.logspace(-2, 8, 21)``.
    cv : int, splitter, iterable of (train, val) or None
        Folds along the first axis of ``X``: time samples for continuous
        input (an int gives contiguous blocks), epochs for epoched input (an
        int gives ``KFold`` without shuffling). None fits the single alpha
        of ``alphas`` without cross-validation.
    fit_intercept : bool
        Remove the mean of every feature and channel before delaying (the
        delayed edges are then filled with the mean, MNE's convention) and
        fit an intercept per channel.
    score_func : {"r2", "pearson"}
        Criterion of the alpha search, and of :meth:`score`.
    %(device)s
    dtype : {"float32", "float64"}
        Dtype of the products that scale with the number of channels (Grams
        and eigendecompositions are float64).
    warn_alpha_edge : bool
        Warn when predicted channels choose an alpha at an end of the grid.

    Attributes
    ----------
    coef_ : array of shape (n_channels, n_features, n_delays)
        Weight of each feature at each delay, per channel.
    intercept_ : array of shape (n_channels,)
    delays_ : array of shape (n_delays,)
        Delays in samples; latencies in seconds are ``delays_ / sfreq``.
    latencies_ : array of shape (n_delays,)
        Delays in seconds.
    best_alphas_ : array of shape (n_channels,)
    cv_scores_ : array of shape (n_alphas, n_channels) or None
        Mean validation score of each alpha (None when ``cv=None``).
    scores_ : array of shape (n_channels,) or None
        Cross-validated score of each channel at its chosen alpha.
    alphas_ : array of shape (n_alphas,)
    n_features_in_ : int

    See Also
    --------
    neurodec.ridge.Delayer : the materialized FIR design, for other models.

    Notes
    -----
    With one alpha and ``edge_correction=True`` this is the model of MNE's
    ``ReceptiveField(estimator=alpha)`` / ``TimeDelayingRidge``: same
    coefficients and intercepts. MNE's ``predict`` fills delays that reach
    outside the data with the raw value 0, ours with the training mean (as
    its fit assumed); predictions agree on ``valid_samples_``.

    Examples
    --------
    >>> import numpy as np
    >>> from neurodec.encoding import TemporalReceptiveField
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2000, 1))
    >>> y = np.convolve(x[:, 0], [0, 0, 1.0, 0.5])[:2000, None] + 0.1 * rng.standard_normal((2000, 1))
    >>> trf = TemporalReceptiveField(0, 0.05, 100.0, alphas=[1.0], cv=None).fit(x, y)
    >>> trf.coef_.shape, float(trf.peak_latencies()[0])
    ((1, 1, 6), 0.02)
    """

    def __init__(
        self,
        tmin: float,
        tmax: float,
        sfreq: float,
        *,
        alphas: Any = None,
        cv: Any = 5,
        fit_intercept: bool = True,
        score_func: str = "r2",
        device: Any = "auto",
        dtype: str = "float32",
        warn_alpha_edge: bool = True,
    ) -> None:
        self.tmin = tmin
        self.tmax = tmax
        self.sfreq = sfreq
        self.alphas = alphas
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.score_func = score_func
        self.device = device
        self.dtype = dtype
        self.warn_alpha_edge = warn_alpha_edge

    def _lags(self) -> Lags:
        if not isinstance(self.sfreq, numbers.Real) or not self.sfreq > 0:
            raise ValueError(f"The 'sfreq' parameter must be a positive number (Hz). Got {self.sfreq!r} instead.")
        for name in ("tmin", "tmax"):
            if not isinstance(getattr(self, name), numbers.Real):
                raise ValueError(f"The '{name}' parameter must be a number of seconds. Got {getattr(self, name)!r}.")
        if self.tmin > self.tmax:
            raise ValueError(f"The 'tmin' parameter must be <= 'tmax'. Got tmin={self.tmin} and tmax={self.tmax}.")
        return Lags(int(round(self.tmin * self.sfreq)), int(round(self.tmax * self.sfreq)))

    def _check_params(self) -> None:
        if self.score_func not in SCORES:
            raise ValueError(f"The 'score_func' parameter must be one of {SCORES}. Got {self.score_func!r} instead.")
        if self.dtype not in _DTYPES:
            raise ValueError(f"The 'dtype' parameter must be one of {tuple(_DTYPES)}. Got {self.dtype!r} instead.")

    def _folds(self, X3: np.ndarray, continuous: bool, segments: list[slice], groups: Any) -> list | None:
        """Per fold, train/val masks of shape (R_g, T_g) for each segment group."""
        from sklearn.model_selection import KFold

        from ..ridge import BlockedKFold
        from ..ridge._validation import resolve_splits

        if self.cv is None:
            return None
        n_axis = X3.shape[1] if continuous else X3.shape[0]
        cv = self.cv
        if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
            if cv < 2 or cv > n_axis:
                raise ValueError(f"The 'cv' parameter must be between 2 and {n_axis} folds. Got {cv}.")
            cv = BlockedKFold(int(cv)) if continuous else KFold(int(cv))
        splits = resolve_splits(cv, None, n_axis, groups)
        folds = []
        for train, val in splits:
            masks = []
            for idx in (train, val):
                flags = np.zeros(n_axis, dtype=bool)
                flags[idx] = True
                if continuous:
                    masks.append([flags[None, seg] for seg in segments])
                else:
                    masks.append([np.repeat(flags[:, None], X3.shape[1], axis=1)])
            folds.append(tuple(masks))
        return folds

    def _prepare_X(self, X: Any, runs: Any, *, reset: bool) -> tuple[np.ndarray, bool, list[slice]]:
        X3, continuous = _as_3d(X)
        check_finite(X3, "X")
        if reset:
            self.n_features_in_ = X3.shape[-1]
        elif X3.shape[-1] != self.n_features_in_:
            raise ValueError(
                f"X has {X3.shape[-1]} features, but TemporalReceptiveField was fitted with {self.n_features_in_}."
            )
        return X3, continuous, _segments(X3, continuous, runs)

    def _padded(
        self, X3: np.ndarray, continuous: bool, segments: list[slice], lags: Lags, device: torch.device
    ) -> list[torch.Tensor]:
        """Centred features, zero-padded per segment group (float64, on ``device``)."""
        Xc = torch.as_tensor(X3, device=device) - torch.as_tensor(self.x_mean_, device=device)
        parts = [Xc[:, seg] for seg in segments] if continuous else [Xc]
        return [lags.pad(part) for part in parts]

    def fit(self, X: Any, y: Any, *, runs: Any = None, groups: Any = None) -> TemporalReceptiveField:
        """Choose each channel's alpha by cross-validation and fit the receptive field.

        Parameters
        ----------
        X : array of shape (n_times, n_features) or (n_epochs, n_times, n_features)
            Stimulus features, rows ordered in time.
        y : array of shape (n_times[, n_channels]) or (n_epochs, n_times[, n_channels])
            Responses on the same samples.
        runs : array of shape (n_times,), optional
            Run label per sample of continuous ``X``: delays never cross a change of label.
        groups : array, optional
            Group labels for group-aware splitters, along the first axis of ``X``.

        Returns
        -------
        self : TemporalReceptiveField
        """
        self._check_params()
        lags = self._lags()
        alphas = check_alphas(self.alphas)
        if self.cv is None and len(alphas) != 1:
            raise ValueError(f"With cv=None the 'alphas' parameter must hold one value. Got {len(alphas)}.")
        X3, continuous, segments = self._prepare_X(X, runs, reset=True)
        Y3 = _targets_3d(y, continuous)
        check_finite(Y3, "y")
        if Y3.shape[:2] != X3.shape[:2]:
            raise ValueError(
                "X and y must share their epochs and time axes: got X of shape "
                f"{np.shape(X)} and y of shape {np.shape(y)}."
            )
        self._y_ndim = np.ndim(y)
        device = resolve_device(self.device)
        dtype = _DTYPES[self.dtype]
        self.x_mean_ = X3.mean((0, 1)) if self.fit_intercept else np.zeros(X3.shape[-1])
        self.y_mean_ = Y3.mean((0, 1)) if self.fit_intercept else np.zeros(Y3.shape[-1])
        Yc = torch.as_tensor(Y3 - self.y_mean_, device=device).to(dtype)
        ys = [Yc[:, seg] for seg in segments] if continuous else [Yc]
        xp = self._padded(X3, continuous, segments, lags, device)
        result = solve_lagged_ridge_cv(
            xp, ys, lags, alphas, self._folds(X3, continuous, segments, groups), score=self.score_func
        )
        n_features, n_delays = X3.shape[-1], lags.n_delays
        coef = result.coef.double().cpu().numpy()
        self.coef_ = coef.T.reshape(-1, n_features, n_delays)
        self.intercept_ = self.y_mean_ - np.einsum("f,cfd->c", self.x_mean_, self.coef_)
        self.delays_ = np.arange(lags.dmin, lags.dmax + 1)
        self.latencies_ = self.delays_ / float(self.sfreq)
        self.alphas_ = alphas
        self.best_alphas_ = result.best_alphas.cpu().numpy()
        if result.cv_scores is None:
            self.cv_scores_ = self.scores_ = None
        else:
            self.cv_scores_ = result.cv_scores.double().cpu().numpy()
            self.scores_ = self.cv_scores_.max(0)
            if self.warn_alpha_edge:
                warn_alpha_edge(self.best_alphas_, self.cv_scores_, alphas, estimator="TemporalReceptiveField.fit")
        return self

    def predict(self, X: Any, *, runs: Any = None) -> np.ndarray:
        """Predicted responses.

        Parameters
        ----------
        X : array of shape (n_times, n_features) or (n_epochs, n_times, n_features)
        runs : array of shape (n_times,), optional

        Returns
        -------
        y_pred : array of shape (n_times[, n_channels]) or (n_epochs, n_times[, n_channels])
            The channel axis is dropped when the model was fitted on 1-D (or 2-D epoched) ``y``.
        """
        check_is_fitted(self, "coef_")
        lags = Lags(int(self.delays_[0]), int(self.delays_[-1]))
        X3, continuous, segments = self._prepare_X(X, runs, reset=False)
        device = resolve_device(self.device)
        W = torch.as_tensor(self.coef_.reshape(self.coef_.shape[0], -1).T, device=device).to(_DTYPES[self.dtype])
        preds = [lagged_predict(lags.window(xp, 0, xp.shape[1] - lags.front - lags.back), W, lags.n_delays)
                 for xp in self._padded(X3, continuous, segments, lags, device)]
        pred = (torch.cat(preds, 1) if continuous else preds[0]).cpu().numpy() + self.y_mean_
        if continuous:
            pred = pred[0]
        if self._y_ndim == (1 if continuous else 2):
            pred = pred[..., 0]
        return pred

    def score_channels(self, X: Any, y: Any, *, metric: str | None = None, runs: Any = None) -> np.ndarray:
        """Score of each channel's predictions on ``X``.

        Parameters
        ----------
        X : array of shape (n_times, n_features) or (n_epochs, n_times, n_features)
        y : array, the shape of :meth:`predict`'s output
        metric : {"r2", "pearson"} or None
            None uses ``score_func``.
        runs : array of shape (n_times,), optional

        Returns
        -------
        scores : array of shape (n_channels,)
            NaN for a constant channel.
        """
        metric = self.score_func if metric is None else metric
        if metric not in SCORES:
            raise ValueError(f"The 'metric' parameter must be one of {SCORES}. Got {metric!r} instead.")
        pred = self.predict(X, runs=runs)
        Y = np.asarray(y, dtype=np.float64)
        if Y.shape != pred.shape:
            raise ValueError(f"The 'y' argument must have the shape of the predictions, {pred.shape}. Got {Y.shape}.")
        n_channels = self.coef_.shape[0]
        P = torch.as_tensor(pred.reshape(-1, n_channels))
        T = torch.as_tensor(Y.reshape(-1, n_channels))
        return (r2_targets if metric == "r2" else pearson_targets)(T, P).numpy()

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean over channels of :meth:`score_channels` (``score_func``): one number, as scikit-learn expects."""
        if sample_weight is not None:
            raise ValueError("TemporalReceptiveField.score does not support sample_weight.")
        scores = self.score_channels(X, y)
        return float(np.nanmean(scores)) if np.isfinite(scores).any() else float("nan")

    def peak_latencies(self, feature: int | None = None) -> np.ndarray:
        """Latency (s) of the largest absolute weight of each channel.

        Parameters
        ----------
        feature : int or None
            Look at one feature's weights; None: the largest over all features.

        Returns
        -------
        latencies : array of shape (n_channels,)
        """
        check_is_fitted(self, "coef_")
        weights = np.abs(self.coef_)
        if feature is not None:
            if not 0 <= feature < weights.shape[1]:
                raise ValueError(f"The 'feature' argument must be in [0, {weights.shape[1]}). Got {feature}.")
            weights = weights[:, feature : feature + 1]
        return self.latencies_[weights.max(1).argmax(1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.target_tags.multi_output = True
        return tags
