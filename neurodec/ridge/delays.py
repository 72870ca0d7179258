"""Finite-impulse-response (FIR) time-delay features for temporal receptive fields.

A linear model on delayed copies of the features, ``y(t) = sum_d h_d x(t - d)``,
estimates a temporal receptive field ``h`` (the hemodynamic response in fMRI,
an evoked response in MEG/iEEG). :class:`Delayer` builds those copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["Delayer"]


def _delays_in_samples(delays: Sequence[float] | np.ndarray, sfreq: float | None) -> np.ndarray:
    """Integer sample delays from ``delays`` (samples, or seconds when ``sfreq`` is given)."""
    values = np.asarray(delays, dtype=float).ravel()
    if values.size == 0:
        raise ValueError("The 'delays' parameter of Delayer must hold at least one delay. Got an empty sequence.")
    if sfreq is not None:
        if not np.isscalar(sfreq) or not float(sfreq) > 0:
            raise ValueError(f"The 'sfreq' parameter of Delayer must be a positive number. Got {sfreq!r} instead.")
        values = values * float(sfreq)
    samples = np.round(values)
    bad = np.abs(values - samples) > 1e-6
    if np.any(bad):
        unit = f"seconds at sfreq={sfreq} Hz" if sfreq is not None else "samples"
        raise ValueError(
            f"The 'delays' parameter of Delayer must be whole numbers of samples; "
            f"{np.asarray(delays, dtype=float).ravel()[bad].tolist()} ({unit}) are not."
        )
    samples = samples.astype(np.int64)
    if len(np.unique(samples)) != len(samples):
        raise ValueError(f"The 'delays' parameter of Delayer has repeated delays (in samples: {samples.tolist()}).")
    return samples


def _run_segments(runs: Any, n_samples: int) -> np.ndarray:
    """Segment index per sample: a new segment starts wherever the run label changes."""
    if runs is None:
        return np.zeros(n_samples, dtype=np.int64)
    labels = np.asarray(runs)
    if labels.shape != (n_samples,):
        raise ValueError(
            f"The 'runs' argument of Delayer must hold one run label per sample, shape ({n_samples},). "
            f"Got shape {labels.shape}."
        )
    change = labels[1:] != labels[:-1]
    return np.concatenate([[0], np.cumsum(change)]).astype(np.int64)


class Delayer(TransformerMixin, BaseEstimator):
    """Add time-delayed copies of every feature (an FIR design matrix).

    The output holds, for each input feature ``f`` and delay ``d``, the column
    ``x_f(t - d)``: a positive delay looks into the past (encoding: the brain
    responds after the stimulus), a negative one into the future (decoding,
    anticipation). Samples shifted in from before the start or after the end
    of a run are zeros, so delays never mix two runs.

    Parameters
    ----------
    delays : sequence of int or float, default=(1, 2, 3, 4)
        The delays, in samples, or in seconds when ``sfreq`` is given (then each
        ``delay * sfreq`` must be a whole number of samples). Zero keeps the
        feature unshifted; negative delays are allowed.
    sfreq : float or None, default=None
        Sampling frequency in Hz of the rows of ``X``, when ``delays`` are in seconds.

    Attributes
    ----------
    delays_ : array of shape (n_delays,)
        The delays in samples.
    n_features_in_ : int
        Number of input features.
    feature_names_in_ : array of shape (n_features_in_,)
        Input column names, when ``X`` was a DataFrame with string column names.

    Notes
    -----
    Output layout is feature-major, ``[feature x delay]``: column
    ``f * n_delays + k`` is feature ``f`` shifted by ``delays_[k]``. Columns of
    one feature space therefore stay contiguous after delaying, so the band
    slices of a :class:`~neurodec.ridge.BandedRidgeCV` simply scale by
    ``n_delays``, and fitted weights reshape to the temporal receptive field
    with ``coef.reshape(n_features, n_delays, n_targets)``.

    Run boundaries: pass ``runs`` (one label per sample; a new run starts
    wherever the label changes) to ``fit_transform``/``transform``. Inside a
    :class:`sklearn.pipeline.Pipeline`, route it with scikit-learn's metadata
    routing::

        sklearn.set_config(enable_metadata_routing=True)
        delayer = Delayer(delays=[1, 2, 3]).set_fit_request(runs=True).set_transform_request(runs=True)
        pipe = make_pipeline(delayer, model.set_fit_request(...))  # as the model needs
        pipe.fit(X, Y, runs=runs_train); pipe.predict(X_test, runs=runs_test)

    Without ``runs`` the rows are one continuous recording.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(6.0).reshape(3, 2)
    >>> Delayer(delays=[0, 1]).fit_transform(X)
    array([[0., 0., 1., 0.],
           [2., 0., 3., 1.],
           [4., 2., 5., 3.]])
    """

    def __init__(self, delays: Sequence[float] = (1, 2, 3, 4), *, sfreq: float | None = None) -> None:
        self.delays = delays
        self.sfreq = sfreq

    def fit(self, X: Any, y: Any = None, *, runs: Any = None) -> "Delayer":
        """Check ``X`` and the delays.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            Features, rows ordered in time.
        y : ignored
        runs : array of shape (n_samples,) or None
            Run label of each sample (only checked here).

        Returns
        -------
        self : Delayer
        """
        X = validate_data(self, X, dtype="numeric", reset=True)
        _run_segments(runs, X.shape[0])
        self.delays_ = _delays_in_samples(self.delays, self.sfreq)
        return self

    def transform(self, X: Any, *, runs: Any = None) -> np.ndarray:
        """Return the delayed copies of ``X``.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            Features, rows ordered in time.
        runs : array of shape (n_samples,) or None
            Run label of each sample; delays do not cross a change of label.

        Returns
        -------
        X_delayed : array of shape (n_samples, n_features * n_delays)
            Feature-major: column ``f * n_delays + k`` is feature ``f`` at delay ``delays_[k]``.
        """
        check_is_fitted(self, "delays_")
        X = validate_data(self, X, dtype="numeric", reset=False)
        n_samples, n_features = X.shape
        segments = _run_segments(runs, n_samples)
        out = np.zeros((n_samples, n_features, len(self.delays_)), dtype=X.dtype)
        time = np.arange(n_samples)
        for k, delay in enumerate(self.delays_):
            source = time - delay
            valid = (source >= 0) & (source < n_samples)
            valid[valid] = segments[source[valid]] == segments[valid]
            out[valid, :, k] = X[source[valid]]
        return out.reshape(n_samples, n_features * len(self.delays_))

    def fit_transform(self, X: Any, y: Any = None, *, runs: Any = None) -> np.ndarray:
        """Fit, then return the delayed copies of ``X`` (``runs`` is used by both steps)."""
        return self.fit(X, y, runs=runs).transform(X, runs=runs)

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        """Names of the output columns, ``"<feature>_delay<d>"`` in the output layout.

        Parameters
        ----------
        input_features : sequence of str or None
            Input names; defaults to ``feature_names_in_`` or ``x0, x1, ...``.

        Returns
        -------
        names : array of str of shape (n_features * n_delays,)
        """
        check_is_fitted(self, "delays_")
        if input_features is None:
            input_features = getattr(self, "feature_names_in_", None)
        if input_features is None:
            input_features = [f"x{i}" for i in range(self.n_features_in_)]
        if len(input_features) != self.n_features_in_:
            raise ValueError(
                f"The 'input_features' argument must name {self.n_features_in_} features. "
                f"Got {len(input_features)}."
            )
        return np.asarray([f"{name}_delay{int(d)}" for name in input_features for d in self.delays_], dtype=object)
