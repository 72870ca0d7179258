"""The one container for stimuli: images (and captions) addressed by stimulus id.

Images are read lazily, one at a time, from where they live: an in-memory
array, image files, or an HDF5 brick such as NSD's 36 GB ``imgBrick`` (which is
never loaded whole). Every image comes back as an RGB ``uint8`` array of shape
(height, width, 3).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ._checks import as_integer_ids

__all__ = ["ArrayImages", "FileImages", "HDF5Images", "ImageSource", "Stimuli"]

#: Number of images whose bytes enter the fingerprint of a large image source.
_FINGERPRINT_SAMPLES = 16


class ImageSource(Protocol):
    """Where images come from: a lookup by key plus a fingerprint for caching."""

    def read(self, key: Any) -> np.ndarray:  # pragma: no cover - protocol
        """Return the image stored under ``key`` as uint8 (H, W, 3)."""

    def fingerprint(self, keys: Sequence[Any]) -> str:  # pragma: no cover - protocol
        """A string that changes whenever the images under ``keys`` change."""


def _as_rgb_uint8(image: np.ndarray, where: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    elif image.ndim == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{where}: expected an image of shape (height, width, 3). Got shape {image.shape}.")
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating) and image.size and image.max() <= 1.0:
            image = np.round(image * 255)
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


class ArrayImages:
    """Images held in memory: an array of shape (n_images, height, width, 3)."""

    def __init__(self, images: np.ndarray) -> None:
        images = np.asarray(images)
        if images.ndim not in (3, 4):
            raise ValueError(
                f"ArrayImages expects an array of shape (n_images, height, width[, 3]). Got {images.shape}."
            )
        self.images = images

    def read(self, key: int) -> np.ndarray:
        (index,) = as_integer_ids([key], "key of ArrayImages.read")
        return _as_rgb_uint8(self.images[index], f"image {key}")

    def fingerprint(self, keys: Sequence[int]) -> str:
        digest = hashlib.sha256()
        for key in keys:
            digest.update(np.ascontiguousarray(self.images[int(key)]).tobytes())
        return digest.hexdigest()


class FileImages:
    """Images stored as files (PNG, JPEG, ...), read with Pillow on demand."""

    def read(self, key: str | os.PathLike) -> np.ndarray:
        from PIL import Image

        path = Path(key)
        if not path.is_file():
            raise FileNotFoundError(f"Stimulus image file {path} does not exist.")
        try:
            with Image.open(path) as img:
                return _as_rgb_uint8(np.asarray(img.convert("RGB")), str(path))
        except OSError as exc:
            raise ValueError(f"Stimulus image file {path} could not be decoded: {exc}") from exc

    def fingerprint(self, keys: Sequence[str | os.PathLike]) -> str:
        # Bytes of every file: image files are small and this is exact.
        digest = hashlib.sha256()
        for key in keys:
            digest.update(Path(key).name.encode())
            digest.update(Path(key).read_bytes())
        return digest.hexdigest()


class HDF5Images:
    """Images in one HDF5 dataset of shape (n_images, height, width, 3), read one at a time.

    Parameters
    ----------
    path : path-like
        The HDF5 file (e.g. NSD's ``nsd_stimuli.hdf5``).
    dataset : str
        The dataset inside it (e.g. ``"imgBrick"``).
    """

    def __init__(self, path: str | os.PathLike, dataset: str) -> None:
        self.path = Path(path)
        self.dataset = dataset
        self._file: Any = None
        self._shape: tuple[int, ...] | None = None

    def _dataset(self) -> Any:
        import h5py

        if self._file is None:
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as exc:
                raise ValueError(f"Stimulus file {self.path} is not a readable HDF5 file: {exc}") from exc
        if self.dataset not in self._file:
            raise ValueError(f"Stimulus file {self.path} has no dataset {self.dataset!r}.")
        ds = self._file[self.dataset]
        if ds.ndim != 4 or ds.shape[3] != 3:
            raise ValueError(
                f"Dataset {self.dataset!r} in {self.path} must have shape (n_images, height, width, 3). "
                f"Got {ds.shape}."
            )
        self._shape = ds.shape
        return ds

    def read(self, key: int) -> np.ndarray:
        ds = self._dataset()
        (key,) = as_integer_ids([key], f"key of HDF5Images.read ({self.path})")
        if not 0 <= key < ds.shape[0]:
            raise ValueError(f"Image index {key} is out of range for {self.path} ({ds.shape[0]} images).")
        return _as_rgb_uint8(ds[key], f"{self.path}[{key}]")

    def fingerprint(self, keys: Sequence[int]) -> str:
        # Hashing a 36 GB brick is too slow to do before every cache lookup: the
        # fingerprint covers the file's shape/dtype and the bytes of up to
        # _FINGERPRINT_SAMPLES evenly spaced images among the ones used.
        ds = self._dataset()
        digest = hashlib.sha256(f"{ds.shape}{ds.dtype}".encode())
        keys = list(keys)
        if keys:
            picks = np.unique(np.linspace(0, len(keys) - 1, min(len(keys), _FINGERPRINT_SAMPLES)).astype(int))
            for pick in picks:
                digest.update(np.ascontiguousarray(ds[int(keys[pick])]).tobytes())
        return digest.hexdigest()

    def __getstate__(self) -> dict[str, Any]:
        # h5py handles cannot be pickled (dask workers, DataLoader workers).
        return {"path": self.path, "dataset": self.dataset, "_file": None, "_shape": self._shape}


class Stimuli:
    """Stimuli addressed by id, with lazily read images and optional captions.

    Parameters
    ----------
    ids : sequence of hashable
        Stimulus ids, unique, e.g. NSD's 0-based 73k ids or BOLD5000 file names.
        They are what ``Responses.trials["stimulus_id"]`` refers to.
    source : ImageSource
        Where the images are (:class:`ArrayImages`, :class:`FileImages`,
        :class:`HDF5Images`).
    keys : sequence, optional
        The source key of each id (array row, file path, brick index); defaults
        to the ids themselves.
    captions : mapping of id -> list of str, optional
        Captions of each stimulus, where the dataset has them.
    name : str
        A name for the stimulus set (e.g. "nsd"), used in reprs and cache keys.

    Examples
    --------
    >>> import numpy as np
    >>> stim = Stimuli.from_array(np.zeros((2, 8, 8, 3), np.uint8), ids=[10, 11])
    >>> stim.get_image(11).shape
    (8, 8, 3)
    """

    def __init__(
        self,
        ids: Sequence[Hashable],
        source: ImageSource,
        *,
        keys: Sequence[Any] | None = None,
        captions: Mapping[Hashable, list[str]] | None = None,
        name: str = "stimuli",
    ) -> None:
        ids = list(ids)
        if len(set(ids)) != len(ids):
            seen: set[Hashable] = set()
            dup = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
            raise ValueError(f"Stimulus ids must be unique; {dup!r} appears more than once.")
        keys = list(ids) if keys is None else list(keys)
        if len(keys) != len(ids):
            raise ValueError(f"Stimuli got {len(ids)} ids but {len(keys)} keys.")
        self.ids = ids
        self.source = source
        self.name = name
        self.captions = dict(captions) if captions is not None else None
        self._key_of = dict(zip(ids, keys))
        self._hash: str | None = None

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_array(
        cls, images: np.ndarray, ids: Sequence[Hashable] | None = None, **kwargs: Any
    ) -> "Stimuli":
        """Stimuli from an in-memory array of shape (n_images, height, width, 3)."""
        images = np.asarray(images)
        ids = list(range(len(images))) if ids is None else list(ids)
        if len(ids) != len(images):
            raise ValueError(f"Stimuli.from_array got {len(images)} images but {len(ids)} ids.")
        return cls(ids, ArrayImages(images), keys=list(range(len(images))), **kwargs)

    @classmethod
    def from_files(cls, paths: Mapping[Hashable, str | os.PathLike], **kwargs: Any) -> "Stimuli":
        """Stimuli from a mapping of id -> image file path."""
        return cls(list(paths), FileImages(), keys=[Path(p) for p in paths.values()], **kwargs)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, stimulus_id: object) -> bool:
        return stimulus_id in self._key_of

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.get_image(i) for i in self.ids)

    def __repr__(self) -> str:
        cap = "" if self.captions is None else ", with captions"
        return f"<Stimuli {self.name!r}: {len(self)} images from {type(self.source).__name__}{cap}>"

    def _key(self, stimulus_id: Hashable) -> Any:
        try:
            return self._key_of[stimulus_id]
        except (KeyError, TypeError):
            raise KeyError(
                f"Stimulus id {stimulus_id!r} does not exist in {self.name!r} "
                f"({len(self)} stimuli, e.g. {self.ids[:3]})."
            ) from None

    def get_image(self, stimulus_id: Hashable) -> np.ndarray:
        """The image of ``stimulus_id`` as uint8 array of shape (height, width, 3)."""
        return self.source.read(self._key(stimulus_id))

    def iter_images(self, ids: Iterable[Hashable] | None = None) -> Iterator[np.ndarray]:
        """Images of ``ids`` (default: all), read one at a time."""
        for stimulus_id in self.ids if ids is None else ids:
            yield self.get_image(stimulus_id)

    def get_captions(self, stimulus_id: Hashable) -> list[str]:
        """Captions of ``stimulus_id``; an error if the set has no captions."""
        if self.captions is None:
            raise ValueError(f"Stimuli {self.name!r} have no captions.")
        self._key(stimulus_id)
        return list(self.captions.get(stimulus_id, []))

    def subset(self, ids: Iterable[Hashable]) -> "Stimuli":
        """Stimuli restricted to ``ids`` (in that order; an error names unknown ids)."""
        ids = list(dict.fromkeys(ids))
        missing = [i for i in ids if i not in self._key_of]
        if missing:
            raise KeyError(f"{len(missing)} stimulus id(s) do not exist in {self.name!r}: {missing[:10]}.")
        captions = None if self.captions is None else {i: self.captions.get(i, []) for i in ids}
        return Stimuli(ids, self.source, keys=[self._key_of[i] for i in ids], captions=captions, name=self.name)

    def content_hash(self) -> str:
        """A stable hex digest of the ids and the image content, for cache keys.

        The same ids with the same pixels give the same hash across machines
        and sessions. For large HDF5 bricks the pixel part covers a sample of
        the images (see :class:`HDF5Images`).
        """
        if self._hash is None:
            digest = hashlib.sha256()
            digest.update(repr([(type(i).__name__, str(i)) for i in self.ids]).encode())
            digest.update(self.source.fingerprint([self._key_of[i] for i in self.ids]).encode())
            self._hash = digest.hexdigest()
        return self._hash
