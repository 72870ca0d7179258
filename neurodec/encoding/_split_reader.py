"""Column-block access to one split of a :class:`~neurodec.data.Responses`, repeats averaged on the fly.

``Responses.split`` copies every unit of the split into memory (and averaging
copies again); for whole-brain data (10^5 units) that is gigabytes before the
first ridge batch. A :class:`SplitReader` keeps only the split's row indices
and the sparse averaging matrix, and reads ``Y[:, a:b]`` from wherever the
responses live (array, memmap, HDF5), so the encoding model and the ridge
solvers see a 2-D array of shape (n_rows, n_units) yet hold one block at a time.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..data.responses import Responses


class SplitReader:
    """Trials of split ``split`` of ``responses``, optionally averaged over repeats, read by column blocks.

    The rows equal those of ``responses.split(split)`` (then
    :meth:`Responses.average_repeats` when ``average`` and the split is not
    already one row per stimulus), bit for bit.

    Parameters
    ----------
    responses : Responses
        Of shape (n_trials, n_units).
    split : str
        Value of ``responses.trials["split"]``.
    average : bool
        Average the trials of each stimulus.
    units : array of int, optional
        Unit (column) indices to expose, increasing; default every unit.

    Attributes
    ----------
    shape : tuple of int
        (n_rows, n_units) as exposed.
    dtype : numpy.dtype
    trials : pandas.DataFrame
        Metadata of the exposed rows (with ``n_repeats`` when averaged).
    """

    def __init__(self, responses: Responses, split: str, *, average: bool, units: np.ndarray | None = None) -> None:
        mask = (responses.trials["split"] == split).to_numpy()
        if not mask.any():
            present = sorted(responses.trials["split"].unique())
            raise ValueError(f"No trial belongs to split {split!r}; splits present: {present}.")
        self.responses = responses
        self.split = split
        self.average = average
        self.rows = np.flatnonzero(mask)
        self.single_trials = responses.trials.iloc[self.rows].reset_index(drop=True)
        self.units = np.arange(responses.n_units) if units is None else np.asarray(units, dtype=np.int64)
        ids = self.single_trials["stimulus_id"]
        already = "n_repeats" in self.single_trials.columns and ids.is_unique
        self.weights = None
        self.trials = self.single_trials
        self.dtype = np.dtype(responses.data.dtype)
        if average and not already:
            import scipy.sparse

            # The grouping of Responses.average_repeats, restricted to one split.
            codes = self.single_trials.groupby("stimulus_id", sort=False, dropna=False).ngroup().to_numpy()
            counts = np.bincount(codes)
            self.dtype = np.result_type(self.dtype, np.float32)
            self.weights = scipy.sparse.csr_matrix(
                ((1.0 / counts[codes]).astype(self.dtype), (codes, np.arange(len(codes)))),
                shape=(len(counts), len(codes)),
            )
            first = np.unique(codes, return_index=True)[1]
            self.trials = self.single_trials.iloc[first].reset_index(drop=True).copy()
            self.trials["n_repeats"] = counts
        self.shape = (len(self.trials), len(self.units))

    @property
    def stimulus_ids(self) -> np.ndarray:
        """Stimulus id of every exposed row, array of shape (n_rows,)."""
        return self.trials["stimulus_id"].to_numpy()

    def subset(self, units: np.ndarray) -> SplitReader:
        """The same rows restricted to exposed columns ``units`` (boolean mask or indices)."""
        units = np.asarray(units)
        index = np.flatnonzero(units) if units.dtype == bool else units
        return SplitReader(self.responses, self.split, average=self.average, units=self.units[index])

    def _single(self, cols: slice) -> np.ndarray:
        """Single trials of the split for exposed columns ``cols``, shape (n_split_trials, n_cols)."""
        units = self.units[cols]
        if units.size == 0:
            return np.empty((len(self.rows), 0), dtype=self.responses.data.dtype)
        lo, hi = int(units[0]), int(units[-1]) + 1
        # One contiguous column range per read (memmap/HDF5 friendly), then the split's rows.
        block = np.asarray(self.responses.data[:, lo:hi])
        if hi - lo != units.size:
            block = block[:, units - lo]
        return block[self.rows]

    def __getitem__(self, key: Any) -> np.ndarray:
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] == slice(None) and isinstance(key[1], slice)):
            raise IndexError(f"A SplitReader is read as Y[:, start:stop]; got the index {key!r}.")
        block = self._single(key[1])
        if self.weights is None:
            return block
        return np.asarray(self.weights @ np.asarray(block, dtype=self.dtype), dtype=self.dtype)

    def block_responses(self, cols: slice) -> Responses:
        """A Responses of the split's single trials and the exposed units ``cols`` (for noise ceilings)."""
        return dataclasses.replace(
            self.responses, data=self._single(cols), trials=self.single_trials,
            units=self.responses.units.iloc[self.units[cols]],
        )

    def column_blocks(self, size: int):
        """Consecutive column slices of at most ``size`` exposed units."""
        n = self.shape[1]
        return [slice(a, min(a + size, n)) for a in range(0, n, max(1, int(size)))]

    def strided_sample(self, n_values: int, *, block: int) -> np.ndarray:
        """``data.reshape(-1)[::step]`` (float64) of the exposed array, ``step = max(1, size // n_values)``."""
        n_rows, n_cols = self.shape
        step = max(1, n_rows * n_cols // n_values)
        flat = np.arange(0, n_rows * n_cols, step)
        rows, cols = np.divmod(flat, n_cols)
        out = np.empty(flat.size, dtype=np.float64)
        for cut in self.column_blocks(block):
            pick = (cols >= cut.start) & (cols < cut.stop)
            if pick.any():
                out[pick] = self[:, cut][rows[pick], cols[pick] - cut.start]
        return out
