"""Checks shared by the loaders and ``neurodec check-data``: readable files, finite values, integer ids.

Each check raises an error that names the file or argument, what was
expected and what was got, so a loader and the data checker report a
problem in the same words.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = [
    "as_integer_ids",
    "ensure_listable",
    "ensure_readable",
    "raise_if_nonfinite",
    "sample_indices",
]


def ensure_readable(path: str | os.PathLike, what: str) -> Path:
    """Open ``path`` for reading once, turning a permission failure into a clear error.

    Readers deeper down report an unreadable file in their own words
    (scipy: "Reader needs file name or open file-like object", nibabel and
    h5py: "corrupt" or "unable to open"); this says what happened.

    Parameters
    ----------
    path : path-like
        The file.
    what : str
        What the file is, for the message (e.g. "NSD design file").

    Raises
    ------
    PermissionError
        Naming the file when the process may not read it.
    """
    path = Path(path)
    try:
        with open(path, "rb"):
            pass
    except PermissionError as exc:
        raise PermissionError(
            f"{what} {path} exists but cannot be read: permission denied ({exc.strerror or exc}). "
            "Give this user read access to it (e.g. chmod a+r)."
        ) from exc
    return path


def ensure_listable(folder: str | os.PathLike, what: str) -> None:
    """Raise a clear error when ``folder`` exists but its entries cannot be listed.

    ``pathlib.Path.glob`` silently yields nothing for a folder it may not read,
    which would otherwise read as "no such files".

    Raises
    ------
    PermissionError
        Naming the folder.
    """
    folder = Path(folder)
    try:
        with os.scandir(folder):
            pass
    except PermissionError as exc:
        raise PermissionError(
            f"{what} {folder} cannot be listed: permission denied ({exc.strerror or exc}). "
            "Give this user read and execute access to it (e.g. chmod a+rx)."
        ) from exc
    except (FileNotFoundError, NotADirectoryError):
        return


def raise_if_nonfinite(
    block: np.ndarray, path: str | os.PathLike, *, rows: np.ndarray | None = None, unit: str = "unit"
) -> None:
    """Raise when ``block`` of shape (n_trials, n_units) holds NaN or infinite values.

    Parameters
    ----------
    block : float array of shape (n_trials, n_units)
        Values read from ``path``.
    path : path-like
        The file they came from.
    rows : int array of shape (n_trials,), optional
        The file's trial number (0-based) of each row, when ``block`` holds a
        sample of the file's trials; default ``0..n_trials - 1``.
    unit : str
        What a column is ("voxel", "vertex"), for the message.

    Raises
    ------
    ValueError
        Naming the file, the number of bad values and the first one's trial
        and unit (column of ``block``).
    """
    if not np.issubdtype(block.dtype, np.floating):
        return
    bad = ~np.isfinite(block)
    if not bad.any():
        return
    trial, column = np.argwhere(bad)[0]
    trial = int(rows[trial]) if rows is not None else int(trial)
    scope = "the sampled trials of " if rows is not None else ""
    raise ValueError(
        f"Beta file {path} holds {int(bad.sum())} NaN or infinite value(s) in {scope}the units read (first: "
        f"trial {trial}, {unit} {int(column)} of the selection); betas must be finite. Re-extract or re-download "
        "the file, or leave those units out with an ROI or mask."
    )


def sample_indices(n: int, n_samples: int | None) -> np.ndarray:
    """``n_samples`` evenly spaced indices in ``0..n - 1`` (first and last included); all when None."""
    if n_samples is None or n_samples >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max(n_samples, 1)).round().astype(np.int64))


def as_integer_ids(values: Iterable[object], argument: str) -> list[int]:
    """Integer ids from ``values``, refusing any value that is not exactly an integer.

    Integers pass; integer-valued floats (``5.0``) and numeric strings
    (``"5"``) are accepted because the conversion is lossless; ``5.7``,
    ``"5.7"``, ``"abc"``, booleans, NaN and other objects are refused.

    Parameters
    ----------
    values : iterable
        The ids.
    argument : str
        The argument's name and function for the message, e.g.
        "'ids' parameter of load_nsd_stimuli".

    Raises
    ------
    ValueError
        Naming the argument, the first bad value and its position.
    """
    out = []
    for position, value in enumerate(values):
        converted = _as_int(value)
        if converted is None:
            raise ValueError(
                f"The {argument} must hold integers. Got {value!r} ({type(value).__name__}) at position "
                f"{position}; a value is converted only when that loses nothing (5, 5.0 or '5', not 5.7 or 'x')."
            )
        out.append(converted)
    return out


def _as_int(value: object) -> int | None:
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        as_float = float(value)
        return int(as_float) if np.isfinite(as_float) and as_float.is_integer() else None
    if isinstance(value, (str, bytes, np.str_)):
        text = value.decode() if isinstance(value, bytes) else str(value)
        try:
            return int(text.strip())
        except ValueError:
            return None
    return None
