"""On-disk feature cache: one HDF5 file per (backbone, weights, layer, pooling, reduction, ...).

A file is keyed by everything that changes its numbers: backbone name,
weights identity (pretrained tag, random seed, checkpoint hash), layer,
pooling (and grid), reduction (and the ids it was fitted on), preprocessing,
numeric precision and the stimulus set's :meth:`~neurodec.data.Stimuli.content_hash`.
The key's digest names the file; the key itself is stored in the file's
attributes and checked before any reuse, so a file written by another
configuration is refused with an error naming the key that differs.

Features are written one batch at a time into ``<file>.partial`` whose
``done_rows`` attribute counts finished rows: an interrupted extraction
resumes where it stopped. When every row is written the partial file is
renamed onto the final name (atomic), so a complete-looking file is complete.
A file written by another neurodec version is reused with a warning.

File layout: dataset ``features`` (float32, shape (n_stimuli, n_features)),
dataset ``stimulus_ids``, optional dataset ``reducer`` (the pickled fitted
reducer), attributes ``key.<name>`` for every key entry, ``done_rows``,
``format``, ``neurodec_version``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .._io import warn_if_other_version

__all__ = ["FeatureCache", "PartialFeatures"]

_FORMAT = "neurodec-features-1"
_CHUNK_BYTES = 1 << 20


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


def _encode_ids(ids: Sequence[Any]) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return ids.astype(np.int64)
    return np.array([str(i) for i in ids.tolist()], dtype=object)


def _same_ids(stored: np.ndarray, ids: Sequence[Any]) -> bool:
    expected = _encode_ids(ids)
    if stored.dtype.kind in "iu":
        return expected.dtype.kind in "iu" and np.array_equal(stored, expected)
    stored = np.array([s.decode() if isinstance(s, bytes) else str(s) for s in stored.tolist()], dtype=object)
    return expected.dtype.kind not in "iu" and stored.tolist() == expected.tolist()


class PartialFeatures:
    """One cache entry being written batch by batch (see the module docstring).

    Use :meth:`FeatureCache.open_partial`; call :meth:`write` with consecutive
    row blocks and :meth:`finalize` once ``done_rows == n_rows``.
    """

    def __init__(self, path: Path, final: Path, key: Mapping[str, str], ids: Sequence[Any]) -> None:
        import h5py

        self.path = path
        self.final = final
        self.n_rows = len(ids)
        exists = path.exists()
        self._file = h5py.File(path, "a")
        if exists:
            _check_key(self._file, key, path)
            if not _same_ids(self._file["stimulus_ids"][()], ids):
                raise ValueError(f"Partial feature cache {path} was written for other stimulus ids; delete it.")
        else:
            self._file.attrs["format"] = _FORMAT
            self._file.attrs["neurodec_version"] = __version__
            for name, value in key.items():
                self._file.attrs[f"key.{name}"] = value
            self._file.attrs["done_rows"] = 0
            encoded = _encode_ids(ids)
            dtype = h5py.string_dtype() if encoded.dtype == object else encoded.dtype
            self._file.create_dataset("stimulus_ids", data=encoded, dtype=dtype)
            self._file.flush()

    @property
    def done_rows(self) -> int:
        return int(self._file.attrs["done_rows"])

    def write(self, start: int, rows: np.ndarray) -> None:
        """Write ``rows`` (array of shape (n_batch, n_features)) at row ``start`` and count them done."""
        if start > self.done_rows:
            raise ValueError(f"{self.path}: rows must be written in order; row {start} after {self.done_rows} done.")
        if "features" not in self._file:
            # Row chunks of about 1 MiB: whole batches write at once, and reading
            # a few rows (Features.align) does not pull in a huge chunk.
            chunk_rows = max(1, min(len(rows), self.n_rows, _CHUNK_BYTES // (4 * max(1, rows.shape[1]))))
            self._file.create_dataset(
                "features", shape=(self.n_rows, rows.shape[1]), dtype=np.float32, chunks=(chunk_rows, rows.shape[1])
            )
        self._file["features"][start : start + len(rows)] = rows
        self._file.attrs["done_rows"] = max(self.done_rows, start + len(rows))
        self._file.flush()

    def write_reducer(self, reducer: Any) -> None:
        """Store the fitted dimensionality reducer (pickled) beside the features."""
        if "reducer" in self._file:  # left by an interrupted earlier run
            del self._file["reducer"]
        self._file.create_dataset("reducer", data=np.void(pickle.dumps(reducer)))

    def finalize(self) -> Path:
        """Close the file and rename it onto its final name (atomic)."""
        if self.done_rows != self.n_rows:
            raise ValueError(f"{self.path}: only {self.done_rows} of {self.n_rows} rows written; cannot finalize.")
        self._file.close()
        os.replace(self.path, self.final)
        return self.final

    def close(self) -> None:
        """Close the file, leaving it to be resumed later."""
        self._file.close()


def _check_key(handle: Any, key: Mapping[str, str], path: Path) -> None:
    if handle.attrs.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a neurodec feature cache file (format {handle.attrs.get('format')!r}).")
    for name, value in key.items():
        stored = handle.attrs.get(f"key.{name}")
        if stored != value:
            raise ValueError(
                f"Feature cache file {path} was written by another configuration: key {name!r} is "
                f"{stored!r} in the file but {value!r} is requested. Delete the file or use another cache folder."
            )
    warn_if_other_version(path, handle.attrs.get("neurodec_version"))


class FeatureCache:
    """A folder of cached features.

    Parameters
    ----------
    folder : path-like
        Where the files live (created on first write), one subfolder per backbone.

    Examples
    --------
    >>> cache = FeatureCache("~/neurodec-cache")  # doctest: +SKIP
    >>> feats = extract_features(backbone, stimuli, cache=cache)  # doctest: +SKIP
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder).expanduser()

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.folder)!r})"

    def path_for(self, key: Mapping[str, str]) -> Path:
        """The file of ``key`` (needs entries "backbone", "layer" and "pooling")."""
        digest = hashlib.sha256(json.dumps(dict(key), sort_keys=True).encode()).hexdigest()[:16]
        name = f"{_safe(key['layer'])}.{_safe(key['pooling'])}.{digest}.h5"
        return self.folder / _safe(key["backbone"]) / name

    def load(self, key: Mapping[str, str], ids: Sequence[Any]) -> tuple[Any, Any] | None:
        """The cached features of ``key`` or None if absent.

        Returns
        -------
        (data, reducer) or None
            ``data`` is the read-only HDF5 dataset of shape (n_stimuli,
            n_features), ``reducer`` the stored fitted reducer or None.

        Raises
        ------
        ValueError
            If the file was written for another configuration (naming the key
            entry that differs), other stimulus ids, or has a wrong shape or dtype.
        """
        import h5py

        path = self.path_for(key)
        if not path.exists():
            return None
        handle = h5py.File(path, "r")
        try:
            _check_key(handle, key, path)
            data = handle.get("features")
            if data is None or data.ndim != 2 or data.shape[0] != len(ids) or data.dtype != np.float32:
                got = None if data is None else (data.shape, str(data.dtype))
                raise ValueError(f"Feature cache file {path}: expected float32 features with {len(ids)} rows; got {got}.")
            if int(handle.attrs["done_rows"]) != len(ids) or not _same_ids(handle["stimulus_ids"][()], ids):
                raise ValueError(f"Feature cache file {path} does not hold the requested {len(ids)} stimulus ids.")
            reducer = pickle.loads(handle["reducer"][()].tobytes()) if "reducer" in handle else None
        except BaseException:
            handle.close()
            raise
        return data, reducer

    def open_partial(self, key: Mapping[str, str], ids: Sequence[Any]) -> PartialFeatures:
        """Open (or resume) the partial file of ``key`` for writing."""
        final = self.path_for(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        return PartialFeatures(final.with_name(final.name + ".partial"), final, key, ids)
