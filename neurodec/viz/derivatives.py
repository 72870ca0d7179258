"""A BIDS-derivatives folder for everything neurodec writes about a subject.

Layout: ``<root>/derivatives/neurodec/dataset_description.json`` and
``<root>/derivatives/neurodec/sub-<label>/<datatype>/sub-<label>_<key>-<value>..._<suffix>.<ext>``
(BIDS entity order: sub, ses, hemi, space, then the rest as given).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .._io import write_json_atomic

__all__ = ["bids_filename", "bids_subject_label", "derivatives_folder", "sidecar_path", "write_sidecar"]

_PIPELINE = "neurodec"


def bids_subject_label(subject: str) -> str:
    """BIDS subject label of a dataset's subject name.

    "subj01" -> "01", "sub-01" -> "01", "CSI1" -> "CSI1", "BIGMEG1" -> "BIGMEG1".
    """
    label = re.sub(r"^(sub-|subj|sub)(?=[0-9])", "", str(subject), flags=re.IGNORECASE)
    label = re.sub(r"[^A-Za-z0-9]", "", label)
    if not label:
        raise ValueError(f"Cannot make a BIDS subject label from subject {subject!r}.")
    return label


def _label(value: object, key: str) -> str:
    label = re.sub(r"[^A-Za-z0-9]", "", str(value))
    if not label:
        raise ValueError(f"BIDS entity {key!r} needs an alphanumeric value. Got {value!r}.")
    return label


def bids_filename(subject: str, suffix: str, extension: str, **entities: object) -> str:
    """A BIDS file name, e.g. ``sub-01_space-func1pt8mm_model-resnet50layer3_stat-r2_statmap.nii.gz``.

    Parameters
    ----------
    subject : str
        Dataset subject name (see :func:`bids_subject_label`).
    suffix : str
        BIDS suffix, e.g. "statmap", "scores", "report".
    extension : str
        With the leading dot, e.g. ".nii.gz".
    **entities
        key-value pairs; None values are left out. Values are stripped to
        alphanumerics, as BIDS labels require.
    """
    order = ["ses", "hemi", "space"]
    keys = [k for k in order if k in entities] + [k for k in entities if k not in order]
    parts = [f"sub-{bids_subject_label(subject)}"]
    parts += [f"{k}-{_label(entities[k], k)}" for k in keys if entities[k] is not None]
    return "_".join(parts + [suffix]) + extension


def derivatives_folder(root: str | os.PathLike, subject: str, *, datatype: str = "func") -> Path:
    """The subject's folder under ``<root>/derivatives/neurodec``, created with its dataset description.

    Parameters
    ----------
    root : path-like
        The study folder (the BIDS dataset root or any output root).
    subject : str
        Dataset subject name.
    datatype : str
        BIDS datatype folder ("func" for fMRI maps, "meg", "ieeg", "figures").

    Returns
    -------
    Path
        ``<root>/derivatives/neurodec/sub-<label>/<datatype>``.
    """
    from .. import __version__

    base = Path(root) / "derivatives" / _PIPELINE
    description = base / "dataset_description.json"
    expected = {
        "Name": "neurodec encoding outputs",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "neurodec", "Version": __version__}],
    }
    if not description.exists() or json.loads(description.read_text()) != expected:
        write_json_atomic(description, expected)
    folder = base / f"sub-{bids_subject_label(subject)}" / datatype
    folder.mkdir(parents=True, exist_ok=True)
    return folder


#: Keys every map sidecar has (BIDS-derivatives style; values may be "n/a").
SIDECAR_KEYS = ("Description", "Quantity", "Units", "Model", "Subject", "Space", "Sources", "GeneratedBy")


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of a data file: the same name with ``.json`` for its (double) extension."""
    path = Path(path)
    name = path.name
    for ext in (".nii.gz", ".nii", ".mgh", ".mgz", ".gii", ".csv", ".tsv"):
        if name.endswith(ext):
            return path.with_name(name[: -len(ext)] + ".json")
    return path.with_suffix(".json")


def write_sidecar(path: str | os.PathLike, fields: dict) -> Path:
    """Write the JSON sidecar of the map at ``path`` atomically, with :data:`SIDECAR_KEYS` and ``fields``.

    Missing keys are written as "n/a"; ``GeneratedBy`` defaults to this neurodec version.
    """
    from .. import __version__

    record = {key: "n/a" for key in SIDECAR_KEYS}
    record["GeneratedBy"] = [{"Name": "neurodec", "Version": __version__}]
    record.update(fields)
    return write_json_atomic(sidecar_path(path), record)
