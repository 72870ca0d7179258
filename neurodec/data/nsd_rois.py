"""NSD regions of interest: label volumes, fsaverage label surfaces and their names.

Label values follow NSD: -1 outside the atlas's coverage, 0 cortex without a
label, 1..K the labels named in ``<atlas>.mgz.ctab``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._checks import ensure_readable
from .specs import load_spec

__all__ = [
    "empty_nsd_roi_labels", "list_nsd_rois", "load_nsd_roi", "nsd_roi_paths", "read_ctab", "resolve_nsd_roi_mask",
]

HEMIS = ("lh", "rh")
SURFACE_SPACES = ("fsaverage",)


def read_ctab(path: str | os.PathLike) -> dict[int, str]:
    """Read a FreeSurfer colour table (``index name [r g b a]`` a line) as ``{index: name}``."""
    path = ensure_readable(path, "ROI colour table")
    names: dict[int, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            names[int(parts[0])] = parts[1]
        except (ValueError, IndexError):
            raise ValueError(f"{path}, line {number}: expected 'index name', got {line!r}.") from None
    return names


def list_nsd_rois(root: str | os.PathLike, subject: int, *, space: str = "func1pt8mm") -> list[str]:
    """Names of the ROI atlases present for a subject in ``space`` (fsaverage: the shared labels)."""
    spec = load_spec("nsd")
    if space in SURFACE_SPACES:
        found = spec.find("roi_surface_fsaverage", root, hemi="lh")
    else:
        found = spec.find("roi_volume", root, subject=subject, space=space)
    return sorted({fields["roi"] for fields, _ in found})


def _load_label_file(path: Path) -> np.ndarray:
    import nibabel as nib

    ensure_readable(path, "ROI file")
    try:
        data = np.asanyarray(nib.load(path).dataobj)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many kinds on bad files
        raise ValueError(f"ROI file {path} could not be read: {type(exc).__name__}: {exc}") from exc
    if not np.allclose(data, np.round(data)):
        raise ValueError(f"ROI file {path} should hold integer labels; it holds fractional values.")
    return np.round(data).astype(np.int64)


def _label_names(root: str | os.PathLike, subject: int, atlas: str, space: str) -> dict[int, str]:
    spec = load_spec("nsd")
    candidates = []
    if space in SURFACE_SPACES:
        candidates.append(spec.path("roi_ctab_fsaverage", root, roi=atlas))
    candidates.append(spec.path("roi_ctab", root, subject=subject, roi=atlas))
    for path in candidates:
        if path.is_file():
            return read_ctab(path)
    return {}


def nsd_roi_paths(root: str | os.PathLike, subject: int, roi: str, *, space: str = "func1pt8mm") -> list[Path]:
    """The label file(s) of ROI atlas ``roi``: [volume] or [lh, rh] on fsaverage (see :func:`load_nsd_roi`)."""
    spec = load_spec("nsd")
    hemi, _, base = roi.partition(".") if roi[:3] in ("lh.", "rh.") else ("", "", roi)
    if space in SURFACE_SPACES:
        return [spec.path("roi_surface_fsaverage", root, hemi=h, roi=base) for h in HEMIS]
    if hemi:
        return [spec.path("roi_volume_hemi", root, subject=subject, space=space, hemi=hemi, roi=base)]
    return [spec.path("roi_volume", root, subject=subject, space=space, roi=base)]


def load_nsd_roi(
    root: str | os.PathLike, subject: int, roi: str, *, space: str = "func1pt8mm"
) -> tuple[np.ndarray, dict[int, str]]:
    """Read one ROI atlas of a subject and its label names.

    Parameters
    ----------
    root : path-like
        NSD root.
    subject : int
        1-based subject number.
    roi : str
        Atlas name, e.g. "nsdgeneral", "floc-faces"; in volume spaces
        "lh.<atlas>" / "rh.<atlas>" read the one-hemisphere copies.
    space : {"func1pt8mm", "func1mm", "fsaverage"}

    Returns
    -------
    labels : int array of shape (X, Y, Z), or (n_vertices_lh + n_vertices_rh,) on fsaverage
        Label per voxel (vertex); fsaverage labels are left then right hemisphere.
    names : dict of int -> str
        Label names from the atlas's ``.mgz.ctab`` (fsaverage's own when
        present, else the subject's), ``{0: "Unknown", 1: ..., ...}``; empty
        when the atlas has no ctab.
    """
    base = roi.partition(".")[2] if roi[:3] in ("lh.", "rh.") else roi
    paths = nsd_roi_paths(root, subject, roi, space=space)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        known = list_nsd_rois(root, subject, space=space)
        close = difflib.get_close_matches(base, known, n=3)
        raise ValueError(
            f"Unknown NSD ROI {roi!r} for subject {subject} in space {space!r}: {missing[0]} does not exist. "
            f"Atlases present: {known}." + (f" Close matches: {close}." if close else "")
        )
    labels = [_load_label_file(p) for p in paths]
    data = np.concatenate([lab.reshape(-1) for lab in labels]) if space in SURFACE_SPACES else labels[0]
    return data, _label_names(root, subject, base, space)


def resolve_nsd_roi_mask(
    root: str | os.PathLike,
    subject: int,
    roi: str | tuple[str, str | Sequence[str]] | np.ndarray,
    *,
    space: str,
    shape: tuple[int, ...],
) -> np.ndarray:
    """Boolean mask of the units ``roi`` selects, array of shape ``shape``.

    ``roi`` is an atlas name (units with a label > 0), an ``(atlas, labels)``
    pair of label names, or a boolean mask of shape ``shape``.

    Raises
    ------
    ValueError
        When the atlas or a label is unknown, shapes disagree, or the
        selection holds no unit (naming the atlas file and the labels that
        do occur in it): an empty ROI is never returned as 0 units.
    """
    if isinstance(roi, np.ndarray):
        if roi.dtype != bool or roi.shape != tuple(shape):
            raise ValueError(
                f"A mask given as 'roi' must be a boolean array of shape {tuple(shape)} (the {space} units). "
                f"Got dtype {roi.dtype} and shape {roi.shape} instead."
            )
        if not roi.any():
            raise ValueError(f"The boolean mask given as 'roi' selects no unit (all {roi.size} values are False).")
        return roi
    atlas, wanted = (roi, None) if isinstance(roi, str) else roi
    labels, names = load_nsd_roi(root, subject, atlas, space=space)
    if labels.shape != tuple(shape):
        raise ValueError(f"ROI {atlas!r} has shape {labels.shape}, but the betas in {space!r} have {tuple(shape)}.")
    where = " and ".join(str(p) for p in nsd_roi_paths(root, subject, atlas, space=space))
    present = sorted(int(v) for v in np.unique(labels) if v > 0)
    if wanted is None:
        if not present:
            raise ValueError(
                f"The 'roi' {atlas!r} selects no unit: {where} has no label > 0 (values found: "
                f"{sorted(int(v) for v in np.unique(labels))}; -1 is outside the atlas, 0 unlabelled)."
            )
        return labels > 0
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    if not names:
        raise ValueError(f"ROI atlas {atlas!r} has no .mgz.ctab file, so labels cannot be selected by name.")
    index_of = {name: index for index, name in names.items() if index > 0}
    unknown = [name for name in wanted if name not in index_of]
    if unknown:
        close = sorted({m for name in unknown for m in difflib.get_close_matches(name, list(index_of), n=3)})
        raise ValueError(
            f"Unknown label(s) {unknown} in NSD ROI atlas {atlas!r}; its labels are {list(index_of)}."
            + (f" Close matches: {close}." if close else "")
        )
    mask = np.isin(labels, [index_of[name] for name in wanted])
    if not mask.any():
        raise ValueError(
            f"The 'roi' ({atlas!r}, {wanted}) selects no unit: no voxel of {where} carries label(s) "
            f"{[index_of[n] for n in wanted]}. Labels present: {[names.get(v, str(v)) for v in present]}."
        )
    return mask


def empty_nsd_roi_labels(labels: np.ndarray, names: dict[int, str]) -> list[str]:
    """Names of the labels 1..K that the colour table lists but no unit of ``labels`` carries."""
    present = set(np.unique(labels).tolist())
    return [name for index, name in sorted(names.items()) if index > 0 and index not in present]
