"""Masked, streaming reads of NSD's single-trial beta files (HDF5, NIfTI, MGH).

Each reader fills a preallocated ``out`` array of shape (n_trials, n_units)
with float32 betas of the masked units and holds at most a slab of the file
at once:

- HDF5 (n_trials, Z, Y, X), one voxel time course per chunk as NSD ships it:
  each masked voxel's chunk is read raw, in batches; other chunkings or
  compressed files: one hyperslab per z-slice over the mask's bounding
  rectangle, so only chunks near the mask are touched.
- NIfTI ``.nii.gz``: the gzip stream is decoded once, front to back, in blocks
  of trials (trials are the slowest axis on disk), each block masked then freed.
- MGH (n_vertices, 1, 1, n_trials): blocks of trials, masked.
"""

from __future__ import annotations

import dataclasses
import gzip
import zlib
from pathlib import Path

import numpy as np

from ._checks import ensure_readable

__all__ = ["BETA_SCALE", "BetaFile", "read_beta_header", "read_masked_betas"]

#: Volume betas are stored as int16 percent signal change x 300.
BETA_SCALE = 300.0
#: Bytes of file data decoded at once by the NIfTI and MGH readers.
_BLOCK_BYTES = 64 * 2**20
#: Voxel time courses gathered per batch by the HDF5 chunk reader.
_VOXEL_BATCH = 4096


@dataclasses.dataclass(frozen=True)
class BetaFile:
    """Header facts of one session's beta file.

    Attributes
    ----------
    path : Path
    kind : {"hdf5", "nifti", "mgh"}
    n_trials : int
    spatial_shape : tuple of int
        (X, Y, Z) for volumes, (n_vertices,) for surfaces.
    affine : array of shape (4, 4) or None
    """

    path: Path
    kind: str
    n_trials: int
    spatial_shape: tuple[int, ...]
    affine: np.ndarray | None = None


def _bad_file(path: Path, exc: BaseException) -> ValueError:
    return ValueError(f"Beta file {path} is corrupt or unreadable ({type(exc).__name__}: {exc}).")


def _check_nibabel_betas(path: Path, img: object, dtype: str) -> None:
    header = img.header  # type: ignore[attr-defined]
    got = np.dtype(header.get_data_dtype())
    if got.newbyteorder("=") != np.dtype(dtype):
        raise ValueError(f"Beta file {path} should hold {dtype} values; it holds {got}.")
    # nibabel moves the header's scaling onto the data proxy when loading.
    proxy = img.dataobj  # type: ignore[attr-defined]
    slope, inter = float(getattr(proxy, "slope", 1.0)), float(getattr(proxy, "inter", 0.0))
    if slope != 1.0 or inter != 0.0:
        raise ValueError(
            f"Beta file {path} has a scale factor (slope={slope}, inter={inter}); NSD betas carry none "
            "(they are int16 percent signal change x 300)."
        )


def read_beta_header(path: str | Path, kind: str) -> BetaFile:
    """Read only the header of a beta file: trial count, spatial shape, affine.

    Raises
    ------
    PermissionError
        When the file exists but may not be read.
    ValueError
        When the file is corrupt, not 4-D, or of the wrong dtype (int16 for
        volumes, float32 for surfaces).
    """
    path = ensure_readable(path, "Beta file")
    if kind == "hdf5":
        import h5py

        try:
            with h5py.File(path, "r") as f:
                if "betas" not in f:
                    raise ValueError(f"Beta file {path} should hold a dataset 'betas'; it holds {sorted(f)}.")
                ds = f["betas"]
                shape, dtype = ds.shape, ds.dtype
        except OSError as exc:
            raise _bad_file(path, exc) from exc
        if len(shape) != 4:
            raise ValueError(f"Beta file {path}: dataset 'betas' should be (n_trials, Z, Y, X); got shape {shape}.")
        if np.dtype(dtype) != np.int16:
            raise ValueError(f"Beta file {path}: dataset 'betas' should hold int16 values; it holds {dtype}.")
        return BetaFile(path, kind, int(shape[0]), tuple(int(s) for s in shape[:0:-1]))
    import nibabel as nib

    try:
        img = nib.load(path)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many kinds on bad files
        raise _bad_file(path, exc) from exc
    if len(img.shape) != 4:
        raise ValueError(f"Beta file {path} should be 4-D (space..., n_trials); got shape {img.shape}.")
    _check_nibabel_betas(path, img, "int16" if kind == "nifti" else "float32")
    spatial = tuple(int(s) for s in img.shape[:3]) if kind == "nifti" else (int(img.shape[0]),)
    if kind == "mgh" and img.shape[1:3] != (1, 1):
        raise ValueError(f"Surface beta file {path} should have shape (n_vertices, 1, 1, n_trials); got {img.shape}.")
    return BetaFile(path, kind, int(img.shape[3]), spatial, np.asarray(img.affine))


def _read_hdf5_chunks(ds: object, mask: np.ndarray, out: np.ndarray) -> None:
    """One raw-chunk read per masked voxel (unfiltered, one time course per chunk)."""
    dsid, dtype, n_trials = ds.id, ds.dtype, ds.shape[0]  # type: ignore[attr-defined]
    empty = np.full(n_trials, ds.fillvalue, dtype=dtype).tobytes()  # type: ignore[attr-defined]
    voxels = np.argwhere(mask)  # output column order: C order of (i, j, k)
    for start in range(0, len(voxels), _VOXEL_BATCH):
        batch = voxels[start : start + _VOXEL_BATCH]
        # Within a batch, visit chunks in the file's (k, j, i) order: the chunk
        # index is then walked forward (~15% less CPU than (i, j, k) order).
        visit = np.lexsort((batch[:, 0], batch[:, 1], batch[:, 2]))
        raws = []
        for i, j, k in batch[visit].tolist():
            try:
                raws.append(dsid.read_direct_chunk((0, k, j, i))[1])
            except RuntimeError as exc:
                if "not allocated" not in str(exc):
                    raise
                raws.append(empty)  # a chunk never written holds the fill value
        block = np.empty((len(batch), n_trials), dtype=dtype)
        block[visit] = np.frombuffer(b"".join(raws), dtype=dtype).reshape(len(batch), n_trials)
        out[:, start : start + len(batch)] = block.T


def _read_hdf5_slabs(ds: object, mask: np.ndarray, out: np.ndarray) -> None:
    """One hyperslab per z-slice over the mask's bounding rectangle (any chunking or filter)."""
    column = np.full(mask.shape, -1, dtype=np.int64)
    column[mask] = np.arange(int(mask.sum()))
    for k in np.flatnonzero(mask.any(axis=(0, 1))):
        plane = mask[:, :, k].T  # (Y, X), the file's order within a z-slice
        rows, cols = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
        box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        block = ds[:, k, box[0], box[1]]  # type: ignore[index]  # (n_trials, h, w)
        inside = plane[box]
        out[:, column[:, :, k].T[box][inside]] = block[:, inside]


def _read_hdf5(beta: BetaFile, mask: np.ndarray, out: np.ndarray) -> None:
    import h5py

    with h5py.File(beta.path, "r") as f:
        ds = f["betas"]
        # NSD's layout (one unfiltered chunk per voxel time course) lets us fetch
        # each chunk's bytes directly, skipping HDF5's per-chunk selection work
        # (about 3x faster than hyperslab reads; see benchmarks/RESULTS.md).
        direct = ds.chunks == (ds.shape[0], 1, 1, 1) and ds.id.get_create_plist().get_nfilters() == 0
        (_read_hdf5_chunks if direct else _read_hdf5_slabs)(ds, mask, out)
    out *= np.float32(1 / BETA_SCALE)


def _read_nifti(beta: BetaFile, mask: np.ndarray, out: np.ndarray) -> None:
    import nibabel as nib
    from nibabel.arrayproxy import ArrayProxy

    disk = nib.load(beta.path).dataobj  # shape, dtype and data offset of the file
    per_trial = int(np.prod(beta.spatial_shape)) * 2
    step = max(1, _BLOCK_BYTES // per_trial)
    # One open gzip stream for all blocks: each block continues where the last
    # ended, so the file is decoded once (reopening would re-decode from the start).
    with open(beta.path, "rb") as raw:
        stream = gzip.GzipFile(fileobj=raw) if beta.path.name.endswith(".gz") else raw
        # mmap=False: GzipFile.fileno() is the compressed file's descriptor.
        proxy = ArrayProxy(stream, (disk.shape, disk.dtype, disk.offset), mmap=False)
        for start in range(0, beta.n_trials, step):
            block = proxy[..., start : start + step]
            out[start : start + block.shape[3]] = block[mask].T
    out *= np.float32(1 / BETA_SCALE)


def _read_mgh(beta: BetaFile, mask: np.ndarray, out: np.ndarray) -> None:
    import nibabel as nib

    proxy = nib.load(beta.path).dataobj
    step = max(1, _BLOCK_BYTES // (beta.spatial_shape[0] * 4))
    for start in range(0, beta.n_trials, step):
        block = proxy[:, 0, 0, start : start + step]
        out[start : start + block.shape[1]] = block[mask].T


_READERS = {"hdf5": _read_hdf5, "nifti": _read_nifti, "mgh": _read_mgh}


def read_masked_betas(beta: BetaFile, mask: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out`` with the betas of the units in ``mask``, in float (volume: divided by 300).

    Parameters
    ----------
    beta : BetaFile
        The session's file (from :func:`read_beta_header`).
    mask : bool array of shape ``beta.spatial_shape``
        Units to read; columns of ``out`` follow ``numpy.nonzero(mask)`` order.
    out : float32 array of shape (beta.n_trials, mask.sum())
        Destination, e.g. a session's rows of the full output.
    """
    assert mask.shape == beta.spatial_shape and out.shape == (beta.n_trials, int(mask.sum()))
    try:
        _READERS[beta.kind](beta, mask, out)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise _bad_file(beta.path, exc) from exc
