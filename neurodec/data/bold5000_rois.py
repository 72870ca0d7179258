"""BOLD5000 ROI names and ROI mask files.

Five ROIs per hemisphere (EarlyVis, LOC, OPA, PPA, RSC), named ``LHPPA`` ...
as in the release-1 ``.mat`` keys, the ROI-betas file names and the OpenNeuro
ds001499 masks ``derivatives/spm/sub-CSI{N}/sub-CSI{N}_mask-{name}.nii.gz``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .specs import load_spec

__all__ = ["ROIS", "ROI_NAMES", "add_roi_columns", "find_roi_masks", "resolve_rois"]

ROIS = ("EarlyVis", "LOC", "OPA", "PPA", "RSC")
ROI_NAMES = tuple(f"{hemi}{roi}" for roi in ROIS for hemi in ("LH", "RH"))


def resolve_rois(rois: str | Sequence[str] | None) -> list[str]:
    """ROI names (``LHPPA`` ...) from ``rois``; a bare ROI ("PPA") means both hemispheres."""
    if rois is None:
        return list(ROI_NAMES)
    out: list[str] = []
    for name in [rois] if isinstance(rois, str) else rois:
        names = [f"LH{name}", f"RH{name}"] if name in ROIS else [name]
        if names[0] not in ROI_NAMES:
            raise ValueError(f"Unknown BOLD5000 ROI {name!r}. Known: {list(ROIS)}, each optionally prefixed LH or RH.")
        out += [n for n in names if n not in out]
    return out


def add_roi_columns(units: pd.DataFrame, membership: dict[str, np.ndarray]) -> None:
    """Add ``roi:<ROI>`` columns: the hemisphere-prefixed name where a unit is in the ROI, else ""."""
    for roi in ROIS:
        names = [n for n in membership if n[2:] == roi]
        if not names:
            continue
        column = np.full(len(units), "", dtype=object)
        for name in names:
            column[membership[name]] = name
        units[f"roi:{roi}"] = column


def find_roi_masks(root: str | Path, subject: int) -> dict[str, Path]:
    """The ROI mask file of each ROI name present, matching misnamed files leniently.

    CSI2 and CSI3 name a few masks differently (``LHLO`` for ``LHLOC``,
    ``RHRRSC`` for ``RHRSC``); such a file is matched to the one ROI whose
    name starts with, or ends, its name, with a warning. An exactly named
    file wins over a leniently matched one.
    """
    exact: dict[str, Path] = {}
    lenient: dict[str, Path] = {}
    for fields, path in load_spec("bold5000").find("roi_masks", root, subject=subject):
        name = fields["roi_name"]
        if name in ROI_NAMES:
            exact[name] = path
            continue
        hemi, rest = name[:2].upper(), name[2:]
        matches = [roi for roi in ROIS if roi.startswith(rest) or rest.endswith(roi)] if rest else []
        if hemi in ("LH", "RH") and len(matches) == 1:
            lenient.setdefault(f"{hemi}{matches[0]}", path)
    for name, path in lenient.items():
        if name not in exact:
            warnings.warn(
                f"BOLD5000 ROI mask {path.name} is misnamed in the release; using it as {name}. "
                f"Rename it to sub-CSI{subject}_mask-{name}.nii.gz to silence this warning.",
                UserWarning,
                stacklevel=3,
            )
            exact[name] = path
    return {name: exact[name] for name in ROI_NAMES if name in exact}
