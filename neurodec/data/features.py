"""The one container for stimulus features (a backbone layer, a text embedding, ...)."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

__all__ = ["Features"]


@dataclasses.dataclass
class Features:
    """Features of a set of stimuli.

    Parameters
    ----------
    data : array of shape (n_stimuli, n_features)
        One row per stimulus (may be an HDF5-backed or memory-mapped array).
    stimulus_ids : sequence of hashable, length n_stimuli
        The id of each row, matching :class:`~neurodec.data.Stimuli` ids and
        ``Responses.trials["stimulus_id"]``.
    name : str
        A short name, e.g. "resnet50/layer3".
    meta : dict
        Provenance: backbone, weights, layer, pooling, reduction, stimulus hash.
    """

    data: np.ndarray
    stimulus_ids: np.ndarray
    name: str = "features"
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stimulus_ids = np.asarray(self.stimulus_ids)
        if self.data.ndim != 2:
            raise ValueError(
                f"Features {self.name!r}: 'data' must have shape (n_stimuli, n_features). Got {self.data.shape}."
            )
        if self.stimulus_ids.shape != (self.data.shape[0],):
            raise ValueError(
                f"Features {self.name!r}: {len(self.stimulus_ids)} stimulus ids for {self.data.shape[0]} rows."
            )
        if len(np.unique(self.stimulus_ids)) != len(self.stimulus_ids):
            raise ValueError(f"Features {self.name!r}: stimulus ids must be unique.")

    @property
    def n_stimuli(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.data.shape[1])

    def __repr__(self) -> str:
        return f"<Features {self.name!r}: {self.n_stimuli} stimuli x {self.n_features} features>"

    def rows_for(self, stimulus_ids: Sequence[Hashable] | np.ndarray) -> np.ndarray:
        """Row indices of ``stimulus_ids`` (repeats allowed), in their order.

        Raises
        ------
        ValueError
            Naming (up to 10 of) the ids these features do not have.
        """
        position = {sid: row for row, sid in enumerate(self.stimulus_ids.tolist())}
        wanted = np.asarray(stimulus_ids).tolist()
        missing = [sid for sid in dict.fromkeys(wanted) if sid not in position]
        if missing:
            raise ValueError(
                f"Features {self.name!r} have no rows for {len(missing)} stimulus id(s), "
                f"e.g. {missing[:10]}; extract features for every stimulus the responses use."
            )
        return np.fromiter((position[sid] for sid in wanted), dtype=np.int64, count=len(wanted))

    def align(self, stimulus_ids: Sequence[Hashable] | np.ndarray) -> np.ndarray:
        """Feature rows of ``stimulus_ids`` as an array of shape (len(stimulus_ids), n_features)."""
        rows = self.rows_for(stimulus_ids)
        # h5py needs increasing indices; read the unique sorted rows then reorder.
        unique, inverse = np.unique(rows, return_inverse=True)
        return np.asarray(self.data[unique])[inverse]
