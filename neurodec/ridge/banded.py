"""Banded ridge regression: one regularization per feature space per target.

:class:`BandedRidgeCV` fits several feature spaces (backbones, layers, delayed
stimulus descriptors) jointly, letting cross-validation decide per target how
much each space is shrunk; :func:`r2_score_split` splits the joint R^2 into
one part per space (variance partitioning).
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

from neurodec._docs import fill_doc
from neurodec.ridge._banded_solver import generate_band_weights, solve_banded_ridge_cv
from neurodec.ridge._validation import RIDGE_PARAMETER_CONSTRAINTS, check_alphas, resolve_splits, warn_alpha_edge
from neurodec.ridge.estimators import _DTYPES, _check_Y

__all__ = ["BandedRidgeCV", "r2_score_split"]


def r2_score_split(y_true: Any, y_pred: Any, *, include_correlation: bool = True) -> np.ndarray:
    """Split the R^2 of a sum of band predictions into one part per band.

    The product-measure decomposition of himalaya's ``r2_score_split``: for
    band predictions ``P_b`` the share of band ``b`` is
    ``sum_t (2 y P_b - P_b * sum_c P_c) / sum_t y^2``, and the shares sum to
    ``1 - ||y - sum_b P_b||^2 / ||y||^2``, the joint R^2 when ``y`` is zero-mean.

    Parameters
    ----------
    y_true : array of shape (n_samples, n_targets) or (n_samples,)
        Observed values, zero-mean over samples.
    y_pred : array of shape (n_bands, n_samples, n_targets) or (n_bands, n_samples)
        Band predictions.
    include_correlation : bool
        If False, ignore the products between bands (shares no longer sum to the joint R^2).

    Returns
    -------
    r2 : array of shape (n_bands, n_targets) or (n_bands,)
        A tensor on their device when both inputs are tensors.
    """
    import torch

    if not (isinstance(y_true, torch.Tensor) and isinstance(y_pred, torch.Tensor)):
        # Tensors (e.g. scores computed on a GPU) stay where they are; the formula is the same.
        y_true = np.asarray(y_true, dtype=np.float64)
        y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_pred.ndim != y_true.ndim + 1 or y_pred.shape[1:] != y_true.shape:
        raise ValueError(
            f"y_pred must have shape (n_bands, {', '.join(map(str, y_true.shape))}) to match y_true. "
            f"Got {y_pred.shape}."
        )
    sst = (y_true**2).sum(0)
    overlap = y_pred * y_pred.sum(0) if include_correlation else y_pred**2
    return (2 * y_true * y_pred - overlap).sum(1) / sst


def _is_band_list(X: Any) -> bool:
    """A list of 2-D band arrays (not a nested list of rows)."""
    return isinstance(X, (list, tuple)) and len(X) > 0 and all(getattr(x, "ndim", None) == 2 for x in X)


def _band_columns(groups: Any, X: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    """Stacked features and the column indices of each band, from any accepted ``groups`` form."""
    if _is_band_list(X):
        if groups is not None:
            raise ValueError("Pass either X as a list of band arrays or 'groups', not both. Got both.")
        blocks = [check_array(x, dtype=(np.float64, np.float32)) for x in X]
        if len({b.shape[0] for b in blocks}) != 1:
            raise ValueError(f"The band arrays in X must have the same number of rows. Got {[b.shape for b in blocks]}.")
        edges = np.cumsum([0] + [b.shape[1] for b in blocks])
        return np.hstack(blocks), [np.arange(a, b) for a, b in zip(edges[:-1], edges[1:])]
    X = check_array(X, dtype=(np.float64, np.float32))
    n_features = X.shape[1]
    if groups is None:  # one band: an ordinary ridge, as in himalaya
        return X, [np.arange(n_features)]
    if all(not isinstance(g, slice) and np.ndim(g) == 0 for g in groups):  # a band label per column
        labels = np.asarray(groups)
        if labels.shape != (n_features,) or labels.dtype.kind not in "iu":
            raise ValueError(
                f"'groups' given as labels must hold one integer band label per column, shape ({n_features},). "
                f"Got shape {labels.shape} of dtype {labels.dtype}."
            )
        bands = [np.flatnonzero(labels == u) for u in np.unique(labels)]
    else:
        bands = [np.arange(n_features)[g] if isinstance(g, slice) else np.asarray(g, dtype=np.int64) for g in groups]
    covered = np.sort(np.concatenate(bands)) if bands else np.array([])
    if len(bands) < 1 or any(len(b) == 0 for b in bands) or not np.array_equal(covered, np.arange(n_features)):
        raise ValueError(
            f"'groups' must split the {n_features} columns of X into non-empty bands, each column in exactly "
            f"one band. Got bands of sizes {[len(b) for b in bands]} covering {len(np.unique(covered))} columns."
        )
    return X, bands


@fill_doc
class BandedRidgeCV(MultiOutputMixin, RegressorMixin, BaseEstimator):
    """Banded ridge: per target, one penalty per feature space, by random search and CV.

    For each candidate band weighting ``gamma`` (on the simplex) and each
    ``alpha``, band ``b`` is penalized by ``alpha / gamma_b``; the candidate
    and alpha with the best cross-validation score are kept per target and
    the weights refit on all samples. This is the model and the search of
    himalaya's ``BandedRidgeCV`` (random search), with the same candidates for
    the same ``random_state``.

    Parameters
    ----------
    groups : sequence of slice, sequence of index arrays, int array of shape (n_features,), or None
        The bands: one slice or one array of column indices per band, or a
        band label per column. None when ``X`` is passed as a list of one
        array per band (with a single array, None means one band).
    alphas : sequence of float or None
        Ridge penalties tried for each candidate; None means ``np.logspace(-2, 8, 21)``.
    n_iter : int or array of shape (n_candidates, n_bands)
        Candidate budget: that many candidates from :func:`generate_band_weights`
        (the first is uniform), or the candidate weights themselves.
    concentration : float or sequence of float
        Dirichlet concentrations of the random candidates, cycled.
    cv : int, splitter, iterable of (train, val), "loo" or "gcv"
        Folds as in :class:`neurodec.ridge.RidgeCV`: an int means that many
        contiguous (unshuffled) folds; "loo" is exact leave-one-out.
    %(random_state)s
        Here: the candidate draw.
    score_func : {"r2", "pearson"}
        Validation score maximized per target.
    method : {"auto", "primal", "dual"}
        "auto" uses the dual (kernel) form, with per-band kernels, when there
        are fewer training samples than features.
    %(device)s
    dtype : {"float32", "float64"}
        Dtype of the large products; Grams and eigendecompositions are float64.
    n_targets_batch : int or None
        Targets per batch (bounds memory; each batch repeats the candidates'
        decompositions); by default from free GPU memory or a RAM budget.
    fit_intercept : bool
        Fit an intercept (features and targets centered per fold and on all samples).
    warn_alpha_edge : bool
        Warn when predicted targets choose the smallest or largest alpha of
        the grid (the rule of :class:`neurodec.ridge.RidgeCV`).
    %(verbose)s

    Attributes
    ----------
    coef_ : array of shape (n_features, n_targets) or (n_features,)
        Weights on the unscaled features, in the column order of ``X``.
    intercept_ : array of shape (n_targets,) or float
    deltas_ : array of shape (n_bands, n_targets) or (n_bands,)
        Log band scalings ``log(gamma_b / alpha)`` (the penalty of band ``b`` is ``exp(-delta_b)``).
    best_alphas_ : array of shape (n_targets,) or float
    best_gammas_ : array of shape (n_bands, n_targets) or (n_bands,)
    cv_scores_ : array of shape (n_candidates, n_targets)
        Cross-validation score of each candidate at its best alpha.
    gammas_ : array of shape (n_candidates, n_bands)
        The candidates searched.
    alphas_ : array of shape (n_alphas,)
        The alphas searched.
    method_ : {"primal", "dual"}
    bands_ : list of arrays
        Column indices of each band in ``X``.
    X_offset_ : array of shape (n_features,)
        Training feature means (zeros without an intercept).
    y_offset_ : array of shape (n_targets,) or float
        Training target means (zeros without an intercept).
    n_features_in_ : int

    See Also
    --------
    neurodec.ridge.delays.Delayer : delayed features; their bands stay contiguous.
    neurodec.ridge.distributed.fit_distributed : the same fit, targets sharded over a Dask cluster.

    Examples
    --------
    >>> import numpy as np
    >>> from neurodec.ridge import BandedRidgeCV
    >>> rng = np.random.default_rng(0)
    >>> XA, XB = rng.standard_normal((100, 5)), rng.standard_normal((100, 20))
    >>> Y = XA @ rng.standard_normal((5, 3)) + 0.1 * rng.standard_normal((100, 3))
    >>> model = BandedRidgeCV(n_iter=20, random_state=0, device="cpu").fit([XA, XB], Y)
    >>> bool(np.all(model.best_gammas_[0] > model.best_gammas_[1]))  # band A explains Y
    True
    >>> model.predict([XA, XB], split=True).shape  # (n_bands, n_samples, n_targets)
    (2, 100, 3)
    """

    _parameter_constraints: dict = {
        **RIDGE_PARAMETER_CONSTRAINTS,
        "groups": "no_validation",  # slices, index arrays or labels: checked against X in fit
        "n_iter": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "concentration": [Interval(Real, 0, None, closed="neither"), "array-like"],
        "random_state": ["random_state"],
        "method": [StrOptions({"auto", "primal", "dual"})],
    }

    def __init__(
        self,
        groups: Any = None,
        *,
        alphas: Sequence[float] | None = None,
        n_iter: int | np.ndarray = 100,
        concentration: float | Sequence[float] = (0.1, 1.0),
        cv: Any = 5,
        random_state: int | None = None,
        score_func: str = "r2",
        method: str = "auto",
        device: Any = "auto",
        dtype: str = "float32",
        n_targets_batch: int | None = None,
        fit_intercept: bool = True,
        warn_alpha_edge: bool = True,
        verbose: bool | int = False,
    ) -> None:
        self.groups = groups
        self.alphas = alphas
        self.n_iter = n_iter
        self.concentration = concentration
        self.cv = cv
        self.random_state = random_state
        self.score_func = score_func
        self.method = method
        self.device = device
        self.dtype = dtype
        self.n_targets_batch = n_targets_batch
        self.fit_intercept = fit_intercept
        self.warn_alpha_edge = warn_alpha_edge
        self.verbose = verbose

    def _candidates(self, n_bands: int) -> np.ndarray:
        if np.ndim(self.n_iter) == 0:
            return generate_band_weights(
                int(self.n_iter), n_bands, concentration=self.concentration, random_state=self.random_state
            )
        gammas = np.asarray(self.n_iter, dtype=np.float64)
        if gammas.ndim != 2 or gammas.shape[1] != n_bands or np.any(gammas < 0):
            raise ValueError(
                f"'n_iter' given as candidates must be a non-negative array of shape (n_candidates, {n_bands}). "
                f"Got shape {gammas.shape}."
            )
        return gammas

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any) -> "BandedRidgeCV":
        """Search the band weights and alphas, then refit on all samples.

        Parameters
        ----------
        X : array of shape (n_samples, n_features), or list of arrays of shape (n_samples, n_features_b)
            Features; one array per band when ``groups`` is None.
        y : array, memmap or h5py.Dataset of shape (n_samples,) or (n_samples, n_targets)
            Targets (streamed in column batches).

        Returns
        -------
        self : BandedRidgeCV
        """
        if y is None:
            raise ValueError("BandedRidgeCV requires y to be passed, but the target y is None.")
        X, bands = _band_columns(self.groups, X)
        Y, ravel = _check_Y(y, X.shape[0])
        gammas = self._candidates(len(bands))
        order = np.concatenate(bands)
        edges = np.cumsum([0] + [len(b) for b in bands])
        result = solve_banded_ridge_cv(
            X[:, order],
            Y,
            [slice(a, b) for a, b in zip(edges[:-1], edges[1:])],
            gammas,
            alphas=check_alphas(self.alphas),
            splits=resolve_splits(self.cv, X, X.shape[0], None),
            device=self.device,
            dtype=_DTYPES[self.dtype],
            n_targets_batch=self.n_targets_batch,
            fit_intercept=self.fit_intercept,
            score=self.score_func,
            method=self.method,
            verbose=self.verbose,
        )
        coef = np.empty_like(result.coef)
        coef[order] = result.coef
        self.coef_ = coef[:, 0] if ravel else coef
        self.intercept_ = result.intercept[0] if ravel else result.intercept
        self.deltas_ = result.deltas[:, 0] if ravel else result.deltas
        self.best_gammas_ = result.best_gammas[:, 0] if ravel else result.best_gammas
        self.best_alphas_ = result.best_alphas[0] if ravel else result.best_alphas
        self.cv_scores_ = result.cv_scores
        self.gammas_ = gammas
        self.alphas_ = check_alphas(self.alphas)
        self.method_ = result.method
        self.bands_ = bands
        self.X_offset_ = X.mean(0) if self.fit_intercept else np.zeros(X.shape[1])
        self.y_offset_ = self.intercept_ + self.X_offset_ @ self.coef_
        self.n_features_in_ = X.shape[1]
        if self.warn_alpha_edge:
            warn_alpha_edge(result.best_alphas, result.cv_scores, self.alphas_, estimator="BandedRidgeCV.fit", stacklevel=4)
        return self

    def predict(self, X: Any, split: bool = False) -> np.ndarray:
        """Predict, jointly or band by band.

        Parameters
        ----------
        X : array of shape (n_samples, n_features) or list of band arrays
            Features, in the form given to ``fit``.
        split : bool
            Return one prediction per band: band ``b`` contributes
            ``(X_b - X_offset_b) @ coef_b + y_offset_ / n_bands``, so the band
            predictions sum to the joint prediction (without an intercept,
            simply ``X_b @ coef_b``).

        Returns
        -------
        Y_hat : array of shape (n_samples, n_targets), or (n_bands, n_samples, n_targets) if split
        """
        check_is_fitted(self, "coef_")
        X = self._check_X(X)
        if not split:
            return X @ self.coef_ + self.intercept_
        return self._band_contributions(X) + np.asarray(self.y_offset_) / len(self.bands_)

    def score(self, X: Any, y: Any, split: bool = False) -> np.ndarray:
        """R^2 per target, or split into per-band shares (variance partitioning).

        Parameters
        ----------
        X : array of shape (n_samples, n_features) or list of band arrays
        y : array of shape (n_samples, n_targets) or (n_samples,)
        split : bool
            Return :func:`r2_score_split` of the band contributions, of shape
            (n_bands, n_targets); the shares sum to the joint R^2 measured
            around the training target mean ``y_offset_`` (zero without an
            intercept, as in himalaya, where targets must be zero-mean).

        Returns
        -------
        r2 : array of shape (n_targets,) or (n_bands, n_targets)
        """
        check_is_fitted(self, "coef_")
        Y = check_array(y, dtype=np.float64, ensure_2d=False)
        if not split:
            from sklearn.metrics import r2_score

            return r2_score(Y, self.predict(X), multioutput="raw_values")
        return r2_score_split(Y - self.y_offset_, self._band_contributions(self._check_X(X)))

    def _check_X(self, X: Any) -> np.ndarray:
        X, _ = _band_columns(None if _is_band_list(X) else self.groups, X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but BandedRidgeCV is expecting {self.n_features_in_} features as input."
            )
        return X

    def _band_contributions(self, X: np.ndarray) -> np.ndarray:
        """``(X_b - X_offset_b) @ coef_b`` for every band, shape (n_bands, n_samples[, n_targets])."""
        centered = X - self.X_offset_
        return np.stack([centered[:, band] @ self.coef_[band] for band in self.bands_])
