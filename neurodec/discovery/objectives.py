"""Objectives over predicted responses: what a discovery method maximizes.

Each objective is a callable mapping predicted responses, tensor of shape
(n_images, n_units) (a :class:`~neurodec.discovery.BrainEncoder`'s output),
to one score per image, tensor of shape (n_images,), differentiably. All four
kinds are weighted sums over a few unit columns:

- :func:`roi_mean`: the mean response of a set of units (an ROI);
- :func:`roi_contrast`: mean of units A minus mean of units B (e.g. faces
  versus places, BrainDiVE's contrastive objective);
- :func:`one_unit`: a single voxel's response;
- :func:`weighted_units`: any weight vector over the units.

Units are column indices of the encoder's output (or a boolean mask over
them); they are checked against the responses' width when the objective is
called, or at construction when ``n_units`` is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["UnitObjective", "one_unit", "roi_contrast", "roi_mean", "weighted_units"]


def _indices(units: Any, name: str, n_units: int | None) -> np.ndarray:
    array = np.asarray(units)
    if array.size == 0:
        raise ValueError(f"'{name}' selects no units.")
    if array.dtype == bool:
        if array.ndim != 1 or (n_units is not None and array.shape != (n_units,)):
            raise ValueError(f"A boolean mask '{name}' must have shape (n_units,) = ({n_units},). Got {array.shape}.")
        array = np.flatnonzero(array)
    elif array.ndim == 0 and np.issubdtype(array.dtype, np.integer):
        array = array.reshape(1)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"'{name}' must be integer unit indices or a boolean mask over units. Got {type(units).__name__} "
            f"of dtype {array.dtype} and shape {array.shape}."
        )
    if array.size == 0:  # an all-False mask
        raise ValueError(f"'{name}' selects no units.")
    if array.min() < 0:
        raise ValueError(f"'{name}' has negative unit indices ({array.min()}); indices start at 0.")
    if len(np.unique(array)) != array.size:
        raise ValueError(f"'{name}' repeats unit indices.")
    return array.astype(np.int64)


class UnitObjective:
    """A weighted sum of unit responses: ``score = responses[:, units] @ weights``.

    Built by :func:`roi_mean`, :func:`roi_contrast`, :func:`one_unit` and
    :func:`weighted_units`.

    Parameters
    ----------
    units : int array of shape (n_terms,)
        Columns of the responses.
    weights : float array of shape (n_terms,)
    description : str
        Shown by ``repr``.
    n_units : int, optional
        Expected number of response columns (checked on every call if given).
    """

    def __init__(self, units: np.ndarray, weights: np.ndarray, description: str, n_units: int | None = None) -> None:
        self.units = np.asarray(units, dtype=np.int64)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.description = description
        self.n_units = n_units
        if n_units is not None and self.units.max() >= n_units:
            raise ValueError(
                f"{description}: unit index {self.units.max()} is out of range for {n_units} units."
            )

    def __call__(self, responses: "torch.Tensor") -> "torch.Tensor":
        """Score each image: tensor of shape (n_images, n_units) -> tensor of shape (n_images,)."""
        import torch

        if not isinstance(responses, torch.Tensor) or responses.ndim != 2:
            raise ValueError(
                f"{self.description} takes predicted responses, a tensor of shape (n_images, n_units). "
                f"Got {type(responses).__name__} of shape {tuple(getattr(responses, 'shape', ()))}."
            )
        n_units = responses.shape[1]
        if self.n_units is not None and n_units != self.n_units:
            raise ValueError(f"{self.description} expects responses with {self.n_units} units; got {n_units}.")
        if self.units.max() >= n_units:
            raise ValueError(
                f"{self.description} uses unit {self.units.max()}, but the responses have only {n_units} units."
            )
        index = torch.as_tensor(self.units, device=responses.device)
        weights = torch.as_tensor(self.weights, dtype=responses.dtype, device=responses.device)
        return responses.index_select(1, index) @ weights

    def __repr__(self) -> str:
        return self.description


def _units_repr(units: np.ndarray) -> str:
    shown = ", ".join(str(u) for u in units[:6].tolist())
    return f"[{shown}{', ...' if units.size > 6 else ''}] ({units.size} units)"


def roi_mean(units: Sequence[int] | np.ndarray, *, n_units: int | None = None) -> UnitObjective:
    """Mean response of ``units`` (indices or a boolean mask), e.g. an ROI's voxels.

    Examples
    --------
    >>> roi_mean([0, 2, 3])
    roi_mean(units=[0, 2, 3] (3 units))
    """
    index = _indices(units, "units", n_units)
    return UnitObjective(index, np.full(index.size, 1.0 / index.size), f"roi_mean(units={_units_repr(index)})", n_units)


def roi_contrast(
    units_a: Sequence[int] | np.ndarray, units_b: Sequence[int] | np.ndarray, *, n_units: int | None = None
) -> UnitObjective:
    """Mean response of ``units_a`` minus mean response of ``units_b`` (disjoint sets).

    Examples
    --------
    >>> roi_contrast([0, 1], [2])
    roi_contrast(a=[0, 1] (2 units), b=[2] (1 units))
    """
    a, b = _indices(units_a, "units_a", n_units), _indices(units_b, "units_b", n_units)
    shared = np.intersect1d(a, b)
    if shared.size:
        raise ValueError(f"'units_a' and 'units_b' must be disjoint; they share units {shared[:10].tolist()}.")
    return UnitObjective(
        np.concatenate([a, b]), np.concatenate([np.full(a.size, 1.0 / a.size), np.full(b.size, -1.0 / b.size)]),
        f"roi_contrast(a={_units_repr(a)}, b={_units_repr(b)})", n_units,
    )


def one_unit(unit: int, *, n_units: int | None = None) -> UnitObjective:
    """The response of one unit (a voxel, a neuron).

    Examples
    --------
    >>> one_unit(7)
    one_unit(7)
    """
    if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)):
        raise ValueError(f"'unit' must be an integer unit index. Got {unit!r} ({type(unit).__name__}).")
    index = _indices([int(unit)], "unit", n_units)
    return UnitObjective(index, np.ones(1), f"one_unit({int(unit)})", n_units)


def weighted_units(weights: Sequence[float] | np.ndarray) -> UnitObjective:
    """``responses @ weights`` with one weight per unit (zeros are skipped).

    Parameters
    ----------
    weights : array of shape (n_units,)
        Finite; at least one nonzero. Its length must equal the responses' width.

    Examples
    --------
    >>> weighted_units([0.5, 0.0, -1.0])
    weighted_units(3 weights, 2 nonzero)
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"'weights' must be a 1-D array of shape (n_units,). Got shape {w.shape}.")
    if not np.isfinite(w).all():
        raise ValueError(f"'weights' must be finite; {int((~np.isfinite(w)).sum())} are NaN or inf.")
    nonzero = np.flatnonzero(w)
    if nonzero.size == 0:
        raise ValueError("'weights' are all zero; the objective would be constant.")
    return UnitObjective(nonzero, w[nonzero], f"weighted_units({w.size} weights, {nonzero.size} nonzero)", w.size)
