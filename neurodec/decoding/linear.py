"""Linear decoders from voxels to target embeddings (Brain-Diffuser / MindEye conventions).

Voxels are z-scored with the training set's statistics, each target (an
embedding dimension, a CLIP token's dimension, a VAE latent value) gets a
ridge regression with its own penalty chosen by cross-validation on the exact
solvers of :mod:`neurodec.ridge`, streamed over target batches, and
predictions are optionally re-standardized to the training targets'
statistics, as Brain-Diffuser does before handing decoded features to its
diffusion model.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .._docs import fill_doc

__all__ = ["DECODER_ALPHAS", "LinearDecoder", "restandardize"]

#: Default penalties: 10 to 1e7, two per decade. On z-scored voxels Brain-Diffuser's
#: hand-picked alphas (5e4 for VDVAE latents, 6e4-1e5 for CLIP) sit in the middle.
DECODER_ALPHAS = np.logspace(1, 7, 13)

# Target columns read at once (from a memmap, HDF5 or zarr array) when the training statistics of
# the targets are computed, and columns reduced at once (a cache-sized slab of one read).
_STAT_CHUNK = 16_384
_STAT_BLOCK = 1024


def restandardize(pred: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Map each predicted feature to a given mean and standard deviation over the predicted samples.

    ``out[:, j] = (pred[:, j] - mean_i pred[i, j]) / std_i pred[i, j] * std[j] + mean[j]``
    with population standard deviations (``ddof=0``, as ``np.std`` in
    Brain-Diffuser's ``clipvision_regression.py``). A feature predicted
    constant over the samples has no spread to rescale; it is set to ``mean[j]``.

    Parameters
    ----------
    pred : array of shape (n_samples, n_targets)
        Predictions for a whole test set (the statistics are over its samples).
    mean, std : arrays of shape (n_targets,)
        The training targets' mean and standard deviation.

    Returns
    -------
    array of shape (n_samples, n_targets), float64
    """
    pred = np.asarray(pred, dtype=np.float64)
    if pred.ndim != 2 or pred.shape[0] < 2:
        raise ValueError(
            "restandardize needs predictions of shape (n_samples, n_targets) with n_samples >= 2 (the "
            f"statistics are over the predicted samples). Got shape {pred.shape}."
        )
    centred = pred - pred.mean(axis=0)
    spread = centred.std(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(spread > 0, centred / spread, 0.0)
    return z * np.asarray(std, dtype=np.float64) + np.asarray(mean, dtype=np.float64)


def _column_stats(Y: Any, *, ddof: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of every column, accumulated in float64, read in chunks (Y may be a memmap).

    The deviations are taken from the mean rounded to the data's dtype (float32
    targets stay float32, float16 ones become float32, until the float64 sums): the bias,
    ``(mean - fl(mean))^2 / var``, is below float32 resolution.
    """
    n_samples, n_targets = Y.shape
    mean, std = np.empty(n_targets), np.empty(n_targets)
    for start in range(0, n_targets, _STAT_CHUNK):
        chunk = np.asarray(Y[:, start : start + _STAT_CHUNK])
        for offset in range(0, chunk.shape[1], _STAT_BLOCK):
            block = chunk[:, offset : offset + _STAT_BLOCK]
            cols = slice(start + offset, start + offset + block.shape[1])
            mean[cols] = block.mean(axis=0, dtype=np.float64)
            deviation = block - mean[cols].astype(np.result_type(block.dtype, np.float32))
            std[cols] = np.sqrt(np.einsum("ij,ij->j", deviation, deviation, dtype=np.float64) / (n_samples - ddof))
    return mean, std


@fill_doc
class LinearDecoder(RegressorMixin, BaseEstimator):
    """Ridge decoder from voxels to target embeddings, one penalty per target.

    Parameters
    ----------
    alphas : array of shape (n_alphas,), optional
        Positive penalties searched per target; default :data:`DECODER_ALPHAS`
        (``np.logspace(1, 7, 13)``). A single value fixes the penalty
        (Brain-Diffuser: 5e4 for VDVAE latents, 6e4 for CLIP embeddings):
        no cross-validation is run, and the fit is one solve.
    cv : int, splitter or iterable of (train, val)
        Folds for choosing each target's penalty (an int: ``KFold`` without
        shuffling); unused with a single alpha.
    restandardize : bool
        Re-standardize predictions (Brain-Diffuser, MindEye's ridge baselines):
        each predicted feature is z-scored over the predicted samples and
        mapped to the training targets' mean and standard deviation (see
        :func:`restandardize`). The predictions of one sample then depend on
        the others passed with it: predict the whole test set at once.
    method : {"auto", "primal", "dual"}
        "dual" solves in kernel form (``n_train x n_train`` linear kernel of
        the z-scored voxels) and keeps ``dual_coef_`` instead of the
        ``(n_voxels, n_targets)`` weights; "auto" picks it when there are fewer
        training samples than voxels (NSD: ~9,000 trials, ~15,000 voxels).
    score_func : {"r2", "pearson"}
        Cross-validation criterion maximized per target.
    %(device)s
    dtype : {"float32", "float64"}
        Dtype of the products that scale with the number of targets.
    %(n_targets_batch)s
    %(verbose)s

    Attributes
    ----------
    x_mean_, x_scale_ : arrays of shape (n_voxels,)
        Training mean and standard deviation (``ddof=1``, as Brain-Diffuser)
        of every voxel; a constant voxel gets scale 1 (it z-scores to 0).
    y_mean_, y_std_ : arrays of shape (n_targets,)
        Training mean and standard deviation (``ddof=0``) of every flattened target.
    target_shape_ : tuple of int
        Trailing shape of ``y`` (``(d,)`` for embeddings, ``(n_tokens, d)`` for tokens).
    best_alphas_ : array of shape (n_targets,)
    cv_scores_ : array of shape (n_alphas, n_targets) or None
        Mean validation score of each penalty; None with a single alpha.
    intercept_ : array of shape (n_targets,)
    method_ : {"primal", "dual"}
    dual_coef_ : array of shape (n_train, n_targets)
        Only for ``method_ == "dual"``, with ``X_fit_`` (the z-scored training
        voxels, shape (n_train, n_voxels)).
    coef_ : array of shape (n_voxels, n_targets)
        Weights on the z-scored voxels (computed from ``dual_coef_`` on access in dual form).
    n_features_in_ : int

    Notes
    -----
    Targets are z-scored with training statistics in the reference code; ridge
    with an intercept and a scale-free CV criterion is equivariant to any
    per-target affine map, so the solver is given the raw targets (no second
    copy of a possibly ``(n_samples, 200k)`` array) and the predictions are
    those of the z-scored fit mapped back. Brain-Diffuser also divides NSD
    betas by 300 first; z-scoring makes that a no-op.

    References
    ----------
    Ozcelik & VanRullen, "Natural scene reconstruction from fMRI signals using
    generative latent diffusion", Scientific Reports 2023 (Brain-Diffuser).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((80, 40))
    >>> Y = X[:, :4] @ rng.standard_normal((4, 3, 5)).reshape(4, 15)
    >>> decoder = LinearDecoder(alphas=[1.0, 10.0], device="cpu").fit(X, Y.reshape(80, 3, 5))
    >>> decoder.predict(X[:10]).shape
    (10, 3, 5)
    """

    _parameter_constraints: dict = {
        "alphas": ["array-like", None],
        "cv": ["cv_object"],
        "restandardize": ["boolean"],
        "method": [StrOptions({"auto", "primal", "dual"})],
        "score_func": [StrOptions({"r2", "pearson"})],
        "device": "no_validation",
        "dtype": [StrOptions({"float32", "float64"})],
        "n_targets_batch": [numbers.Integral, None],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        alphas: Any = None,
        *,
        cv: Any = 5,
        restandardize: bool = False,
        method: str = "auto",
        score_func: str = "r2",
        device: Any = "auto",
        dtype: str = "float32",
        n_targets_batch: int | None = None,
        verbose: bool | int = False,
    ) -> None:
        self.alphas = alphas
        self.cv = cv
        self.restandardize = restandardize
        self.method = method
        self.score_func = score_func
        self.device = device
        self.dtype = dtype
        self.n_targets_batch = n_targets_batch
        self.verbose = verbose

    def _zscore(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.x_mean_) / self.x_scale_).astype(np.float32 if self.dtype == "float32" else np.float64)

    def _targets(self, y: Any, n_samples: int) -> tuple[Any, tuple[int, ...]]:
        from ..ridge._validation import FiniteCheckedTargets, check_finite, is_streamed

        if y is None:
            raise ValueError("LinearDecoder requires y to be passed, but the target y is None.")
        if not (isinstance(y, np.ndarray) or is_streamed(y)):
            y = np.asarray(y, dtype=np.float64)
        if y.ndim < 1 or y.shape[0] != n_samples:
            raise ValueError(
                "The 'y' parameter of LinearDecoder.fit must be an array of shape (n_samples, n_targets) or "
                f"(n_samples, n_tokens, dim) with n_samples = {n_samples} (the rows of X). Got shape {tuple(y.shape)}."
            )
        target_shape = tuple(int(s) for s in y.shape[1:])
        if isinstance(y, np.ndarray):
            y = y.reshape(n_samples, -1)  # a view for C-contiguous arrays and memmaps
            if not np.issubdtype(y.dtype, np.floating):
                y = y.astype(np.float64)
            if is_streamed(y):
                return FiniteCheckedTargets(y), target_shape
            check_finite(y, "y")
            return y, target_shape
        if len(y.shape) != 2:
            raise ValueError(f"A streamed 'y' (h5py, zarr) must be 2-D (n_samples, n_targets). Got shape {tuple(y.shape)}.")
        return FiniteCheckedTargets(y), target_shape

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, groups: Any = None) -> "LinearDecoder":
        """Z-score the voxels, then fit one ridge per target with its penalty chosen by cross-validation.

        Parameters
        ----------
        X : array of shape (n_samples, n_voxels)
            Training responses (e.g. NSD betas, repeats averaged or not).
        y : array of shape (n_samples, n_targets) or (n_samples, n_tokens, dim)
            Target embeddings; a memmap, h5py or zarr array is read in target batches.
        groups : array of shape (n_samples,), optional
            Group labels for group-aware splitters (e.g. one group per image when
            repeats are kept apart, so no image is in a training and a validation fold).

        Returns
        -------
        self : LinearDecoder
        """
        import torch

        from .._device import resolve_device
        from ..ridge._validation import FiniteCheckedTargets, check_alphas, check_finite, resolve_splits
        from ..ridge.kernels import compute_kernel
        from ..ridge.solvers import solve_kernel_ridge_cv, solve_ridge_cv

        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        check_finite(X, "X")
        n_samples, n_voxels = X.shape
        Y, self.target_shape_ = self._targets(y, n_samples)
        alphas = check_alphas(DECODER_ALPHAS if self.alphas is None else self.alphas)
        self.x_mean_ = X.mean(axis=0, dtype=np.float64)
        scale = X.std(axis=0, ddof=1, dtype=np.float64)
        self.x_scale_ = np.where(scale > 0, scale, 1.0)
        Z = torch.from_numpy(self._zscore(X))
        # the solver checks every block it reads: the statistics need not check them a second time
        self.y_mean_, self.y_std_ = _column_stats(Y.Y if isinstance(Y, FiniteCheckedTargets) else Y, ddof=0)
        # One alpha: nothing to choose, so no cross-validation (as TimeResolvedRidge); the fit is a single solve.
        splits = resolve_splits(self.cv, Z, n_samples, groups) if len(alphas) > 1 else None
        n_train = n_samples if splits is None else max(len(train) for train, _ in splits)
        self.method_ = self.method if self.method != "auto" else ("dual" if n_train < n_voxels else "primal")
        device = resolve_device(self.device)
        options = dict(device=device, dtype=getattr(torch, self.dtype), n_targets_batch=self.n_targets_batch,
                       fit_intercept=True, score=self.score_func, verbose=self.verbose, output_device="cpu")
        if self.method_ == "dual":
            Zd = Z.to(device=device, dtype=torch.float64)
            result = solve_kernel_ridge_cv(compute_kernel(Zd, Zd), Y, alphas, splits, **options)
            self.dual_coef_ = result.dual_coef.numpy()
            self.X_fit_ = Z.numpy()
        else:
            result = solve_ridge_cv(Z, Y, alphas, splits, method="primal", **options)
            self._coef = result.coef.numpy()
        self.intercept_ = result.intercept.numpy()
        self.best_alphas_ = result.best_alphas.numpy()
        self.cv_scores_ = None if result.cv_scores is None else result.cv_scores.numpy()
        self.alphas_ = alphas
        return self

    @property
    def coef_(self) -> np.ndarray:
        """Weights of shape (n_voxels, n_targets) on the z-scored voxels."""
        check_is_fitted(self, "method_")
        if self.method_ == "dual":
            return self.X_fit_.T @ self.dual_coef_
        return self._coef

    def predict(self, X: Any) -> np.ndarray:
        """Decode embeddings from responses.

        Parameters
        ----------
        X : array of shape (n_samples, n_voxels)
            Responses, z-scored here with the training statistics.

        Returns
        -------
        array of shape (n_samples, *target_shape_)
            Decoded targets in the training targets' units (re-standardized
            over these samples when ``restandardize`` is on).
        """
        import torch

        from .._device import resolve_device

        check_is_fitted(self, "method_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        device = resolve_device(self.device)
        Z = torch.from_numpy(self._zscore(X)).to(device)
        if self.method_ == "dual":
            K = Z @ torch.from_numpy(self.X_fit_).to(device).T
            weights = torch.from_numpy(self.dual_coef_)
        else:
            K, weights = Z, torch.from_numpy(self._coef)
        pred = np.empty((X.shape[0], weights.shape[1]), dtype=np.float64)
        batch = max(1, 2**26 // max(1, weights.shape[0]))  # ~256 MiB of float32 weights per batch
        for start in range(0, weights.shape[1], batch):
            cols = slice(start, start + batch)
            w = weights[:, cols].to(device=device, dtype=K.dtype)
            b = torch.from_numpy(self.intercept_[cols]).to(device=device, dtype=K.dtype)
            pred[:, cols] = (K @ w + b).cpu().numpy()
        if self.restandardize:
            pred = restandardize(pred, self.y_mean_, self.y_std_)
        return pred.reshape(X.shape[0], *self.target_shape_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
