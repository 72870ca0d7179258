"""The one container for brain responses of every modality (fMRI, MEG, iEEG).

A :class:`Responses` holds an array of shape (n_trials, n_units) or
(n_trials, n_units, n_times) with one row of trial metadata per trial and one
row of unit metadata per unit (voxel, vertex, sensor or electrode).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = ["Responses", "noise_ceiling_from_ncsnr"]

#: Trial metadata columns every loader fills (others are allowed).
TRIAL_COLUMNS = ("stimulus_id", "session", "run", "repeat", "split")

Modality = Literal["fmri", "meg", "ieeg", "eeg"]


def noise_ceiling_from_ncsnr(ncsnr: np.ndarray, n: float | Sequence[int] = 1) -> np.ndarray:
    """Noise ceiling (fraction of variance, 0..1) from NSD's noise-ceiling SNR.

    Parameters
    ----------
    ncsnr : array of shape (n_units,)
        Noise-ceiling signal-to-noise ratio per unit. A torch tensor stays a
        tensor on its device (noise ceilings computed where the data are).
    n : float or sequence of int
        Number of trials averaged per stimulus. A number gives
        ``NC = ncsnr**2 / (ncsnr**2 + 1/n)`` (Allen et al. 2022). A sequence gives
        the repeat count of every test stimulus; the ``1/n`` term is then the
        mean of ``1/n_i`` over stimuli (the Algonauts convention
        ``(r3/3 + r2/2 + r1) / (r1 + r2 + r3)``).

    Returns
    -------
    array of shape (n_units,)
        Noise ceiling as a fraction (multiply by 100 for NSD's percentages).
    """
    torch = sys.modules.get("torch")  # only a tensor's module is loaded; never import torch here
    if torch is None or not isinstance(ncsnr, torch.Tensor):
        ncsnr = np.asarray(ncsnr, dtype=np.float64)
    if np.ndim(n) == 0:
        n = float(n)
        if n <= 0:
            raise ValueError(f"The number of repeats 'n' must be positive. Got {n} instead.")
        inv_n = 1.0 / n
    else:
        counts = np.asarray(n, dtype=np.float64)
        if counts.size == 0 or np.any(counts <= 0):
            raise ValueError("The repeat counts 'n' must be a non-empty sequence of positive integers.")
        inv_n = float(np.mean(1.0 / counts))
    signal = ncsnr**2
    return signal / (signal + inv_n)


@dataclasses.dataclass
class Responses:
    """Brain responses with trial and unit metadata.

    Parameters
    ----------
    data : array of shape (n_trials, n_units) or (n_trials, n_units, n_times)
        Responses, float. May be a ``numpy.memmap``.
    trials : pandas.DataFrame of n_trials rows
        Per-trial metadata. Columns ``stimulus_id`` (the id used by the matching
        :class:`~neurodec.data.Stimuli`), ``session``, ``run``, ``repeat``
        (0-based index of this presentation of the stimulus) and ``split``
        ("train" or "test", the dataset's own split) are always present;
        loaders may add more (e.g. ``trial_index``, behaviour).
    units : pandas.DataFrame of n_units rows
        Per-unit metadata, e.g. voxel indices ``i, j, k``, or ``hemi`` and
        ``vertex``, or channel names; ROI labels as ``roi:<atlas>`` columns
        (label names); ``ncsnr`` where the dataset provides it.
    subject : str
        Subject identifier, e.g. "subj01".
    modality : {"fmri", "meg", "ieeg", "eeg"}
    space : str
        Space of the units, e.g. "func1pt8mm", "fsaverage", "sensor".
    times : array of shape (n_times,), optional
        Time of each sample in seconds, for time-resolved data.
    info : dict
        Everything else: the volume ``affine`` and ``volume_shape`` of volume
        data, sampling frequency, provenance (dataset, root, beta version).
    """

    data: np.ndarray
    trials: pd.DataFrame
    units: pd.DataFrame
    subject: str
    modality: Modality = "fmri"
    space: str = ""
    times: np.ndarray | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.data.ndim not in (2, 3):
            raise ValueError(
                "Responses 'data' must be an array of shape (n_trials, n_units) or "
                f"(n_trials, n_units, n_times). Got shape {self.data.shape} instead."
            )
        if len(self.trials) != self.data.shape[0]:
            raise ValueError(
                f"Responses 'trials' has {len(self.trials)} rows but 'data' has {self.data.shape[0]} trials."
            )
        if len(self.units) != self.data.shape[1]:
            raise ValueError(
                f"Responses 'units' has {len(self.units)} rows but 'data' has {self.data.shape[1]} units."
            )
        missing = [c for c in TRIAL_COLUMNS if c not in self.trials.columns]
        if missing:
            raise ValueError(f"Responses 'trials' lacks the required column(s) {missing}.")
        if self.times is not None:
            self.times = np.asarray(self.times)
            if self.data.ndim != 3 or self.times.shape != (self.data.shape[2],):
                raise ValueError(
                    f"Responses 'times' has shape {self.times.shape}, which does not match the "
                    f"time axis of 'data' (shape {self.data.shape})."
                )
        self.trials = self.trials.reset_index(drop=True)
        self.units = self.units.reset_index(drop=True)

    # ------------------------------------------------------------------ shape
    @property
    def n_trials(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_units(self) -> int:
        return int(self.data.shape[1])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def stimulus_ids(self) -> np.ndarray:
        """Stimulus id of every trial, array of shape (n_trials,)."""
        return self.trials["stimulus_id"].to_numpy()

    def __repr__(self) -> str:
        splits = self.trials["split"].value_counts().to_dict()
        return (
            f"<Responses {self.subject} {self.modality} space={self.space!r} "
            f"n_trials={self.n_trials} n_units={self.n_units}"
            + (f" n_times={self.data.shape[2]}" if self.data.ndim == 3 else "")
            + f" splits={splits}>"
        )

    # -------------------------------------------------------------- selection
    def select_trials(self, selection: np.ndarray | Sequence[int] | pd.Series) -> "Responses":
        """Responses restricted to some trials (boolean mask or integer indices), order kept."""
        index = _as_index(selection, self.n_trials, "trials")
        return dataclasses.replace(
            self, data=np.asarray(self.data[index]), trials=self.trials.iloc[index].reset_index(drop=True)
        )

    def select_units(self, selection: np.ndarray | Sequence[int] | pd.Series) -> "Responses":
        """Responses restricted to some units (boolean mask or integer indices), order kept."""
        index = _as_index(selection, self.n_units, "units")
        return dataclasses.replace(
            self, data=np.asarray(self.data[:, index]), units=self.units.iloc[index].reset_index(drop=True)
        )

    def roi_mask(self, atlas: str, labels: str | Sequence[str] | None = None) -> np.ndarray:
        """Boolean mask of units carrying any of ``labels`` in ROI atlas ``atlas``.

        Parameters
        ----------
        atlas : str
            ROI atlas name, e.g. "prf-visualrois" (column ``roi:<atlas>`` of ``units``).
        labels : str or sequence of str, optional
            Label names, e.g. "V1v" or ["FFA-1", "FFA-2"]. None selects every
            labelled unit (label other than "Unknown" / empty).
        """
        column = f"roi:{atlas}"
        if column not in self.units.columns:
            atlases = sorted(c[4:] for c in self.units.columns if c.startswith("roi:"))
            raise ValueError(f"Unknown ROI atlas {atlas!r}. This Responses has atlases {atlases}.")
        values = self.units[column].astype("string").fillna("")
        if labels is None:
            return (values != "").to_numpy() & (values != "Unknown").to_numpy()
        labels = [labels] if isinstance(labels, str) else list(labels)
        present = set(values.unique())
        unknown = [lab for lab in labels if lab not in present]
        if unknown:
            raise ValueError(
                f"Unknown label(s) {unknown} in ROI atlas {atlas!r}. "
                f"Labels present: {sorted(v for v in present if v)}."
            )
        return values.isin(labels).to_numpy()

    # ----------------------------------------------------------------- splits
    def split(self, name: str) -> "Responses":
        """Trials of the dataset's own split ``name`` ("train" or "test")."""
        mask = (self.trials["split"] == name).to_numpy()
        if not mask.any():
            present = sorted(self.trials["split"].unique())
            raise ValueError(f"No trial belongs to split {name!r}; splits present: {present}.")
        return self.select_trials(mask)

    def train_test_split(self) -> tuple["Responses", "Responses"]:
        """The dataset's own (train, test) split."""
        return self.split("train"), self.split("test")

    def average_repeats(self) -> "Responses":
        """Average the trials of each stimulus (within each split).

        Returns
        -------
        Responses
            One trial per (split, stimulus id), in order of first presentation,
            with ``n_repeats`` (how many trials were averaged) in ``trials``;
            ``session``, ``run`` and ``repeat`` are those of the first
            presentation.
        """
        import scipy.sparse

        codes = self.trials.groupby(["split", "stimulus_id"], sort=False, dropna=False).ngroup().to_numpy()
        n_groups = int(codes.max()) + 1 if codes.size else 0
        counts = np.bincount(codes, minlength=n_groups)
        # A sparse (n_groups, n_trials) averaging matrix: no float64 copy of the data.
        dtype = np.result_type(self.data.dtype, np.float32)
        weights = scipy.sparse.csr_matrix(
            ((1.0 / counts[codes]).astype(dtype), (codes, np.arange(self.n_trials))), shape=(n_groups, self.n_trials)
        )
        flat = np.asarray(self.data, dtype=dtype).reshape(self.n_trials, -1)
        means = np.asarray(weights @ flat, dtype=dtype)
        first = pd.Series(np.arange(self.n_trials)).groupby(codes).min().to_numpy()
        trials = self.trials.iloc[first].reset_index(drop=True).copy()
        trials["n_repeats"] = counts
        return dataclasses.replace(self, data=means.reshape((n_groups,) + self.data.shape[1:]), trials=trials)

    # ----------------------------------------------------------- noise ceiling
    def noise_ceiling(self, n: float | Sequence[int] | None = None) -> np.ndarray:
        """Noise ceiling per unit from the ``ncsnr`` unit column.

        Parameters
        ----------
        n : float or sequence of int, optional
            Repeats averaged per stimulus (see :func:`noise_ceiling_from_ncsnr`).
            Default: the repeat counts of this object's test stimuli when it has
            a test split, else 1.
        """
        if "ncsnr" not in self.units.columns:
            raise ValueError("These Responses have no 'ncsnr' unit column; the dataset provides no noise ceiling.")
        if n is None:
            test = self.trials[self.trials["split"] == "test"]
            if "n_repeats" in test.columns and len(test):
                n = test["n_repeats"].to_numpy()
            elif len(test):
                n = test.groupby("stimulus_id").size().to_numpy()
            else:
                n = 1
        return noise_ceiling_from_ncsnr(self.units["ncsnr"].to_numpy(), n)


def _as_index(selection: Any, size: int, what: str) -> np.ndarray:
    sel = np.asarray(selection)
    if sel.dtype == bool:
        if sel.shape != (size,):
            raise ValueError(f"A boolean {what} selection must have shape ({size},). Got {sel.shape} instead.")
        return np.flatnonzero(sel)
    if sel.size and not np.issubdtype(sel.dtype, np.integer):
        raise ValueError(f"A {what} selection must be a boolean mask or integer indices. Got dtype {sel.dtype}.")
    sel = sel.astype(np.int64).ravel()
    if sel.size and (sel.min() < -size or sel.max() >= size):
        raise ValueError(f"A {what} index is out of range for {size} {what}.")
    return sel
