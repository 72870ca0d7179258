"""The voxel-wise encoding model: stimulus features -> every unit's response, by ridge regression.

:class:`EncodingModel` takes the shared containers: :class:`~neurodec.data.Features`
(one or several feature spaces) and :class:`~neurodec.data.Responses` (with the
dataset's own train/test split). It trains on the "train" trials, scores on the
repeat-averaged "test" trials, and keeps its weights for decoding and discovery.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval

from .._docs import fill_doc
from .._logging import get_logger
from ..ridge._validation import check_alphas, warn_alpha_edge
from ..data.features import Features
from ..data.responses import Responses
from ._inputs import as_spaces, check_responses, design_matrix, expand_units, training_fingerprint, valid_units
from ._split_reader import SplitReader
from .scores import EncodingScores

__all__ = ["EncodingModel"]

logger = get_logger(__name__)

_FITTED = ("coef_", "intercept_", "best_alphas_", "feature_mean_", "feature_scale_", "valid_units_", "cv_scores_")


@fill_doc
class EncodingModel(BaseEstimator):
    """Voxel-wise encoding model: ridge regression from stimulus features to every unit.

    Parameters
    ----------
    alphas : sequence of float, optional
        Ridge penalties searched per unit by cross-validation; default
        ``np.logspace(-2, 8, 21)``, the grid of every neurodec ridge estimator.
    cv : int or scikit-learn splitter
        Folds of the search. An int gives shuffled K-fold over training
        stimuli (grouped by stimulus when single trials are fit, so repeats of
        one image never sit on both sides of a fold).
    %(device)s
    banded : bool
        With several feature spaces: fit banded ridge (one penalty per space per
        unit, :class:`neurodec.ridge.BandedRidgeCV`) and report split R^2 per
        space. Otherwise the spaces are concatenated under one penalty.
    n_iter : int
        Band-weight candidates of the banded search.
    average_repeats : bool
        Train on the mean response to each training stimulus (default) or on
        single trials. Averaging is the usual choice for NSD-type data: it is
        equivalent in expectation, cuts the cost by the number of repeats,
        and matches the repeat-averaged test protocol.
    n_targets_batch : int, optional
        Units per batch in the ridge search, predictions and scoring (bounds
        memory); scoring defaults to 8192 units per batch.
    standardize_features : bool
        Divide every (training-mean-centered) feature by its training standard
        deviation (recorded as ``feature_mean_`` and ``feature_scale_``); the
        penalty then treats features on different scales alike.
    %(random_state)s
        Here: the folds and the banded candidates.
    warn_alpha_edge : bool
        Warn when units that are predicted (best cross-validated score > 0)
        choose the smallest or largest alpha of the grid (banded fits too),
        with a widened grid to try. Units without signal always choose the
        largest alpha and are not counted.
    %(verbose)s

    Attributes
    ----------
    coef_ : float32 array of shape (n_features, n_units)
        Weights on standardized features (columns of excluded units are NaN).
    intercept_ : array of shape (n_units,)
    best_alphas_ : array of shape (n_units,)
        Chosen penalty per unit (NaN for excluded units).
    cv_scores_ : array of shape (n_candidates, n_units)
        Cross-validated R^2 of each alpha (or banded candidate) per unit.
    best_gammas_ : array of shape (n_spaces, n_units)
        Banded only: the chosen weight of each feature space.
    feature_mean_, feature_scale_ : array of shape (n_features,)
        Training mean and standard deviation of the concatenated features
        (scale 1 without ``standardize_features``); ``coef_`` applies to
        ``(X - feature_mean_) / feature_scale_``.
    feature_names_ : list of str
        Names of the feature spaces, in column order.
    feature_slices_ : list of slice
        Columns of each space in the concatenated features.
    valid_units_ : bool array of shape (n_units,)
        Units that were fit; the others had NaN or constant training responses.
    excluded_units_ : pandas.DataFrame
        ``unit`` (index) and ``reason`` ("non-finite" or "constant") of every excluded unit.
    n_train_ : int
        Number of training samples (stimuli, or trials without averaging).
    subject_, space_ : str
        Subject and space of the training responses.
    fingerprint_ : str
        Hash of the training data (see :func:`~neurodec.encoding.fit_or_load_encoding_model`).

    Notes
    -----
    Scores (:meth:`score`) are computed on the test split with repeats
    averaged. The noise ceiling NC comes from the responses' ``ncsnr`` unit
    column (NSD) or, failing that, is estimated from the test repeats
    (:func:`~neurodec.encoding.estimate_ncsnr`), with NSD's formula for the
    test stimuli's repeat counts. Normalized scores are ``R^2 / NC`` and
    ``r / sqrt(NC)`` (the highest r a perfect model can reach is ``sqrt(NC)``).

    Examples
    --------
    >>> responses = neurodec.data.load_nsd(root, 1, roi="nsdgeneral")  # doctest: +SKIP
    >>> layers = neurodec.backbones.extract_features(net, stimuli, layers=["layer3"])  # doctest: +SKIP
    >>> model = EncodingModel(alphas=np.logspace(0, 6, 7)).fit(layers["layer3"], responses)  # doctest: +SKIP
    >>> scores = model.score(layers["layer3"], responses, n_permutations=1000)  # doctest: +SKIP
    >>> summarize_rois(scores, "prf-visualrois")  # doctest: +SKIP
    >>> model.save("fits/layer3.npz")  # reuse later with load_encoding_model  # doctest: +SKIP
    """

    _parameter_constraints: dict = {
        "alphas": ["array-like", None],
        "cv": ["cv_object"],
        "device": "no_validation",  # resolved (and checked) by neurodec._device.resolve_device
        "banded": ["boolean"],
        "n_iter": [Interval(Integral, 1, None, closed="left")],
        "average_repeats": ["boolean"],
        "n_targets_batch": [Interval(Integral, 1, None, closed="left"), None],
        "standardize_features": ["boolean"],
        "random_state": ["random_state"],
        "warn_alpha_edge": ["boolean"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        alphas: Sequence[float] | None = None,
        cv: Any = 5,
        device: Any = "auto",
        banded: bool = False,
        n_iter: int = 20,
        average_repeats: bool = True,
        n_targets_batch: int | None = None,
        standardize_features: bool = True,
        random_state: int | None = None,
        warn_alpha_edge: bool = True,
        verbose: bool | int = False,
    ) -> None:
        self.alphas = alphas
        self.cv = cv
        self.device = device
        self.banded = banded
        self.n_iter = n_iter
        self.average_repeats = average_repeats
        self.n_targets_batch = n_targets_batch
        self.standardize_features = standardize_features
        self.random_state = random_state
        self.warn_alpha_edge = warn_alpha_edge
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def _splits(self, n_samples: int, groups: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        from sklearn.model_selection import GroupKFold, KFold

        n_groups = len(np.unique(groups))
        if isinstance(self.cv, (int, np.integer)):
            n_splits = int(self.cv)
            if n_splits < 2:
                raise ValueError(f"The 'cv' parameter must be >= 2 folds. Got {self.cv}.")
            grouped = n_groups < n_samples
            splitter = (GroupKFold if grouped else KFold)(n_splits, shuffle=True, random_state=self.random_state)
        else:
            splitter = self.cv
            n_splits = splitter.get_n_splits(np.empty((n_samples, 1)), groups=groups)
        if n_groups < max(2 * n_splits, 3):
            raise ValueError(
                f"EncodingModel.fit has {n_groups} training stimuli; {n_splits}-fold cross-validation needs at "
                f"least {max(2 * n_splits, 3)} (2 per fold). Use more training stimuli or a smaller 'cv'."
            )
        if isinstance(splitter, KFold):
            return list(splitter.split(np.empty((n_samples, 1))))
        return list(splitter.split(np.empty((n_samples, 1)), groups=groups))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, features: Features | Sequence[Features], responses: Responses) -> "EncodingModel":
        """Fit on the training split of ``responses``.

        Parameters
        ----------
        features : Features, list of Features, or mapping name -> Features
            Feature spaces with a row for every training stimulus (matched on
            stimulus id; missing ids raise an error that names them). A
            mapping (e.g. the output of ``neurodec.backbones.extract_features``)
            contributes its values in order.
        responses : Responses
            Of shape (n_trials, n_units), with "train" trials in ``trials["split"]``.
            The data may be memory-mapped or HDF5-backed: they are read (and
            repeat-averaged) one block of units at a time, never copied whole.

        Returns
        -------
        self : EncodingModel
        """
        spaces = as_spaces(features)
        check_responses(responses, "EncodingModel.fit")
        # Responses are read (and repeat-averaged) block by block, in their dtype (float32 for NSD):
        # whole-cortex data are GBs, and the ridge solver streams its target batches from the reader.
        Y = SplitReader(responses, "train", average=self.average_repeats)
        ids = Y.stimulus_ids
        X = design_matrix(spaces, ids)
        valid, self.excluded_units_ = valid_units(Y)
        splits = self._splits(Y.shape[0], pd.factorize(pd.Series(ids).astype(str))[0])
        mean = X.mean(axis=0)
        scale = X.std(axis=0) if self.standardize_features else np.ones(X.shape[1])
        scale[scale == 0] = 1.0
        Xs = (X - mean) / scale
        edges = np.cumsum([0] + [f.n_features for f in spaces])
        slices = [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
        alphas = check_alphas(self.alphas)
        ridge = self._ridge(alphas, splits, slices).fit(Xs, Y if valid.all() else Y.subset(valid))

        n_units = Y.shape[1]
        # float32 weights: (n_features, n_units) reaches 10^9 values for whole-brain fits.
        self.coef_ = expand_units(ridge.coef_, valid, n_units, axis=1, dtype=np.float32)
        self.intercept_ = expand_units(ridge.intercept_, valid, n_units)
        self.best_alphas_ = expand_units(ridge.best_alphas_, valid, n_units)
        self.cv_scores_ = expand_units(ridge.cv_scores_, valid, n_units, axis=1)
        if self.banded and len(spaces) > 1:
            self.best_gammas_ = expand_units(ridge.best_gammas_, valid, n_units, axis=1)
        self.feature_mean_, self.feature_scale_ = mean, scale
        self.feature_names_ = [f.name for f in spaces]
        self.feature_slices_ = slices
        self.valid_units_ = valid
        self.n_train_ = Y.shape[0]
        self.subject_, self.space_ = responses.subject, responses.space
        self.fingerprint_ = training_fingerprint(spaces, Y)
        if self.warn_alpha_edge:
            warn_alpha_edge(self.best_alphas_, self.cv_scores_, alphas, estimator="EncodingModel.fit", stacklevel=4)
        logger.info("Fit %s on %d training samples, %d of %d units.", self.name_, Y.shape[0], valid.sum(), n_units)
        return self

    def _ridge(self, alphas: np.ndarray, splits: list, slices: list[slice]):
        if self.banded and len(slices) > 1:
            from ..ridge.banded import BandedRidgeCV

            return BandedRidgeCV(
                groups=slices, alphas=alphas, n_iter=self.n_iter, cv=splits, random_state=self.random_state,
                device=self.device, n_targets_batch=self.n_targets_batch, warn_alpha_edge=False, verbose=self.verbose,
            )
        from ..ridge import RidgeCV

        return RidgeCV(
            alphas=alphas, cv=splits, device=self.device, n_targets_batch=self.n_targets_batch,
            warn_alpha_edge=False, verbose=self.verbose,
        )

    # -------------------------------------------------------------- predict
    @property
    def name_(self) -> str:
        """The model's name: its feature spaces' names joined by "+"."""
        return "+".join(self.feature_names_)

    def _check_fitted(self) -> None:
        if not all(hasattr(self, a) for a in _FITTED):
            raise ValueError("This EncodingModel is not fitted yet; call fit(features, responses) first.")

    def _standardized(self, features: Features | Sequence[Features], stimulus_ids: Any) -> np.ndarray:
        self._check_fitted()
        spaces = as_spaces(features)
        got = [(f.name, f.n_features) for f in spaces]
        expected = [(n, s.stop - s.start) for n, s in zip(self.feature_names_, self.feature_slices_)]
        if got != expected:
            raise ValueError(f"The model was fit on feature spaces (name, n_features) {expected}; got {got}.")
        ids = spaces[0].stimulus_ids if stimulus_ids is None else np.asarray(stimulus_ids)
        return (design_matrix(spaces, ids) - self.feature_mean_) / self.feature_scale_

    def predict(
        self, features: Features | Sequence[Features], *, stimulus_ids: Any = None, split: bool = False
    ) -> np.ndarray:
        """Predicted responses of every unit.

        Parameters
        ----------
        features : Features or list of Features
            The spaces the model was fit on (same names and widths).
        stimulus_ids : sequence, optional
            Stimuli to predict, in this order; default: every row of the
            (first) feature space, in its order.
        split : bool
            Return one prediction per feature space (band ``b``:
            ``X_b @ coef_b + intercept / n_spaces``); they sum to the joint prediction.

        Returns
        -------
        array of shape (n_stimuli, n_units), or (n_spaces, n_stimuli, n_units) if split
            NaN in the columns of excluded units.
        """
        X = self._standardized(features, stimulus_ids)
        if not split:
            return self._linear(X, self.coef_) + self.intercept_
        share = self.intercept_ / len(self.feature_slices_)
        return np.stack([self._linear(X[:, s], self.coef_[s]) + share for s in self.feature_slices_])

    def _linear(self, X: np.ndarray, W: np.ndarray) -> np.ndarray:
        """``X @ W`` on the model's device, copied to the host once (float64)."""
        from .._device import resolve_device
        from ..ridge._batching import to_host
        from ._device_scoring import linear_predictions

        out = linear_predictions(X, W, device=resolve_device(self.device), n_targets_batch=self.n_targets_batch)
        return to_host(out).numpy().astype(np.float64)

    # ---------------------------------------------------------------- score
    def score(
        self,
        features: Features | Sequence[Features],
        responses: Responses,
        *,
        noise_ceiling: np.ndarray | None = None,
        n_permutations: int = 0,
        block_size: int | None = None,
        random_state: int | None = None,
        n_bootstraps: int = 1000,
        bootstrap_random_state: int = 0,
    ) -> EncodingScores:
        """Scores on the test split of ``responses``, repeats averaged.

        Parameters
        ----------
        features : Features or list of Features
        responses : Responses
            The responses the model was fit on (its "test" trials are scored).
        noise_ceiling : array of shape (n_units,), optional
            Noise ceiling of the repeat-averaged test data; default: from the
            ``ncsnr`` unit column, else estimated from the test repeats, else NaN.
        n_permutations : int
            When > 0, permutation p-values of r (shuffled test stimuli) and
            their Benjamini-Hochberg adjustment across units.
        block_size : int, optional
            Permute blocks of this many consecutive test samples (time series).
        random_state : int, optional
            Seed of the permutations.
        n_bootstraps : int
            When > 0, bootstrap resamples of the test stimuli (drawn with
            replacement among the repeat-averaged test stimuli) from which the
            ROI means of r, R^2 and the normalized scores are recomputed, for
            every ``roi:<atlas>`` unit column and for all units
            (``scores.bootstrap``). Memory: ROI groups x resamples.
        bootstrap_random_state : int
            Seed of the resamples. Fixed by default so that models scored on
            the same test set share their resamples and their differences are
            paired.

        Returns
        -------
        EncodingScores
            Scores of excluded units, and of units whose test responses are not
            finite, are NaN (``scores.status`` says why). ``scores.fit_info``
            records what was fit (alpha grid, CV, sizes, feature provenance,
            noise ceiling) and ``scores.best_alphas`` the chosen penalties.
        """
        from ._model_scoring import score_model

        return score_model(
            self, features, responses, noise_ceiling=noise_ceiling, n_permutations=n_permutations,
            block_size=block_size, random_state=random_state, n_bootstraps=n_bootstraps,
            bootstrap_random_state=bootstrap_random_state,
        )

    # --------------------------------------------------------- weights, disk
    def raw_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Weights and bias on the unstandardized features: ``Y = X @ weights + bias``.

        Returns
        -------
        weights : array of shape (n_features, n_units)
        bias : array of shape (n_units,)
        """
        self._check_fitted()
        weights = self.coef_ / self.feature_scale_[:, None]
        return weights, self.intercept_ - self.feature_mean_ @ weights

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model to an ``.npz`` file atomically (read it with :func:`load_encoding_model`)."""
        from .storage import save_encoding_model

        return save_encoding_model(self, path)

