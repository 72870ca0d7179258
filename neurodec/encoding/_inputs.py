"""Input handling shared by the encoding estimators: feature spaces, design matrices, unit bookkeeping."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..data.features import Features
from ..data.responses import Responses
from ._split_reader import SplitReader

#: Units per block wherever responses are read or scored column by column (bounds the temporaries).
UNITS_BLOCK = 8192


def as_spaces(features: Features | Sequence[Features] | Mapping[str, Features]) -> list[Features]:
    if isinstance(features, Features):
        spaces = [features]
    else:
        spaces = list(features.values()) if isinstance(features, Mapping) else list(features)
    if not spaces or not all(isinstance(f, Features) for f in spaces):
        raise TypeError(f"'features' must be a Features or a non-empty list of Features. Got {type(features).__name__}.")
    names = [f.name for f in spaces]
    if len(set(names)) != len(names):
        raise ValueError(f"The feature spaces must have distinct names. Got {names}.")
    return spaces


def design_matrix(spaces: list[Features], stimulus_ids: np.ndarray) -> np.ndarray:
    return np.hstack([np.asarray(f.align(stimulus_ids), dtype=np.float64) for f in spaces])


def check_responses(responses: Responses, where: str) -> None:
    if not isinstance(responses, Responses):
        raise TypeError(f"{where}: 'responses' must be a Responses. Got {type(responses).__name__}.")
    if responses.data.ndim != 2:
        raise ValueError(
            f"{where} needs responses of shape (n_trials, n_units); these have shape {responses.shape}. "
            "Average over time, or fit time-resolved data with neurodec.ridge.Delayer features."
        )


def expand_units(
    values: np.ndarray, valid: np.ndarray, n_units: int, *, axis: int = 0, dtype: Any = np.float64
) -> np.ndarray:
    """Put the values of the fitted (valid) units back among all units, NaN for the others."""
    values = np.asarray(values)
    if valid.all():
        # No copy: whole-brain weights are GBs and the usual fit keeps every unit.
        return values.astype(dtype, copy=False)
    shape = list(values.shape)
    shape[axis] = n_units
    out = np.full(shape, np.nan, dtype=dtype)
    index = [slice(None)] * len(shape)
    index[axis] = valid
    out[tuple(index)] = values
    return out


#: Number of response values sampled into a training fingerprint.
_FINGERPRINT_VALUES = 65536


def training_fingerprint(spaces: list[Features], train: SplitReader) -> str:
    """A hash that changes when the training data of a fit change.

    Covers the feature spaces (names, widths, the rows used, a sample of
    values), the training stimulus ids and a strided sample of the responses
    (read block by block), so a saved fit is reused only for the data it was
    fit on, without reading everything twice.
    """
    digest = hashlib.sha1()
    ids = train.stimulus_ids
    responses = train.responses
    digest.update(repr((responses.subject, responses.space, train.shape, ids.tolist())).encode())
    digest.update(train.strided_sample(_FINGERPRINT_VALUES, block=UNITS_BLOCK).tobytes())
    for space in spaces:
        digest.update(repr((space.name, space.n_features)).encode())
        rows = design_matrix([space], ids[:: max(1, len(ids) // 64)])
        digest.update(np.ascontiguousarray(rows, dtype=np.float64).tobytes())
    return digest.hexdigest()


def valid_units(Y: SplitReader) -> tuple[np.ndarray, pd.DataFrame]:
    """Units with finite, non-constant training responses, and why the others are excluded.

    Parameters
    ----------
    Y : SplitReader of shape (n_samples, n_units)

    Returns
    -------
    valid : bool array of shape (n_units,)
    excluded : pandas.DataFrame
        ``unit`` and ``reason`` ("non-finite" or "constant") of every excluded unit.
    """
    finite = np.zeros(Y.shape[1], dtype=bool)
    constant = np.zeros(Y.shape[1], dtype=bool)
    # Column blocks keep the temporaries small for whole-brain data (10^5 units).
    for cols in Y.column_blocks(UNITS_BLOCK):
        block = Y[:, cols]
        ok = np.isfinite(block).all(axis=0)
        finite[cols] = ok
        constant[cols] = ok & (block.max(axis=0) == block.min(axis=0))
    valid = finite & ~constant
    reasons = np.where(~finite, "non-finite", np.where(constant, "constant", ""))
    bad = np.flatnonzero(~valid)
    if bad.size:
        warnings.warn(
            f"EncodingModel.fit excludes {bad.size} of {Y.shape[1]} units: {int((~finite).sum())} with NaN/inf "
            f"and {int(constant.sum())} with constant training responses (e.g. units {bad[:10].tolist()}). "
            "Their predictions and scores are NaN; see the model's 'excluded_units_'.",
            UserWarning,
            stacklevel=3,
        )
    if not valid.any():
        raise ValueError("EncodingModel.fit: every unit has NaN or constant training responses; nothing to fit.")
    return valid, pd.DataFrame({"unit": bad, "reason": reasons[bad]})
