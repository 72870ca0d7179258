"""Which of a fitted encoding model's units an encoder predicts: all, a mask, indices or ROIs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["select_units"]


def _roi_units(units: Mapping[str, Any], responses: Any, n_units: int) -> np.ndarray:
    from ..data.responses import Responses

    if not isinstance(responses, Responses):
        raise ValueError(
            "ROI units (a mapping atlas -> labels) need responses=, the Responses the model was fit on, "
            f"whose 'roi:<atlas>' unit columns name the ROIs. Got responses={type(responses).__name__}."
        )
    if responses.n_units != n_units:
        raise ValueError(
            f"The 'responses' have {responses.n_units} units but the model predicts {n_units}; pass the "
            "Responses the model was fit on."
        )
    mask = np.zeros(n_units, dtype=bool)
    for atlas, labels in units.items():
        atlas = str(atlas).removeprefix("roi:")
        picked = responses.roi_mask(atlas, labels)  # raises for unknown atlases and labels, listing them
        if not picked.any():
            values = responses.units[f"roi:{atlas}"].astype("string").fillna("")
            present = sorted(v for v in values.unique() if v and v != "Unknown")
            raise ValueError(
                f"ROI {labels!r} of atlas {atlas!r} has no voxels in these responses. "
                f"Labels with voxels: {present}."
            )
        mask |= picked
    return np.flatnonzero(mask)


def select_units(units: Any, model: Any, responses: Any = None) -> np.ndarray:
    """Indices of the units an encoder predicts, checked against the model's fitted weights.

    Parameters
    ----------
    units : None, bool array of shape (n_units,), int array of shape (n_selected,) or mapping
        None selects every fitted unit (``model.valid_units_``); a mapping
        ``{atlas: label or list of labels}`` (atlas with or without the
        ``roi:`` prefix) selects the union of those ROIs of ``responses``.
    model : EncodingModel
        Fitted.
    responses : Responses, optional
        The responses the model was fit on (needed for ROI units).

    Returns
    -------
    int array of shape (n_selected,)

    Raises
    ------
    ValueError
        For an empty selection, an ROI without voxels, indices out of range or
        repeated, or units without fitted weights (naming how many and which).
    """
    n_units = int(model.coef_.shape[1])
    if units is None:
        index = np.flatnonzero(model.valid_units_)
    elif isinstance(units, Mapping):
        index = _roi_units(units, responses, n_units)
    else:
        array = np.asarray(units)
        if array.dtype == bool:
            if array.shape != (n_units,):
                raise ValueError(f"A boolean 'units' mask must have shape ({n_units},). Got {array.shape}.")
            index = np.flatnonzero(array)
        elif array.ndim == 1 and np.issubdtype(array.dtype, np.integer):
            if array.size and (array.min() < 0 or array.max() >= n_units):
                raise ValueError(f"'units' indices must be in [0, {n_units}). Got min {array.min()}, max {array.max()}.")
            if len(np.unique(array)) != array.size:
                raise ValueError("'units' indices must not repeat.")
            index = array.astype(np.int64)
        else:
            raise ValueError(
                "The 'units' parameter must be None, a boolean mask of shape (n_units,), 1-D integer indices, or "
                f"a mapping atlas -> ROI label(s). Got {type(units).__name__} of shape {np.shape(units)}."
            )
    if index.size == 0:
        raise ValueError("The 'units' selection is empty; select at least one unit.")
    unfit = ~np.asarray(model.valid_units_)[index] | ~np.isfinite(model.coef_[:, index]).all(axis=0)
    if unfit.any():
        bad = index[unfit]
        raise ValueError(
            f"{bad.size} of the {index.size} selected units have no fitted weights (excluded at fit for NaN or "
            f"constant training responses; see the model's excluded_units_): units {bad[:20].tolist()}"
            f"{' ...' if bad.size > 20 else ''}. Leave them out, e.g. units=None selects every fitted unit."
        )
    return index
