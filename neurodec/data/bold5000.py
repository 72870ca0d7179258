"""Loader of BOLD5000 single-trial responses (Chang et al. 2019).

Three sources of responses, all described by ``data_specs/bold5000.yaml``:

- ``"glmsingle"``: the GLMsingle release 2.0 betas, one 4-D NIfTI per session,
  with ``CSI{N}_imgnames.txt`` giving each trial's image; masked to the brain
  mask, to ROI masks (OpenNeuro ds001499 ``derivatives/spm``) or to any mask.
- ``"roi-betas"``: the same betas pre-extracted per ROI (``.npy``).
- ``"release1"``: the release-1 ROI responses (``.mat``, one per TR choice),
  with ``CSI0{N}_stim_lists.txt`` whose ``rep_`` prefix marks the repeated set.

Point ``root`` at one folder into which these releases are unpacked side by
side (see the spec); only the files of the chosen source are needed.
BOLD5000 has no official test split: by default the images presented more than
once (the repeated set) form the "test" split, as the field does.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from .._logging import progress
from ._checks import as_integer_ids, ensure_listable, ensure_readable, raise_if_nonfinite
from .bold5000_rois import add_roi_columns, find_roi_masks, resolve_rois
from .responses import Responses
from .specs import DatasetSpec, load_spec

__all__ = ["load_bold5000"]

logger = logging.getLogger(__name__)

SUBJECTS = (1, 2, 3, 4)
TRS = (1, 2, 3, 4, 5, 34)
SOURCES = ("glmsingle", "roi-betas", "release1")
REP_PREFIX = "rep_"
#: Bytes of betas read at a time from a session file (whole trials, float32).
CHUNK_BYTES = 16 << 20


def _spec() -> DatasetSpec:
    return load_spec("bold5000")


def _check_subject(root: Path, subject: int) -> None:
    if isinstance(subject, bool) or not isinstance(subject, (int, np.integer)) or subject not in SUBJECTS:
        raise ValueError(
            f"The 'subject' parameter of load_bold5000 must be one of {SUBJECTS}. Got {subject!r} instead."
        )
    if not root.is_dir():
        raise FileNotFoundError(f"BOLD5000 root {root} does not exist or is not a folder.")


def _read_lines(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"BOLD5000 {what} file {path} does not exist.")
    ensure_readable(path, f"BOLD5000 {what} file")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError(f"BOLD5000 {what} file {path} is empty.")
    return lines


def _load_nifti(path: Path, what: str, ndim: int, *, keep_file_open: bool = False) -> Any:
    import nibabel as nib

    if not path.is_file():
        raise FileNotFoundError(f"BOLD5000 {what} file {path} does not exist.")
    ensure_readable(path, f"BOLD5000 {what} file")
    try:
        img = nib.load(path, keep_file_open=keep_file_open)
    except Exception as exc:  # noqa: BLE001 - any failure to parse means a corrupt file
        raise ValueError(f"BOLD5000 {what} file {path} could not be read as NIfTI: {exc}") from exc
    if len(img.shape) != ndim:
        raise ValueError(f"BOLD5000 {what} file {path} must be {ndim}-D. Got shape {img.shape}.")
    return img


def _read_volume(img: Any, path: Path, index: Any = Ellipsis) -> np.ndarray:
    try:
        return np.asarray(img.dataobj[index], dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - truncated data surface only when read
        raise ValueError(f"BOLD5000 file {path} could not be read (truncated or corrupt?): {exc}") from exc


def _masked_trials(img: Any, path: Path, voxels: np.ndarray, out: np.ndarray) -> None:
    """Write the betas of the ``voxels`` of a 4-D image into ``out``, of shape (n_trials, n_voxels).

    Trials are read in chunks of about ``CHUNK_BYTES``: a NIfTI stores each trial's
    volume contiguously, so with the file kept open every chunk continues the
    (gzip) stream where the previous one stopped, and the session is never
    held whole in memory.
    """
    n_trials = img.shape[3]
    chunk = max(1, CHUNK_BYTES // (4 * voxels.size))
    for start in range(0, n_trials, chunk):
        block = _read_volume(img, path, (Ellipsis, slice(start, start + chunk)))
        out[start : start + chunk] = block[voxels].T


def _trials(raw_names: Sequence[str], test_images: str | Sequence[str] | None) -> pd.DataFrame:
    """Trial table of a whole acquisition: names without ``rep_``, repeat index, split."""
    names = [n[len(REP_PREFIX) :] if n.startswith(REP_PREFIX) else n for n in raw_names]
    trials = pd.DataFrame({"stimulus_id": names, "trial_index": np.arange(len(names)), "session": -1, "run": -1})
    trials["repeat"] = trials.groupby("stimulus_id").cumcount()
    trials["n_presentations"] = trials["stimulus_id"].map(trials["stimulus_id"].value_counts()).astype(int)
    trials["rep_prefix"] = [n.startswith(REP_PREFIX) for n in raw_names]
    if isinstance(test_images, str) and test_images == "repeated":
        test = trials["n_presentations"] > 1
    elif test_images is None:
        test = pd.Series(False, index=trials.index)
    elif isinstance(test_images, str):
        raise ValueError(f"'test_images' must be 'repeated', None or a sequence of image names. Got {test_images!r}.")
    else:
        wanted = set(test_images)
        unknown = sorted(wanted - set(names))
        if unknown:
            raise ValueError(f"{len(unknown)} 'test_images' were never presented: {unknown[:10]}.")
        test = trials["stimulus_id"].isin(wanted)
    trials["split"] = np.where(test, "test", "train")
    return trials


def _check_rows(arrays: Sequence[np.ndarray], places: Sequence[Path], n_trials: int, order_path: Path) -> None:
    for array, place in zip(arrays, places):
        if array.ndim != 2 or array.shape[0] != n_trials:
            raise ValueError(
                f"BOLD5000 ROI responses {place} must have shape (n_trials, n_voxels) with {n_trials} rows "
                f"(the trials listed in {order_path}). Got shape {array.shape}."
            )


def _roi_betas(
    root: Path, subject: int, rois: list[str], verbose: bool | int
) -> tuple[list[np.ndarray], list[str], Path]:
    """GLMsingle ROI betas (one array per ROI) and the image names giving their row order."""
    spec = _spec()
    order_path = spec.path("imgnames", root, subject=subject)
    raw = _read_lines(order_path, "image names")
    paths = [spec.path("roi_betas", root, subject=subject, roi_name=name) for name in rois]
    arrays = []
    for path in progress(paths, verbose=verbose, desc=f"BOLD5000 CSI{subject} ROI betas", unit="roi"):
        if not path.is_file():
            raise FileNotFoundError(f"BOLD5000 ROI betas file {path} does not exist.")
        ensure_readable(path, "BOLD5000 ROI betas file")
        try:
            arrays.append(np.load(path, allow_pickle=False))
        except Exception as exc:  # noqa: BLE001 - any failure to parse means a corrupt file
            raise ValueError(f"BOLD5000 ROI betas file {path} could not be read as .npy: {exc}") from exc
    _check_rows(arrays, paths, len(raw), order_path)
    for array, path in zip(arrays, paths):
        raise_if_nonfinite(np.asarray(array), path, unit="voxel")
    return arrays, raw, order_path


def _release1(root: Path, subject: int, rois: list[str], tr: int) -> tuple[list[np.ndarray], list[str], Path]:
    """Release-1 ROI responses (one array per ROI) and the stimulus list giving their row order."""
    import scipy.io

    if tr not in TRS:
        raise ValueError(f"The 'tr' parameter of load_bold5000 must be one of {TRS}. Got {tr!r} instead.")
    spec = _spec()
    order_path = spec.path("release1_stim_list", root, subject=subject)
    raw = _read_lines(order_path, "stimulus list")
    path = spec.path("release1_rois", root, subject=subject, tr=tr)
    if not path.is_file():
        raise FileNotFoundError(f"BOLD5000 release-1 ROI file {path} does not exist.")
    ensure_readable(path, "BOLD5000 release-1 ROI file")
    try:
        mat = scipy.io.loadmat(path, variable_names=rois)
    except Exception as exc:  # noqa: BLE001 - any failure to parse means a corrupt file
        raise ValueError(f"BOLD5000 release-1 ROI file {path} could not be read as MATLAB: {exc}") from exc
    missing = [n for n in rois if n not in mat]
    if missing:
        present = sorted(n for n, _, _ in scipy.io.whosmat(path))
        raise ValueError(f"BOLD5000 release-1 ROI file {path} lacks variable(s) {missing}; it holds {present}.")
    arrays = [mat[n] for n in rois]
    _check_rows(arrays, [Path(f"{path}:{n}") for n in rois], len(raw), order_path)
    for array, name in zip(arrays, rois):
        raise_if_nonfinite(np.asarray(array, dtype=np.float64), f"{path} (variable {name})", unit="voxel")
    return arrays, raw, order_path


def _sessions(root: Path, subject: int) -> tuple[dict[int, tuple[Any, Path]], list[str]]:
    """Beta images by session and the image names, checked to hold the same number of trials.

    The sessions present must run from 1 without a gap: trials are matched to
    the image names by position, so a missing session would shift every later
    trial's image.
    """
    spec = _spec()
    example = spec.path("glmsingle_betas", root, subject=subject, session=1)
    ensure_listable(example.parent, "BOLD5000 GLMsingle folder")
    found = spec.find("glmsingle_betas", root, subject=subject)
    if not found:
        raise FileNotFoundError(f"No GLMsingle beta file matches {example} (any session).")
    present = [fields["session"] for fields, _ in found]
    gaps = [s for s in range(1, max(present) + 1) if s not in present]
    if gaps:
        missing = spec.path("glmsingle_betas", root, subject=subject, session=gaps[0])
        raise FileNotFoundError(
            f"CSI{subject}: GLMsingle session(s) {gaps} have no beta file (looked for {missing}), but later "
            f"session(s) do (present: {sorted(present)}). The image names in CSI{subject}_imgnames.txt are matched "
            "to trials by position, so no session may be missing before the last one."
        )
    imgnames_path = spec.path("imgnames", root, subject=subject)
    raw = _read_lines(imgnames_path, "image names")
    images = {
        fields["session"]: (_load_nifti(path, "GLMsingle betas", 4, keep_file_open=True), path) for fields, path in found
    }
    counts = {s: img.shape[3] for s, (img, _) in images.items()}
    if sum(counts.values()) != len(raw):
        raise ValueError(
            f"BOLD5000 image names file {imgnames_path} lists {len(raw)} trials but the {len(counts)} GLMsingle "
            f"beta files hold {sum(counts.values())} (trials per session: {counts})."
        )
    return images, raw


def _voxel_masks(
    root: Path, subject: int, rois: str | Sequence[str] | None, mask: str | Path, volume_shape: tuple[int, ...]
) -> tuple[np.ndarray, dict[str, np.ndarray], str]:
    """The selected voxels, each labelling ROI's volume, and a description of the mask.

    An ROI named in ``rois`` whose mask file holds no voxel is an error; one
    found with ``rois=None`` (labelling only) is skipped with a warning naming
    the file. A selection of no voxel at all is an error.
    """
    spec = _spec()
    roi_paths = find_roi_masks(root, subject)
    names = list(roi_paths) if rois is None else resolve_rois(rois)
    absent = [n for n in names if n not in roi_paths]
    if absent:
        example = spec.path("roi_masks", root, subject=subject, roi_name=absent[0])
        raise FileNotFoundError(f"No ROI mask for {absent} of CSI{subject} (looked for {example}).")
    sources = {n: roi_paths[n] for n in names}
    if isinstance(mask, str) and mask == "rois":
        if not names:
            raise ValueError("mask='rois' needs at least one ROI mask; none was found or selected.")
        described = "union of the ROI masks " + ", ".join(names)
    else:
        is_brain = isinstance(mask, str) and mask == "brain"
        mask_path = spec.path("brain_mask", root, subject=subject) if is_brain else Path(mask)
        sources[""] = mask_path
        described = str(mask_path)
    volumes = {n: _read_volume(_load_nifti(path, "mask", 3), path) > 0 for n, path in sources.items()}
    for name, volume in volumes.items():
        if volume.shape != volume_shape:
            raise ValueError(
                f"Mask {sources[name]} has shape {volume.shape} but the betas' volumes are {volume_shape}."
            )
    for name in [n for n in names if not volumes[n].any()]:
        if rois is not None:
            raise ValueError(
                f"The 'rois' parameter of load_bold5000 selects {name}, but its mask {sources[name]} holds no voxel "
                "(every value is 0)."
            )
        warnings.warn(
            f"BOLD5000 ROI mask {sources[name]} holds no voxel; its column roi:{name[2:]} labels no unit as {name}. "
            "Replace the file, or pass rois=[...] without it to silence this warning.",
            UserWarning,
            stacklevel=4,
        )
    voxels = volumes.pop("") if "" in volumes else np.logical_or.reduce(list(volumes.values()))
    if not voxels.any():
        raise ValueError(f"The voxel selection of load_bold5000 (mask={described}) holds no voxel.")
    return voxels, volumes, described


def _glmsingle(
    root: Path,
    subject: int,
    *,
    sessions: Sequence[int] | None,
    rois: str | Sequence[str] | None,
    mask: str | Path,
    test_images: str | Sequence[str] | None,
    verbose: bool | int,
) -> Responses:
    images, raw = _sessions(root, subject)
    counts = {s: img.shape[3] for s, (img, _) in images.items()}
    trials = _trials(raw, test_images)
    trials["session"] = np.repeat(list(counts), list(counts.values()))
    sessions = list(counts) if sessions is None else as_integer_ids(sessions, "'sessions' parameter of load_bold5000")
    unknown = [s for s in sessions if s not in counts]
    if len(set(sessions)) != len(sessions) or not sessions:
        raise ValueError(f"'sessions' must be distinct session numbers. Got {sessions}.")
    if unknown:
        raise ValueError(f"Session(s) {unknown} of CSI{subject} have no GLMsingle beta file; present: {list(counts)}.")
    first_img, first_path = images[sessions[0]]
    volume_shape = tuple(first_img.shape[:3])
    # The release's beta files are reported to carry a wrong affine: the brain mask's is preferred.
    affine_path = _spec().path("brain_mask", root, subject=subject)
    if affine_path.is_file():
        affine = np.asarray(_load_nifti(affine_path, "brain mask", 3).affine)
    else:
        affine_path, affine = first_path, np.asarray(first_img.affine)
    voxels, labelled, described = _voxel_masks(root, subject, rois, mask, volume_shape)

    data = np.empty((sum(counts[s] for s in sessions), int(voxels.sum())), dtype=np.float32)
    differing, row = [], 0
    for session in progress(sessions, verbose=verbose, desc=f"BOLD5000 CSI{subject} sessions", unit="session"):
        img, path = images[session]
        if tuple(img.shape[:3]) != volume_shape:
            raise ValueError(f"GLMsingle betas {path} have volume shape {img.shape[:3]}, not {volume_shape}.")
        if not np.allclose(img.affine, affine, atol=1e-4):
            differing.append(path.name)
        _masked_trials(img, path, voxels, data[row : row + counts[session]])
        raise_if_nonfinite(data[row : row + counts[session]], path, unit="voxel")
        row += counts[session]
    if differing:
        warnings.warn(
            f"The affine of {len(differing)} GLMsingle beta file(s) (e.g. {differing[0]}) differs from that of "
            f"{affine_path.name}; using the affine of {affine_path.name} (info['affine_source']). The beta files' "
            "affine is reported to be wrong in the release.",
            UserWarning,
            stacklevel=3,
        )
    logger.info(
        "BOLD5000 CSI%d: %d trials x %d voxels from %d session(s); affine of %s",
        subject, data.shape[0], data.shape[1], len(sessions), affine_path.name,
    )
    ijk = np.argwhere(voxels)
    units = pd.DataFrame({"i": ijk[:, 0], "j": ijk[:, 1], "k": ijk[:, 2]})
    add_roi_columns(units, {n: volume[voxels] for n, volume in labelled.items()})
    return Responses(
        data=data,
        trials=pd.concat([trials[trials["session"] == s] for s in sessions]),
        units=units,
        subject=f"CSI{subject}",
        modality="fmri",
        space="func",
        info={
            "dataset": "bold5000",
            "source": "glmsingle",
            "root": str(root),
            "affine": affine,
            "affine_source": str(affine_path),
            "volume_shape": volume_shape,
            "mask": described,
            "stimulus_id": "stimulus image file name",
        },
    )


def load_bold5000(
    root: str | Path,
    subject: int = 1,
    *,
    source: Literal["glmsingle", "roi-betas", "release1"] = "glmsingle",
    sessions: Sequence[int] | None = None,
    rois: str | Sequence[str] | None = None,
    tr: int = 34,
    mask: str | Path = "brain",
    test_images: str | Sequence[str] | None = "repeated",
    verbose: bool | int = True,
) -> Responses:
    """Load one subject's BOLD5000 single-trial responses.

    Parameters
    ----------
    root : path-like
        Folder holding the unpacked releases (layout: ``data_specs/bold5000.yaml``).
    subject : int
        Subject number, 1..4 (CSI1..CSI4).
    source : {"glmsingle", "roi-betas", "release1"}
        Which responses: GLMsingle volume betas, GLMsingle ROI betas, or
        release-1 ROI responses.
    sessions : sequence of int, optional
        1-based sessions to load (``"glmsingle"`` only); default all.
    rois : str or sequence of str, optional
        ROI names ("LHPPA", or "PPA" for both hemispheres). For the ROI
        sources, the ROIs to load (default all ten). For ``"glmsingle"``, the
        ROI masks (``derivatives/spm``) to label voxels with (default every
        mask found, none if there are none).
    tr : {1, 2, 3, 4, 5, 34}
        Release-1 responses: the TR after onset, or 34 for the mean of TRs 3 and 4.
    mask : "brain", "rois" or path-like
        Voxels of ``"glmsingle"``: the brain mask, the union of the ``rois``
        masks, or any 3-D NIfTI in the betas' space (nonzero = kept).
    test_images : "repeated", None or sequence of str
        BOLD5000 has no official test split. "repeated" puts the images
        presented more than once in the "test" split (the field's usual
        choice); None puts every trial in "train"; a sequence names the test
        images.
    verbose : bool or int
        Show progress bars.

    Returns
    -------
    Responses
        ``data`` of shape (n_trials, n_units), float32, trials in acquisition
        order. ``trials``: ``stimulus_id`` (image file name, ``rep_`` prefix
        stripped), ``trial_index`` (0-based over the subject's whole list),
        ``session`` (1-based; -1 when the source does not say), ``run`` (-1:
        not in these files), ``repeat`` (0-based presentation index of the
        image), ``n_presentations``, ``rep_prefix`` (release 1: the list marked
        it ``rep_``), ``split``. ``units``: voxel indices ``i, j, k``
        (``"glmsingle"``) or ``roi, hemi, voxel`` (ROI sources), plus
        ``roi:<ROI>`` columns holding the hemisphere-prefixed name of units in
        that ROI ("" elsewhere).

    Notes
    -----
    The GLMsingle betas' affine is reported to be wrong (UNCONFIRMED); the
    brain mask's affine is used whenever the mask file exists, with a
    warning when they differ, and ``info["affine_source"]`` says which file
    it came from.

    Checks, so that no trial is dropped or mislabelled silently: the GLMsingle
    sessions present run from 1 without a gap and their trials add up to the
    lines of ``CSI{N}_imgnames.txt``; ROI responses have one row per line of
    their trial list; every value read is finite (NaN or infinite betas raise
    ValueError naming the file); a file or folder that exists but may not be
    read raises PermissionError naming it.

    Examples
    --------
    >>> import tempfile
    >>> from neurodec.data.fixtures.bold5000 import make_bold5000_miniature
    >>> root = tempfile.mkdtemp()
    >>> _ = make_bold5000_miniature(root, random_state=0)
    >>> responses = load_bold5000(root, 1, source="release1", rois="PPA", verbose=False)
    >>> responses.shape, sorted(responses.trials["split"].unique())
    ((12, 8), ['test', 'train'])
    """
    root = Path(root)
    _check_subject(root, subject)
    if source not in SOURCES:
        raise ValueError(f"The 'source' parameter of load_bold5000 must be one of {SOURCES}. Got {source!r} instead.")
    if source == "glmsingle":
        return _glmsingle(
            root, subject, sessions=sessions, rois=rois, mask=mask, test_images=test_images, verbose=verbose
        )
    if sessions is not None:
        raise ValueError(f"'sessions' selects GLMsingle sessions; source={source!r} has no session information.")
    names = resolve_rois(rois)
    if source == "roi-betas":
        arrays, raw, order_path = _roi_betas(root, subject, names, verbose)
    else:
        arrays, raw, order_path = _release1(root, subject, names, tr)
    roi = np.repeat(names, [a.shape[1] for a in arrays])
    units = pd.DataFrame(
        {
            "roi": roi,
            "hemi": [n[:2].lower() for n in roi],
            "voxel": np.concatenate([np.arange(a.shape[1]) for a in arrays]),
        }
    )
    add_roi_columns(units, {n: (units["roi"] == n).to_numpy() for n in names})
    info = {"dataset": "bold5000", "source": source, "root": str(root), "trial_order": str(order_path)}
    if source == "release1":
        info["tr"] = tr
    return Responses(
        data=np.concatenate([np.asarray(a, dtype=np.float32) for a in arrays], axis=1),
        trials=_trials(raw, test_images),
        units=units,
        subject=f"CSI{subject}",
        modality="fmri",
        space="func",
        info=info,
    )
