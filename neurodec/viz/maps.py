"""Per-unit values written back into the subject's space: NIfTI volumes, MGH surfaces.

A :class:`~neurodec.data.Responses` keeps where each unit lives: voxel indices
``i, j, k`` (with ``info["affine"]`` and ``info["volume_shape"]``) for volume
data, ``hemi`` and ``vertex`` (with ``info["n_vertices"]``) for surface data.
These functions put one value per unit back at that place, NaN elsewhere.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._io import atomic_path

__all__ = [
    "find_underlay",
    "map_kind",
    "surface_from_units",
    "volume_from_units",
    "write_surface_maps",
    "write_volume_map",
]

_HEMIS = {"lh": "lh", "l": "lh", "left": "lh", "rh": "rh", "r": "rh", "right": "rh"}


def map_kind(units: pd.DataFrame) -> str:
    """"volume" when ``units`` has voxel indices i, j, k; "surface" when it has hemi and vertex.

    Raises
    ------
    ValueError
        When the units carry neither (e.g. MEG sensors), so no brain map can be written.
    """
    if {"i", "j", "k"} <= set(units.columns):
        return "volume"
    if {"hemi", "vertex"} <= set(units.columns):
        return "surface"
    raise ValueError(
        "Cannot place units in a brain space: 'units' needs voxel index columns i, j, k (volume) "
        f"or hemi and vertex (surface). Got columns {list(units.columns)}."
    )


def _values_2d(values: Any, n_units: int) -> tuple[np.ndarray, bool]:
    values = np.asarray(values, dtype=np.float32)
    single = values.ndim == 1
    values = values[None] if single else values
    if values.ndim != 2 or values.shape[1] != n_units:
        raise ValueError(
            f"'values' must have shape ({n_units},) or (n_maps, {n_units}) to match the units. "
            f"Got shape {np.shape(values)}."
        )
    return values, single


def volume_from_units(values: np.ndarray, units: pd.DataFrame, info: Mapping[str, Any]):
    """A NIfTI image holding ``values`` at the units' voxels and NaN elsewhere.

    Parameters
    ----------
    values : array of shape (n_units,) or (n_maps, n_units)
        One value per unit (several maps become a 4-D image).
    units : pandas.DataFrame
        With integer voxel index columns ``i, j, k``.
    info : mapping
        With ``affine`` (4 x 4) and ``volume_shape`` (3 ints) of the space.

    Returns
    -------
    nibabel.Nifti1Image
        float32, shape ``volume_shape`` (or ``volume_shape + (n_maps,)``).
    """
    import nibabel as nib

    map_kind(units)
    missing = [key for key in ("affine", "volume_shape") if key not in info]
    if missing:
        raise ValueError(f"Writing a volume map needs info[{missing[0]!r}] (the responses' space). It is missing.")
    shape = tuple(int(s) for s in info["volume_shape"])[:3]
    affine = np.asarray(info["affine"], dtype=np.float64)
    values, single = _values_2d(values, len(units))
    ijk = units[["i", "j", "k"]].to_numpy()
    outside = (ijk < 0) | (ijk >= np.array(shape))
    if outside.any():
        bad = int(np.flatnonzero(outside.any(axis=1))[0])
        raise ValueError(
            f"Unit {bad} has voxel index {tuple(ijk[bad])}, outside the volume of shape {shape}: "
            "the units and the space (info['volume_shape']) do not match."
        )
    volume = np.full(shape + (len(values),), np.nan, dtype=np.float32)
    volume[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = values.T
    image = nib.Nifti1Image(volume[..., 0] if single else volume, affine)
    image.header.set_xyzt_units("mm")
    return image


def _n_vertices(info: Mapping[str, Any], hemi: str) -> int:
    if "n_vertices" not in info:
        raise ValueError("Writing a surface map needs info['n_vertices'] (vertices per hemisphere). It is missing.")
    n = info["n_vertices"]
    return int(n[hemi]) if isinstance(n, Mapping) else int(n)


def surface_from_units(
    values: np.ndarray, units: pd.DataFrame, info: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Full-hemisphere arrays holding ``values`` at the units' vertices and NaN elsewhere.

    Parameters
    ----------
    values : array of shape (n_units,) or (n_maps, n_units)
    units : pandas.DataFrame
        With ``hemi`` ("lh"/"rh", "L"/"R" or "left"/"right") and ``vertex``.
    info : mapping
        With ``n_vertices``: an int (same for both hemispheres) or
        ``{"lh": n, "rh": n}``.

    Returns
    -------
    dict
        "lh" and/or "rh" -> array of shape (n_vertices,) or (n_vertices, n_maps).
    """
    map_kind(units)
    values, single = _values_2d(values, len(units))
    hemis = units["hemi"].astype(str).str.lower().map(_HEMIS)
    if hemis.isna().any():
        bad = units["hemi"][hemis.isna()].iloc[0]
        raise ValueError(f"Unknown hemisphere {bad!r} in units['hemi']; expected 'lh' or 'rh'.")
    out = {}
    for hemi in sorted(hemis.unique()):
        rows = (hemis == hemi).to_numpy()
        n_vertices = _n_vertices(info, hemi)
        vertex = units["vertex"].to_numpy()[rows].astype(np.int64)
        if vertex.min() < 0 or vertex.max() >= n_vertices:
            raise ValueError(
                f"Vertex {int(vertex.max())} of hemisphere {hemi} is outside its {n_vertices} vertices: "
                "the units and the space (info['n_vertices']) do not match."
            )
        surface = np.full((n_vertices, len(values)), np.nan, dtype=np.float32)
        surface[vertex] = values[:, rows].T
        out[hemi] = surface[:, 0] if single else surface
    return out


def write_volume_map(
    values: np.ndarray, units: pd.DataFrame, info: Mapping[str, Any], path: str | os.PathLike
) -> Path:
    """Write :func:`volume_from_units` to ``path`` (``.nii`` or ``.nii.gz``) atomically."""
    import nibabel as nib

    path = Path(path)
    if not path.name.endswith((".nii", ".nii.gz")):
        raise ValueError(f"A volume map path must end with .nii or .nii.gz. Got {path.name!r}.")
    image = volume_from_units(values, units, info)
    with atomic_path(path) as tmp:
        nib.save(image, tmp)
    return path


def write_surface_maps(
    values: np.ndarray, units: pd.DataFrame, info: Mapping[str, Any], path_template: str | os.PathLike
) -> dict[str, Path]:
    """Write one FreeSurfer MGH file per hemisphere atomically.

    Parameters
    ----------
    values, units, info
        As in :func:`surface_from_units`.
    path_template : path-like
        Containing ``{hemi}``, replaced by "L" / "R" (BIDS hemisphere labels),
        and ending with ``.mgh`` or ``.mgz``.

    Returns
    -------
    dict
        "lh" / "rh" -> written path. Each file holds float32 data of shape
        (n_vertices, 1, 1) (or (n_vertices, 1, 1, n_maps)), as FreeSurfer expects.
    """
    import nibabel as nib

    template = str(path_template)
    if "{hemi}" not in template or not template.endswith((".mgh", ".mgz")):
        raise ValueError(f"'path_template' must contain '{{hemi}}' and end with .mgh or .mgz. Got {template!r}.")
    written = {}
    for hemi, data in surface_from_units(values, units, info).items():
        path = Path(template.format(hemi=hemi[0].upper()))
        array = data.reshape(data.shape[0], 1, 1, *data.shape[1:])
        with atomic_path(path) as tmp:
            nib.save(nib.MGHImage(array, np.eye(4)), tmp)
        written[hemi] = path
    return written


#: NSD's functional-space anatomy, by spec entry, in order of preference as an underlay.
_NSD_UNDERLAYS = (("anat_t1", "T1-weighted anatomy in the functional space"), ("mean_epi", "mean EPI"))


def _nsd_subject_number(subject: Any) -> int | None:
    """1-based NSD subject number of "subj01", "01", 1 ...; None when ``subject`` names none."""
    if isinstance(subject, (int, np.integer)):
        return int(subject)
    match = re.fullmatch(r"(?:subj)?0*(\d+)", str(subject).strip(), flags=re.IGNORECASE)
    return int(match.group(1)) if match else None


def find_underlay(info: Mapping[str, Any], subject: str | int, space: str) -> tuple[Path | Any, str] | None:
    """An anatomical image to draw volume maps over, and what it is; None when the dataset has none.

    - NSD volume spaces: the subject's T1 resampled to the functional grid
      (spec entry ``anat_t1``, ``nsddata/ppdata/subjNN/<space>/T1_to_<space>.nii.gz``),
      else the mean EPI (spec entry ``mean_epi``, ``.../<space>/mean.nii.gz``);
      paths come from ``data_specs/nsd.yaml``.
    - MNI spaces: nilearn's MNI152 template (ships with nilearn, no download).

    Parameters
    ----------
    info : mapping
        The responses' ``info`` (``dataset`` and ``root`` for NSD).
    subject : str or int
        The responses' subject: "subj01" as :func:`neurodec.data.load_nsd`
        names it, or the 1-based subject number.
    space : str
        E.g. "func1pt8mm".

    Returns
    -------
    (path or nibabel image, str) or None
        The underlay and a description naming its file, e.g.
        ``"T1-weighted anatomy in the functional space (T1_to_func1pt8mm.nii.gz)"``.
    """
    if info.get("dataset") == "nsd" and info.get("root"):
        from ..data.specs import load_spec

        number = _nsd_subject_number(subject)
        if number is None:
            return None
        spec = load_spec("nsd")
        for key, what in _NSD_UNDERLAYS:
            path = spec.path(key, info["root"], subject=number, space=space)
            if path.is_file():
                return path, f"{what} ({path.name})"
        return None
    if "mni" in space.lower():
        from nilearn.datasets import load_mni152_template

        return load_mni152_template(), "MNI152 template (nilearn)"
    return None
