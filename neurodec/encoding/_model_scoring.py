""":meth:`EncodingModel.score`: the test split scored block by block of units, on the model's device.

Test responses are read (and repeat-averaged) one block of units at a time
on the host, where they live; everything computed from the model's
predictions (r, R^2, permutation counts, split R^2, bootstrap ROI sums) is
computed and accumulated on the model's device by
:class:`~neurodec.encoding._device_scoring.DeviceScorer` and copied back once.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.features import Features
from ..data.responses import Responses, noise_ceiling_from_ncsnr
from ..ridge._validation import check_alphas
from ._device_scoring import DeviceScorer
from ._inputs import UNITS_BLOCK, as_spaces, check_responses
from ._split_reader import SplitReader
from .bootstrap import ROIBootstrapAccumulator, bootstrap_counts, stimulus_order_key
from .noise_ceiling import noise_ceiling_tensor
from .scores import EncodingScores
from .stats import fdr_correction

if TYPE_CHECKING:
    from .model import EncodingModel

__all__ = ["score_model"]


def score_model(
    model: "EncodingModel",
    features: Features | Sequence[Features],
    responses: Responses,
    *,
    noise_ceiling: np.ndarray | None,
    n_permutations: int,
    block_size: int | None,
    random_state: Any,
    n_bootstraps: int,
    bootstrap_random_state: int,
) -> EncodingScores:
    """Scores of a fitted ``model`` on the test split; the parameters are :meth:`EncodingModel.score`'s."""
    from .._device import resolve_device

    check_responses(responses, "EncodingModel.score")
    model._check_fitted()
    n_units = len(model.valid_units_)
    if responses.n_units != n_units:
        raise ValueError(
            f"EncodingModel.score: the model was fit on {n_units} units; "
            f"these responses have {responses.n_units}."
        )
    if n_permutations < 0:
        raise ValueError(f"The 'n_permutations' parameter must be >= 0. Got {n_permutations}.")
    # Units are scored block by block: test responses, predictions and their float64 temporaries
    # never exist for every unit at once (whole-brain data).
    test = SplitReader(responses, "test", average=True)
    X = model._standardized(features, test.stimulus_ids)
    nc_source = ("given" if noise_ceiling is not None
                 else "ncsnr" if "ncsnr" in responses.units.columns else "estimated")
    nc = _given_or_from_ncsnr(noise_ceiling, responses, test)
    # One seed for every block: the same permutations as one call over all units.
    seed = random_state
    if not isinstance(random_state, (int, np.integer)):
        seed = int(np.random.default_rng(random_state).integers(2**32))
    slices = model.feature_slices_
    banded = model.banded and len(slices) > 1
    device = resolve_device(model.device)
    status = np.full(n_units, "scored", dtype=object)
    reasons = dict(zip(model.excluded_units_["unit"], model.excluded_units_["reason"]))
    for unit, reason in reasons.items():
        status[unit] = f"excluded: {reason} training responses"
    boot = None
    if n_bootstraps > 0:
        boot = ROIBootstrapAccumulator(
            responses.units, bootstrap_counts(test.shape[0], n_bootstraps, bootstrap_random_state),
            random_state=bootstrap_random_state, test_key=stimulus_order_key(test.stimulus_ids), device=device,
        )
    scorer = DeviceScorer(
        X, model.coef_, model.intercept_, device=device, slices=slices if banded else None,
        n_permutations=n_permutations, block_size=block_size, seed=seed, noise_ceiling=nc, bootstrap=boot,
    )
    n_not_finite = 0
    for cols in test.column_blocks(model.n_targets_batch or UNITS_BLOCK):
        Y = np.asarray(test[:, cols], dtype=np.float64)
        scored = model.valid_units_[cols] & np.isfinite(Y).all(axis=0)
        status[cols.start + np.flatnonzero(model.valid_units_[cols] & ~scored)] = "non-finite test responses"
        n_not_finite += int((model.valid_units_[cols] & ~scored).sum())
        if nc is None:
            scorer.set_noise_ceiling(cols, noise_ceiling_tensor(test.block_responses(cols), device=device))
        units = np.flatnonzero(scored) + cols.start
        if units.size:
            scorer.add(units, Y[:, scored])
    result = scorer.finish()
    r, r2, p_values, nc = result["r"], result["r2"], result["p_values"], result["noise_ceiling"]
    scored_units = status == "scored"
    status[scored_units & ~np.isfinite(r)] = "constant test responses or prediction"
    if n_not_finite:
        warnings.warn(
            f"EncodingModel.score: {n_not_finite} units have NaN/inf test responses; their scores are NaN.",
            UserWarning,
            stacklevel=3,
        )
    scores = EncodingScores(
        r=r, r2=r2, noise_ceiling=nc, units=responses.units, name=model.name_, subject=responses.subject,
        space=responses.space, modality=responses.modality, info=responses.info, n_test=test.shape[0],
        bootstrap=None if boot is None else boot.result(), status=status, best_alphas=model.best_alphas_,
        fit_info=fit_info(model, features, responses, test, nc_source),
    )
    if p_values is not None:
        scores.p_values, scores.q_values = p_values, fdr_correction(p_values)[1]
    if banded:
        scores.split_r2, scores.space_names = result["split_r2"], list(model.feature_names_)
    return scores


def fit_info(
    model: "EncodingModel", features: Any, responses: Responses, test: SplitReader, nc_source: str
) -> dict[str, Any]:
    """What ``model`` was fit on, for a report's Methods section (small, JSON-serializable)."""
    alphas = check_alphas(model.alphas)
    split = responses.trials["split"]
    train_ids = set(responses.trials.loc[split == "train", "stimulus_id"].astype(str))
    info = {k: v for k, v in responses.info.items() if k not in ("files", "affine") and _plain(v)}
    return {
        "model": "banded ridge" if model.banded and len(model.feature_slices_) > 1 else "ridge",
        "alphas": [float(a) for a in alphas],
        "cv": int(model.cv) if isinstance(model.cv, (int, np.integer)) else repr(model.cv),
        "cv_grouped": not model.average_repeats,
        "random_state": model.random_state,
        "average_repeats": bool(model.average_repeats),
        "standardize_features": bool(model.standardize_features),
        "n_train": int(model.n_train_),
        "n_train_trials": int((split == "train").sum()),
        "n_test": int(test.shape[0]),
        "n_test_trials": int((split == "test").sum()),
        "n_shared_stimuli": int(sum(str(i) in train_ids for i in test.stimulus_ids)),
        "test_repeats": {int(k): int(v) for k, v in test.trials["n_repeats"].value_counts().sort_index().items()}
        if "n_repeats" in test.trials.columns else {},
        "features": [
            {"name": f.name, "n_features": int(f.n_features),
             **{k: v for k, v in f.meta.items() if k != "reducer" and _plain(v)}}
            for f in as_spaces(features)
        ],
        "noise_ceiling": nc_source,
        "data": {"modality": responses.modality, "n_units": int(responses.n_units), **info},
    }


def _plain(value: Any) -> bool:
    """Whether ``value`` is a small JSON-friendly scalar (worth a line in a Methods section)."""
    return isinstance(value, (str, int, float, bool, np.integer, np.floating)) or value is None


def _given_or_from_ncsnr(
    noise_ceiling: np.ndarray | None, responses: Responses, test: SplitReader
) -> np.ndarray | None:
    """The given noise ceiling, or the one of the ``ncsnr`` unit column; None when it must be estimated."""
    if noise_ceiling is None:
        if "ncsnr" not in responses.units.columns:
            return None
        return noise_ceiling_from_ncsnr(responses.units["ncsnr"].to_numpy(), test.trials["n_repeats"].to_numpy())
    noise_ceiling = np.asarray(noise_ceiling, dtype=np.float64)
    if noise_ceiling.shape != (responses.n_units,):
        raise ValueError(f"'noise_ceiling' must have shape ({responses.n_units},). Got {noise_ceiling.shape}.")
    return noise_ceiling
