"""NSD's experimental design, stimulus information and behaviour tables.

Everything NSD stores 1-based (trials, sessions, ``subjectim`` columns, 73k ids)
is converted here, once, to 0-based indices; sessions stay 1-based numbers as
in the file names.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ._checks import ensure_readable
from .specs import load_spec

__all__ = ["NSDDesign", "load_nsd_behavior", "load_nsd_design", "load_nsd_stim_info"]


def _as_index_array(value: np.ndarray, name: str, path: Path) -> np.ndarray:
    """A MATLAB numeric array as int64, checking it holds whole numbers."""
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{path}: variable {name!r} should be numeric, got dtype {arr.dtype}.")
    as_int = arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating) and not np.array_equal(as_int, arr):
        raise ValueError(f"{path}: variable {name!r} should hold whole numbers (1-based indices).")
    return as_int


@dataclasses.dataclass(frozen=True)
class NSDDesign:
    """NSD's trial design, 0-based.

    Parameters
    ----------
    masterordering : array of shape (n_design_trials,)
        For each trial, the 0-based column of ``subjectim`` shown (the same
        sequence for every subject).
    subjectim : array of shape (n_subjects, n_columns)
        0-based 73k image id of each column, per subject; the first
        ``n_shared`` columns are the shared images.
    sharedix : array of shape (n_shared,)
        Sorted 0-based 73k ids of the shared ("shared1000") images.
    stimpattern : array of shape (n_sessions, n_runs, n_slots) or None
        True where a stimulus trial occurs (the file's ``stimpattern``, when
        present); gives the trials of each session and the run of each trial.
    path : Path or None
        The file the design was read from.
    """

    masterordering: np.ndarray
    subjectim: np.ndarray
    sharedix: np.ndarray
    stimpattern: np.ndarray | None = None
    path: Path | None = None

    @property
    def n_subjects(self) -> int:
        return int(self.subjectim.shape[0])

    @property
    def n_shared(self) -> int:
        return int(self.sharedix.shape[0])

    @property
    def n_sessions(self) -> int | None:
        """Number of sessions the design describes, when ``stimpattern`` is known."""
        return None if self.stimpattern is None else int(self.stimpattern.shape[0])

    @property
    def trials_per_session(self) -> np.ndarray | None:
        """Stimulus trials in each session, array of shape (n_sessions,), or None."""
        if self.stimpattern is None:
            return None
        return self.stimpattern.reshape(self.stimpattern.shape[0], -1).sum(axis=1).astype(np.int64)

    def check_subject(self, subject: int) -> None:
        """Raise a clear error unless ``subject`` (1-based) is in the design."""
        if not isinstance(subject, (int, np.integer)) or not 1 <= subject <= self.n_subjects:
            raise ValueError(
                f"The 'subject' parameter must be an integer from 1 to {self.n_subjects} "
                f"(subjects in {self.path or 'the design'}). Got {subject!r} instead."
            )

    def trials(self, subject: int) -> pd.DataFrame:
        """Every design trial of one subject, in beta order.

        Parameters
        ----------
        subject : int
            1-based subject number.

        Returns
        -------
        pandas.DataFrame of n_design_trials rows
            ``trial_index`` (0-based global trial), ``column`` (0-based
            ``subjectim`` column, i.e. the 10k id), ``stimulus_id`` (0-based 73k
            id), ``repeat`` (0-based presentation of that image), ``shared``
            (bool) and ``split`` ("test" for shared images, else "train"); with
            ``stimpattern``, also ``session`` (1-based), ``run`` (1-based) and
            ``trial_in_session`` (0-based), else those are -1.
        """
        self.check_subject(subject)
        column = self.masterordering
        table = pd.DataFrame(
            {
                "trial_index": np.arange(column.size, dtype=np.int64),
                "column": column,
                "stimulus_id": self.subjectim[subject - 1, column],
            }
        )
        table["repeat"] = table.groupby("column").cumcount().astype(np.int64)
        table["shared"] = column < self.n_shared
        table["split"] = np.where(table["shared"], "test", "train")
        session, run, within = (np.full(column.size, -1, dtype=np.int64) for _ in range(3))
        if self.stimpattern is not None:
            sess_idx, run_idx, _ = np.nonzero(self.stimpattern)  # C order = trial order
            n = min(column.size, sess_idx.size)
            session[:n], run[:n] = sess_idx[:n] + 1, run_idx[:n] + 1
            starts = np.concatenate([[0], np.cumsum(self.trials_per_session)[:-1]])
            within[:n] = np.arange(n) - starts[sess_idx[:n]]
        table["session"], table["run"], table["trial_in_session"] = session, run, within
        return table


def load_nsd_design(root: str | os.PathLike) -> NSDDesign:
    """Read ``nsd_expdesign.mat`` and convert it to 0-based indices.

    Parameters
    ----------
    root : path-like
        NSD root (holding ``nsddata/``).

    Returns
    -------
    NSDDesign
        Image of trial ``t`` for subject ``s`` (0-based):
        ``subjectim[s, masterordering[t]]``.
    """
    import scipy.io

    path = load_spec("nsd").path("design", root)
    if not path.is_file():
        raise FileNotFoundError(f"NSD design file {path} does not exist; is {root} an NSD root?")
    ensure_readable(path, "NSD design file")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:  # noqa: BLE001 - scipy raises many kinds on bad files
        raise ValueError(f"NSD design file {path} could not be read as a MATLAB file: {exc}") from exc
    missing = [k for k in ("masterordering", "subjectim", "sharedix") if k not in mat]
    if missing:
        raise ValueError(f"NSD design file {path} lacks variable(s) {missing}.")
    masterordering = _as_index_array(mat["masterordering"], "masterordering", path).ravel() - 1
    subjectim = _as_index_array(mat["subjectim"], "subjectim", path) - 1
    sharedix = _as_index_array(mat["sharedix"], "sharedix", path).ravel() - 1
    if subjectim.ndim != 2:
        raise ValueError(f"{path}: 'subjectim' should be 2-D (n_subjects, n_columns), got {subjectim.shape}.")
    if masterordering.min() < 0 or masterordering.max() >= subjectim.shape[1]:
        raise ValueError(
            f"{path}: 'masterordering' should hold 1-based columns of 'subjectim' (1..{subjectim.shape[1]}); "
            f"got values {masterordering.min() + 1}..{masterordering.max() + 1}."
        )
    stimpattern = None
    if "stimpattern" in mat:
        stimpattern = np.asarray(mat["stimpattern"]).astype(bool)
        if stimpattern.ndim != 3:
            raise ValueError(f"{path}: 'stimpattern' should be (n_sessions, n_runs, n_slots), got {stimpattern.shape}.")
    return NSDDesign(masterordering, subjectim, sharedix, stimpattern, path)


def _parse_crop_box(text: object) -> tuple[float, ...] | None:
    if not isinstance(text, str) or not text.strip():
        return None
    return tuple(float(v) for v in text.strip().strip("()[]").split(",") if v.strip())


def load_nsd_stim_info(root: str | os.PathLike) -> pd.DataFrame:
    """Read ``nsd_stim_info_merged.csv``: one row per 73k image, indexed by 0-based ``nsdId``.

    Columns are selected by name; ``cropBox`` strings become tuples of floats
    (top, bottom, left, right fractions) and ``shared1000`` / ``flagged`` /
    ``BOLD5000`` booleans.
    """
    path = load_spec("nsd").path("stim_info", root)
    if not path.is_file():
        raise FileNotFoundError(f"NSD stimulus information file {path} does not exist.")
    ensure_readable(path, "NSD stimulus information file")
    table = pd.read_csv(path)
    table = table.drop(columns=[c for c in table.columns if c.startswith("Unnamed")])
    missing = [c for c in ("cocoId", "cocoSplit", "nsdId") if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}; it has {list(table.columns)}.")
    if "cropBox" in table.columns:
        table["cropBox"] = table["cropBox"].map(_parse_crop_box)
    for column in ("shared1000", "flagged", "BOLD5000"):
        if column in table.columns and table[column].dtype != bool:
            table[column] = table[column].astype(str).str.lower().isin(("true", "1"))
    return table.set_index("nsdId", drop=False).rename_axis(None)


def load_nsd_behavior(root: str | os.PathLike, subject: int) -> pd.DataFrame:
    """Read a subject's ``behav/responses.tsv`` (one row per trial, in beta order).

    The 1-based ``73KID`` and ``10KID`` columns gain 0-based twins
    ``stimulus_id`` and ``column``; ``SESSION`` and ``RUN`` stay 1-based.
    These four columns must hold whole numbers: a fractional, empty or
    non-numeric value raises ValueError naming the column, row and value
    (it is never truncated).
    """
    path = load_spec("nsd").path("behavior", root, subject=subject)
    if not path.is_file():
        raise FileNotFoundError(f"NSD behaviour file {path} does not exist.")
    ensure_readable(path, "NSD behaviour file")
    table = pd.read_csv(path, sep="\t")
    missing = [c for c in ("SESSION", "RUN", "73KID") if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}; it has {list(table.columns)}.")
    table.attrs["path"] = str(path)
    for column in ("SESSION", "RUN", "73KID", "10KID"):
        if column in table.columns:
            table[column] = _integer_column(table[column], column, path)
    table["stimulus_id"] = table["73KID"] - 1
    if "10KID" in table.columns:
        table["column"] = table["10KID"] - 1
    return table


def _integer_column(values: pd.Series, column: str, path: Path) -> pd.Series:
    """``values`` as int64, refusing any value that is not a whole number."""
    numbers = pd.to_numeric(values, errors="coerce")
    as_float = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(as_float) | (as_float != np.round(as_float))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = values.iloc[row]
        value = value.item() if isinstance(value, np.generic) else value
        raise ValueError(
            f"NSD behaviour file {path}: column {column!r} must hold whole numbers (1-based indices). Got "
            f"{value!r} in data row {row + 1} ({int(bad.sum())} such value(s))."
        )
    return pd.Series(as_float.astype(np.int64), index=values.index, name=values.name)
