"""Atomic writes: everything neurodec writes appears whole or not at all.

A file is written to a temporary sibling and renamed into place
(``os.replace`` is atomic on POSIX and Windows within one filesystem), so an
interrupted run never leaves a half-written cache, map or table behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "warn_if_other_version", "write_json_atomic", "write_text_atomic"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Parameters
    ----------
    path : path-like
        The final destination. Its parent folder is created if needed.
    suffix : str, optional
        Suffix of the temporary file (some writers infer the format from the
        extension, e.g. nibabel); defaults to the destination's full suffix.

    Notes
    -----
    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically and return the path."""
    return write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=True, default=str) + "\n")


def warn_if_other_version(path: str | os.PathLike, written_by: str | None) -> None:
    """Warn when a file neurodec reuses was written by another neurodec version.

    scikit-learn's convention for its pickles: the file is still used (its
    settings and data matched), but this version might compute other numbers.

    Parameters
    ----------
    path : path-like
        The file, named in the warning.
    written_by : str or None
        The version recorded in the file; None for files written before
        neurodec recorded it.
    """
    from . import __version__

    if written_by == __version__:
        return
    writer = f"neurodec {written_by}" if written_by else "an earlier neurodec (no version recorded)"
    warnings.warn(f"{path} was written by {writer}; this is neurodec {__version__}. It is reused as it is: delete "
                  "it to recompute with this version.", UserWarning, stacklevel=3)
