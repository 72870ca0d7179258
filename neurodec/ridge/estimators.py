"""scikit-learn estimators: ``RidgeCV`` and ``KernelRidgeCV`` with one alpha per target.

``fit`` validates the input once and calls the pure solvers of
:mod:`neurodec.ridge.solvers`. Inputs may be numpy arrays or torch tensors
(CPU or CUDA; outputs come back in the same kind and on the same device);
targets may also be memory-mapped, HDF5 or zarr arrays, streamed in batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .._device import resolve_device
from .._docs import fill_doc
from ._scoring import SCORES, pearson_targets, r2_targets
from ._validation import (
    RIDGE_PARAMETER_CONSTRAINTS,
    FiniteCheckedTargets,
    check_alphas,
    check_finite,
    is_streamed,
    resolve_splits,
    warn_alpha_edge,
)
from .kernels import compute_kernel
from .solvers import solve_kernel_ridge_cv, solve_ridge_cv

__all__ = ["KernelRidgeCV", "RidgeCV"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _check_X(est: BaseEstimator, X: Any, *, reset: bool) -> tuple[torch.Tensor, torch.device | None]:
    """Validated features as a tensor, and the device to return outputs on (None: numpy)."""
    if not isinstance(X, torch.Tensor):
        X = validate_data(est, X, reset=reset, dtype=[np.float64, np.float32], ensure_all_finite=False)
        check_finite(X, "X")
        return torch.from_numpy(np.require(X, requirements=["C", "W"])), None
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D tensor X of shape (n_samples, n_features). Got shape {tuple(X.shape)}.")
    if X.dtype not in (torch.float32, torch.float64):
        X = X.to(torch.float32)  # float16/bfloat16/int inputs are upcast
    check_finite(X, "X")
    if reset:
        est.n_features_in_ = X.shape[1]
    elif X.shape[1] != est.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(est).__name__} is expecting {est.n_features_in_} features as input."
        )
    return X, X.device


def _check_Y(Y: Any, n_samples: int) -> tuple[Any, bool]:
    """Validated targets (2-D, possibly streamed) and whether the input was 1-D."""
    if is_streamed(Y) and len(Y.shape) == 2:
        Y = FiniteCheckedTargets(Y)
    elif isinstance(Y, torch.Tensor):
        check_finite(Y, "Y")
    else:
        Y = check_array(
            np.asarray(Y[:]) if is_streamed(Y) else Y,
            ensure_2d=False,
            dtype=[np.float64, np.float32],
            ensure_all_finite=False,
            input_name="y",
        )
        check_finite(Y, "Y")
    if len(Y.shape) not in (1, 2):
        raise ValueError(f"Y must be of shape (n_samples,) or (n_samples, n_targets). Got shape {tuple(Y.shape)}.")
    if Y.shape[0] != n_samples:
        raise ValueError(f"X and Y must have the same number of rows (samples). Got {n_samples} and {Y.shape[0]}.")
    ravel = len(Y.shape) == 1
    return (Y[:, None] if ravel else Y), ravel


def _output(t: torch.Tensor, device: torch.device | None, ravel: bool) -> Any:
    t = t[..., 0] if ravel else t
    return t.detach().cpu().numpy() if device is None else t.to(device)


class _BaseRidgeCV(RegressorMixin, BaseEstimator):
    """Shared validation, attribute storage and scoring of the ridge estimators."""

    def _setup(self, X: Any, y: Any, groups: Any):
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        alphas = check_alphas(self.alphas)
        Xt, out_device = _check_X(self, X, reset=True)
        Y, ravel = _check_Y(y, Xt.shape[0])
        splits = resolve_splits(self.cv, Xt, Xt.shape[0], groups)
        device = resolve_device(out_device if (self.device == "auto" and out_device is not None) else self.device)
        return Xt, Y, ravel, alphas, splits, device, out_device

    def _store(self, result: Any, alphas: np.ndarray, ravel: bool, out_device: torch.device | None) -> None:
        self.alphas_ = alphas
        self.best_alphas_ = _output(result.best_alphas, out_device, ravel)
        self.cv_scores_ = _output(result.cv_scores, out_device, ravel)
        self.intercept_ = _output(result.intercept, out_device, ravel)
        if ravel and out_device is None:
            self.best_alphas_, self.intercept_ = float(self.best_alphas_), float(self.intercept_)
        if self.warn_alpha_edge:
            warn_alpha_edge(
                result.best_alphas, result.cv_scores, alphas, estimator=f"{type(self).__name__}.fit", stacklevel=5
            )

    def score_targets(self, X: Any, y: Any, *, metric: str = "r2") -> Any:
        """Per-target score of the predictions on ``X``.

        Parameters
        ----------
        X : array or tensor of shape (n_samples, n_features)
        y : array or tensor of shape (n_samples, n_targets)
        metric : {"r2", "pearson"}

        Returns
        -------
        scores : array or tensor of shape (n_targets,)
            NaN for a constant target (and, for "pearson", a constant
            prediction): their scores are undefined, as in
            :mod:`neurodec.encoding.scores`.
        """
        if metric not in SCORES:
            raise ValueError(f"The 'metric' parameter must be one of {SCORES}. Got {metric!r} instead.")
        pred = self.predict(X)
        out_device = pred.device if isinstance(pred, torch.Tensor) else None
        P = torch.as_tensor(pred).to(torch.float64)
        Y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).to(P)
        if Y.ndim == 1:
            Y, P = Y[:, None], P[:, None]
        scores = (r2_targets if metric == "r2" else pearson_targets)(Y, P)
        return scores.cpu().numpy() if out_device is None else scores

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean R^2 over targets, as scikit-learn's regressors report it (constant targets left out)."""
        if sample_weight is not None:
            from sklearn.metrics import r2_score

            pred = self.predict(X)
            return float(r2_score(np.asarray(y), np.asarray(pred), sample_weight=sample_weight))
        scores = np.asarray(torch.as_tensor(self.score_targets(X, y)).cpu())
        return float(np.nanmean(scores)) if np.isfinite(scores).any() else float("nan")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


@fill_doc
class RidgeCV(_BaseRidgeCV):
    """Ridge regression with one regularization per target chosen by cross-validation.

    Parameters
    ----------
    alphas : array of shape (n_alphas,), optional
        Positive regularization strengths; default ``np.logspace(-2, 8, 21)``.
    cv : int, splitter, iterable of (train, val), "loo" or "gcv"
        An int gives ``KFold(cv)`` without shuffling; any scikit-learn
        splitter works (``groups`` are passed from ``fit``); "loo"/"gcv" is
        exact efficient leave-one-out.
    fit_intercept : bool
    score_func : {"r2", "pearson"}
        CV criterion maximized per target.
    method : {"auto", "primal", "dual"}
        "auto" uses the dual (kernel) form when n_train < n_features.
    %(device)s
    dtype : {"float32", "float64"}
        Dtype of the large products (decompositions are float64).
    %(n_targets_batch)s
    allow_tf32 : bool
        Allow TF32 on CUDA (checked against float32 on a sample of targets).
    warn_alpha_edge : bool
        Warn when targets choose an alpha at the edge of the grid.
    %(verbose)s

    Attributes
    ----------
    coef_ : array of shape (n_features, n_targets)
    intercept_ : array of shape (n_targets,)
    best_alphas_ : array of shape (n_targets,)
    cv_scores_ : array of shape (n_alphas, n_targets)
    alphas_ : array of shape (n_alphas,)
    n_features_in_ : int
    method_ : {"primal", "dual"}

    See Also
    --------
    neurodec.ridge.solve_ridge_cv : the solver, with the algorithm and FLOP model.
    neurodec.ridge.BlockedKFold : folds with a gap, for autocorrelated time series.

    Examples
    --------
    >>> import numpy as np
    >>> from neurodec.ridge import RidgeCV
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.standard_normal((100, 5)), rng.standard_normal((100, 3))
    >>> model = RidgeCV(alphas=np.logspace(-2, 4, 7), warn_alpha_edge=False).fit(X, Y)
    >>> model.coef_.shape, model.best_alphas_.shape, model.cv_scores_.shape
    ((5, 3), (3,), (7, 3))
    """

    _parameter_constraints: dict = {
        **RIDGE_PARAMETER_CONSTRAINTS,
        "method": [StrOptions({"auto", "primal", "dual"})],
        "allow_tf32": ["boolean"],
    }

    def __init__(
        self,
        alphas: Any = None,
        *,
        cv: Any = 5,
        fit_intercept: bool = True,
        score_func: str = "r2",
        method: str = "auto",
        device: Any = "auto",
        dtype: str = "float32",
        n_targets_batch: int | None = None,
        allow_tf32: bool = False,
        warn_alpha_edge: bool = True,
        verbose: bool | int = False,
    ) -> None:
        self.alphas = alphas
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.score_func = score_func
        self.method = method
        self.device = device
        self.dtype = dtype
        self.n_targets_batch = n_targets_batch
        self.allow_tf32 = allow_tf32
        self.warn_alpha_edge = warn_alpha_edge
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, groups: Any = None) -> RidgeCV:
        """Choose each target's alpha by cross-validation and refit on all samples.

        Parameters
        ----------
        X : array or tensor of shape (n_samples, n_features)
        y : array, tensor, memmap, h5py.Dataset or zarr.Array of shape (n_samples, n_targets) or (n_samples,)
        groups : array of shape (n_samples,), optional
            Group labels for group-aware splitters (GroupKFold, LeaveOneGroupOut).

        Returns
        -------
        self : RidgeCV
        """
        Xt, Y, ravel, alphas, splits, device, out_device = self._setup(X, y, groups)
        result = solve_ridge_cv(
            Xt,
            Y,
            alphas,
            splits,
            device=device,
            dtype=_DTYPES[self.dtype],
            n_targets_batch=self.n_targets_batch,
            fit_intercept=self.fit_intercept,
            score=self.score_func,
            method=self.method,
            allow_tf32=self.allow_tf32,
            verbose=self.verbose,
            output_device="cpu" if out_device is None else out_device,
        )
        self.method_ = result.method
        self.coef_ = _output(result.coef, out_device, ravel)
        self._store(result, alphas, ravel, out_device)
        return self

    def predict(self, X: Any) -> Any:
        """Predictions of shape (n_samples, n_targets) (or (n_samples,) for a 1-D fit)."""
        check_is_fitted(self)
        Xt, out_device = _check_X(self, X, reset=False)
        coef = torch.as_tensor(self.coef_).to(device=Xt.device, dtype=torch.float64)
        intercept = torch.as_tensor(self.intercept_).to(coef)
        pred = Xt.to(torch.float64) @ coef + intercept
        return pred.cpu().numpy() if out_device is None else pred.to(Xt.dtype)


class KernelRidgeCV(_BaseRidgeCV):
    """Kernel ridge regression with one regularization per target chosen by cross-validation.

    Parameters
    ----------
    alphas : array of shape (n_alphas,), optional
        Default ``np.logspace(-2, 8, 21)``.
    kernel : {"linear", "rbf", "poly", "cosine"} or callable
        A callable takes ``(X, Z, **kernel_params)`` (float64 tensors) and
        returns their kernel matrix.
    kernel_params : dict, optional
        E.g. ``{"gamma": 0.1}``; defaults as in scikit-learn.
    cv, fit_intercept, score_func, device, dtype, n_targets_batch, allow_tf32, warn_alpha_edge, verbose
        As in :class:`RidgeCV`. With ``fit_intercept`` the kernel is centred
        on each training fold (an unpenalized intercept).

    Attributes
    ----------
    dual_coef_ : array of shape (n_samples, n_targets)
    intercept_ : array of shape (n_targets,)
    best_alphas_ : array of shape (n_targets,)
    cv_scores_ : array of shape (n_alphas, n_targets)
    X_fit_ : array or tensor of shape (n_samples, n_features)
    n_features_in_ : int
    """

    _parameter_constraints: dict = {
        **RIDGE_PARAMETER_CONSTRAINTS,
        "kernel": [StrOptions({"linear", "rbf", "poly", "cosine"}), callable],
        "kernel_params": [dict, None],
        "allow_tf32": ["boolean"],
    }

    def __init__(
        self,
        alphas: Any = None,
        *,
        kernel: Any = "linear",
        kernel_params: dict | None = None,
        cv: Any = 5,
        fit_intercept: bool = True,
        score_func: str = "r2",
        device: Any = "auto",
        dtype: str = "float32",
        n_targets_batch: int | None = None,
        allow_tf32: bool = False,
        warn_alpha_edge: bool = True,
        verbose: bool | int = False,
    ) -> None:
        self.alphas = alphas
        self.kernel = kernel
        self.kernel_params = kernel_params
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.score_func = score_func
        self.device = device
        self.dtype = dtype
        self.n_targets_batch = n_targets_batch
        self.allow_tf32 = allow_tf32
        self.warn_alpha_edge = warn_alpha_edge
        self.verbose = verbose

    def _kernel(self, X: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
        return compute_kernel(X.to(torch.float64), Z.to(torch.float64), self.kernel, **(self.kernel_params or {}))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, groups: Any = None) -> KernelRidgeCV:
        """Choose each target's alpha by cross-validation and refit on all samples.

        Parameters
        ----------
        X : array or tensor of shape (n_samples, n_features)
        y : array, tensor, memmap, h5py.Dataset or zarr.Array of shape (n_samples, n_targets) or (n_samples,)
        groups : array of shape (n_samples,), optional

        Returns
        -------
        self : KernelRidgeCV
        """
        Xt, Y, ravel, alphas, splits, device, out_device = self._setup(X, y, groups)
        X_dev = Xt.to(device)
        K = self._kernel(X_dev, X_dev)
        check_finite(K, "kernel(X, X)")
        result = solve_kernel_ridge_cv(
            K,
            Y,
            alphas,
            splits,
            device=device,
            dtype=_DTYPES[self.dtype],
            n_targets_batch=self.n_targets_batch,
            fit_intercept=self.fit_intercept,
            score=self.score_func,
            allow_tf32=self.allow_tf32,
            verbose=self.verbose,
            output_device="cpu" if out_device is None else out_device,
        )
        self.X_fit_ = Xt.numpy() if out_device is None else Xt
        self.dual_coef_ = _output(result.dual_coef, out_device, ravel)
        self._store(result, alphas, ravel, out_device)
        return self

    def predict(self, X: Any) -> Any:
        """Predictions ``kernel(X, X_fit_) @ dual_coef_ + intercept_``."""
        check_is_fitted(self)
        Xt, out_device = _check_X(self, X, reset=False)
        X_fit = torch.as_tensor(self.X_fit_).to(Xt.device)
        dual = torch.as_tensor(self.dual_coef_).to(device=Xt.device, dtype=torch.float64)
        pred = self._kernel(Xt, X_fit) @ dual + torch.as_tensor(self.intercept_).to(dual)
        return pred.cpu().numpy() if out_device is None else pred.to(Xt.dtype)
