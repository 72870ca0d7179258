"""The Natural Scenes Dataset (Allen et al. 2022): single-trial betas and stimuli.

:func:`load_nsd` returns a subject's betas as :class:`~neurodec.data.Responses`
(volume or fsaverage, any beta version, HDF5 or NIfTI, masked to an ROI while
reading); :func:`load_nsd_stimuli` returns the 73k images (read lazily from
``nsd_stimuli.hdf5``) as :class:`~neurodec.data.Stimuli`, with COCO captions.
The layout is ``data_specs/nsd.yaml``; the design, ROI, beta and stimulus
readers live in :mod:`.nsd_design`, :mod:`.nsd_rois`, :mod:`.nsd_betas` and
:mod:`.nsd_stimuli`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .._logging import get_logger, progress
from ._checks import raise_if_nonfinite
from .nsd_betas import BetaFile, read_masked_betas
from .nsd_design import load_nsd_behavior, load_nsd_design
from .nsd_rois import HEMIS, SURFACE_SPACES, list_nsd_rois, load_nsd_roi, resolve_nsd_roi_mask
from .responses import Responses
from .nsd_sessions import nsd_session_trials, plan_nsd_sessions
from .nsd_stimuli import load_nsd_stimuli
from .specs import load_spec

__all__ = ["NSD_BETA_VERSIONS", "NSD_DEFAULT_ROIS", "NSD_SPACES", "load_nsd", "load_nsd_stimuli"]

logger = get_logger(__name__)

NSD_SPACES = ("func1pt8mm", "func1mm", "fsaverage")
NSD_BETA_VERSIONS = ("betas_fithrf_GLMdenoise_RR", "betas_fithrf", "betas_assumehrf")
#: Atlases attached as ``roi:<atlas>`` unit columns when ``rois=None`` (those present on disk).
NSD_DEFAULT_ROIS = (
    "nsdgeneral", "prf-visualrois", "prf-eccrois", "floc-faces", "floc-places", "floc-bodies", "floc-words", "streams",
)

RoiArg = str | tuple[str, str | Sequence[str]] | np.ndarray | None


def _check_choice(value: str, name: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"The {name!r} parameter of load_nsd must be one of {list(choices)}. Got {value!r} instead.")


def _zscore_columns(block: np.ndarray) -> None:
    """Z-score each column of ``block`` in place over its rows; constant columns become 0."""
    step = max(1, 2**22 // max(1, block.shape[0]))
    for start in range(0, block.shape[1], step):
        part = block[:, start : start + step]
        mean = part.mean(axis=0, dtype=np.float64)
        std = part.std(axis=0, dtype=np.float64)
        part -= mean.astype(block.dtype)
        part *= np.where(std > 0, 1 / np.where(std > 0, std, 1), 0).astype(block.dtype)


def _read_ncsnr(root: Path, subject: int, space: str, beta_version: str, mask: np.ndarray) -> np.ndarray | None:
    import nibabel as nib

    spec = load_spec("nsd")
    if space in SURFACE_SPACES:
        paths = [spec.path("ncsnr_surface", root, subject=subject, beta_version=beta_version, hemi=h) for h in HEMIS]
    else:
        paths = [spec.path("ncsnr_volume", root, subject=subject, space=space, beta_version=beta_version)]
    if not all(p.is_file() for p in paths):
        logger.info("No ncsnr file in %s; the responses get no noise ceiling.", paths[0].parent)
        return None
    values = [np.asarray(nib.load(p).get_fdata(dtype=np.float32)) for p in paths]
    data = np.concatenate([v.reshape(-1) for v in values]) if space in SURFACE_SPACES else values[0]
    if data.shape != mask.shape:
        raise ValueError(f"ncsnr file {paths[0]} has shape {data.shape}; the betas have {mask.shape}.")
    return data[mask]


def _roi_columns(
    root: Path, subject: int, space: str, mask: np.ndarray, rois: Sequence[str] | None
) -> dict[str, np.ndarray]:
    if rois is None:
        present = set(list_nsd_rois(root, subject, space=space))
        rois = [r for r in NSD_DEFAULT_ROIS if r in present]
    columns = {}
    for atlas in rois:
        labels, names = load_nsd_roi(root, subject, atlas, space=space)
        if labels.shape != mask.shape:
            raise ValueError(f"ROI {atlas!r} has shape {labels.shape}; the betas in {space!r} have {mask.shape}.")
        values = np.clip(labels[mask], 0, None)
        lookup = np.array(["", *(names.get(v, str(v)) for v in range(1, int(values.max(initial=0)) + 1))], dtype=object)
        named = lookup[values]
        # Categories in the ctab's label order (V1v, V1d, ... not alphabetical), so
        # tables and figures list ROIs the way NSD numbers them.
        order = [names[k] for k in sorted(names) if k > 0]
        order += sorted(set(named) - set(order))
        columns[f"roi:{atlas}"] = pd.Categorical(named, categories=order)
    return columns


def _volume_affine(root: Path, subject: int, space: str, beta_version: str, beta: BetaFile) -> np.ndarray | None:
    """The volume's affine: from the betas' NIfTI header, else a NIfTI beside it (HDF5 has none)."""
    import nibabel as nib

    if beta.affine is not None:
        return beta.affine
    spec = load_spec("nsd")
    fields = dict(subject=subject, space=space, beta_version=beta_version)
    candidates = [beta.path.with_name(beta.path.name.replace(".hdf5", ".nii.gz")),
                  spec.path("ncsnr_volume", root, **fields)]
    candidates += [p for _, p in spec.find("roi_volume", root, **fields)]
    for path in candidates:
        if path.is_file():
            return np.asarray(nib.load(path).affine)
    logger.info("No NIfTI file beside %s gives the volume's affine; info['affine'] is None.", beta.path)
    return None


def load_nsd(
    root: str | os.PathLike,
    subject: int = 1,
    *,
    space: str = "func1pt8mm",
    beta_version: str = "betas_fithrf_GLMdenoise_RR",
    sessions: Sequence[int] | None = None,
    roi: RoiArg = None,
    format: str = "auto",
    zscore_sessions: bool = False,
    rois: Sequence[str] | None = None,
    verbose: bool | int = True,
) -> Responses:
    """Load one NSD subject's single-trial betas.

    Parameters
    ----------
    root : path-like
        NSD root (holding ``nsddata/`` and ``nsddata_betas/``).
    subject : int
        1-based subject number (1..8 in the release).
    space : {"func1pt8mm", "func1mm", "fsaverage"}
    beta_version : {"betas_fithrf_GLMdenoise_RR", "betas_fithrf", "betas_assumehrf"}
    sessions : sequence of int, optional
        1-based sessions to load, in this order; default every session present.
    roi : str, (str, str or list of str), bool array, optional
        Units to load: an atlas name ("nsdgeneral": label > 0), an
        ``(atlas, labels)`` pair (``("floc-faces", ["FFA-1", "FFA-2"])``), or a
        boolean mask of shape (X, Y, Z) (volume) or (n_vertices_lh +
        n_vertices_rh,) (fsaverage). Default: every voxel / vertex.
    format : {"auto", "hdf5", "nifti"}
        Volume file format; "auto" reads the HDF5 twin when present (fast masked
        reads) and the NIfTI otherwise.
    zscore_sessions : bool
        Z-score every unit within each session (constant units become 0).
    rois : sequence of str, optional
        Atlases attached as ``roi:<atlas>`` unit columns of label names
        ("" for unlabelled units). Default: those of :data:`NSD_DEFAULT_ROIS`
        present; a name given here must exist.
    verbose : bool or int
        Show a progress bar over sessions.

    Returns
    -------
    Responses
        ``data`` float32 array of shape (n_trials, n_units) in percent signal
        change (volume int16 values divided by 300; surface values as stored).
        ``trials``: ``stimulus_id`` (0-based 73k id), ``session``, ``run``
        (behaviour file's RUN, else the design's ``stimpattern``, else -1),
        ``repeat`` (0-based presentation of that image to this subject, over
        the whole design), ``split`` ("test" for shared1000 images),
        ``trial_index`` (0-based global trial), ``trial_in_session``,
        ``shared``. ``units``: ``i, j, k`` (volume) or ``hemi, vertex``
        (surface), ``roi:<atlas>`` columns and ``ncsnr`` when present.
        ``info``: ``affine``, ``volume_shape``, ``dataset``, ``beta_version``,
        ``root``, ``files``.

    Notes
    -----
    Only the masked units are read: at any time the loader holds the output
    plus one slab of one session's file.

    Nothing is dropped, reordered or labelled by guesswork
    (:func:`~neurodec.data.nsd_sessions.plan_nsd_sessions`, shared with
    ``neurodec check-data``):

    - with ``sessions=None`` the sessions present must run from 1 without a
      gap; a session missing in the middle is an error (select the others
      with ``sessions=``);
    - each session's trial count is cross-checked between the design's
      ``stimpattern``, the behaviour file and the beta file, and the
      behaviour file's 73KID column against the design's image of each trial;
    - without ``stimpattern`` and behaviour file, sessions are placed by
      counting earlier sessions' trials, which is refused unless every beta
      file holds the same number of trials;
    - an HDF5 file written in (X, Y, Z, n_trials) order is named as transposed;
    - an ``roi`` that selects no unit is an error, and so are NaN or infinite
      betas among the units read (NSD's betas are finite: voxels outside the
      brain are 0);
    - unreadable files and folders raise :class:`PermissionError` naming them.

    Raises
    ------
    FileNotFoundError
        Missing design, beta file or session (see above).
    PermissionError
        A file or folder that exists but may not be read.
    ValueError
        Bad arguments, malformed files, disagreeing trial counts, an empty
        ROI selection, non-finite betas.
    """
    _check_choice(space, "space", NSD_SPACES)
    _check_choice(beta_version, "beta_version", NSD_BETA_VERSIONS)
    _check_choice(format, "format", ("auto", "hdf5", "nifti"))
    root = Path(root)
    design = load_nsd_design(root)
    design.check_subject(subject)
    spec = load_spec("nsd")
    behavior = load_nsd_behavior(root, subject) if spec.path("behavior", root, subject=subject).is_file() else None
    plan = plan_nsd_sessions(
        root, subject, space=space, beta_version=beta_version, fmt=format, sessions=sessions, design=design,
        behavior=behavior,
    )
    files = plan.files
    trials = nsd_session_trials(design, subject, plan, behavior)

    first = next(iter(files.values()))
    surface = space in SURFACE_SPACES
    shape = (sum(b.spatial_shape[0] for b in first),) if surface else first[0].spatial_shape
    if roi is None:
        mask = np.ones(shape, dtype=bool)
    else:
        mask = resolve_nsd_roi_mask(root, subject, roi, space=space, shape=shape)
    if surface:
        n_lh = first[0].spatial_shape[0]
        hemi_masks = [mask[:n_lh], mask[n_lh:]]
        units = pd.DataFrame({"hemi": np.repeat(HEMIS, [m.sum() for m in hemi_masks]),
                              "vertex": np.concatenate([np.flatnonzero(m) for m in hemi_masks])})
    else:
        units = pd.DataFrame(np.argwhere(mask), columns=["i", "j", "k"])
    for column, values in _roi_columns(root, subject, space, mask, rois).items():
        units[column] = values
    ncsnr = _read_ncsnr(root, subject, space, beta_version, mask)
    if ncsnr is not None:
        units["ncsnr"] = ncsnr

    data = np.empty((len(trials), len(units)), dtype=np.float32)
    row = 0
    for s in progress(files, verbose=verbose, desc=f"NSD subj{subject:02d} sessions", unit="session"):
        block = data[row : row + files[s][0].n_trials]
        if surface:
            split = int(hemi_masks[0].sum())
            read_masked_betas(files[s][0], hemi_masks[0], block[:, :split])
            read_masked_betas(files[s][1], hemi_masks[1], block[:, split:])
            raise_if_nonfinite(block[:, :split], files[s][0].path, unit="vertex")
            raise_if_nonfinite(block[:, split:], files[s][1].path, unit="vertex")
        else:
            read_masked_betas(files[s][0], mask, block)
        if zscore_sessions:
            _zscore_columns(block)
        row += block.shape[0]
    info = {
        "dataset": "nsd",
        "beta_version": beta_version,
        "root": str(root),
        "files": [str(b.path) for betas in files.values() for b in betas],
        "zscore_sessions": zscore_sessions,
    }
    if surface:
        info["n_vertices"] = {h: b.spatial_shape[0] for h, b in zip(HEMIS, first)}
    else:
        info.update(affine=_volume_affine(root, subject, space, beta_version, first[0]), volume_shape=tuple(shape))
    return Responses(data, trials, units, subject=f"subj{subject:02d}", modality="fmri", space=space, info=info)
