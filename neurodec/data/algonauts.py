"""Loader of the Algonauts Project 2023 challenge data (a preprocessed form of NSD).

The challenge ships, per subject, the fsaverage-surface responses of the
training images (one row per image, already z-scored within each NSD session
and averaged over the image's repeats), the training and test images as PNG
files named ``train-0001_nsd-00013.png`` (1-based running index, 0-based NSD
73k id) and ROI masks. The layout is described by ``data_specs/algonauts.yaml``;
point ``root`` at the folder that holds ``subj01`` .. ``subj08``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from .._logging import progress
from ._checks import ensure_readable, raise_if_nonfinite
from .responses import Responses
from .specs import DatasetSpec, load_spec
from .stimuli import Stimuli

__all__ = ["load_algonauts", "load_algonauts_stimuli"]

logger = logging.getLogger(__name__)

#: Subjects of the challenge (NSD subjects 1..8).
SUBJECTS = tuple(range(1, 9))
HEMIS = ("lh", "rh")


def _spec() -> DatasetSpec:
    return load_spec("algonauts")


def _check_subject(root: Path, subject: int, caller: str) -> None:
    if isinstance(subject, bool) or not isinstance(subject, (int, np.integer)) or subject not in SUBJECTS:
        raise ValueError(
            f"The 'subject' parameter of {caller} must be an integer in 1..{SUBJECTS[-1]}. Got {subject!r} instead."
        )
    if not root.is_dir():
        raise FileNotFoundError(f"Algonauts root {root} does not exist or is not a folder.")
    folder = root / f"subj{subject:02d}"
    if not folder.is_dir():
        present = sorted(p.name for p in root.glob("subj[0-9][0-9]") if p.is_dir())
        raise FileNotFoundError(f"Algonauts root {root} has no folder {folder.name}; it has {present}.")


def _list_images(root: Path, subject: int, split: str) -> tuple[np.ndarray, list[Path]]:
    """NSD ids and paths of a split's images, in running-index order (checked to be 1..n)."""
    key = {"train": "training_images", "test": "test_images"}[split]
    entry = _spec().entry(key)
    found = entry.find(root, subject=subject)
    if not found:
        folder = entry.path(root, subject=subject, index=1, nsd_id=0).parent
        raise FileNotFoundError(f"No {split} image named like {Path(entry.pattern).name} in {folder}.")
    found.sort(key=lambda item: item[0]["index"])
    indices = np.array([fields["index"] for fields, _ in found])
    expected = np.arange(1, len(found) + 1)
    if not np.array_equal(indices, expected):
        gap = int(expected[np.argmax(indices != expected)])
        raise ValueError(
            f"The {split} images of subj{subject:02d} must have running indices 1..{len(found)}; "
            f"index {gap} is missing or repeated in {found[0][1].parent}."
        )
    return np.array([fields["nsd_id"] for fields, _ in found], dtype=np.int64), [p for _, p in found]


def _load_npy(path: Path, what: str, **kwargs: Any) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"Algonauts {what} file {path} does not exist.")
    ensure_readable(path, f"Algonauts {what} file")
    try:
        return np.load(path, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure to parse means a corrupt file
        raise ValueError(f"Algonauts {what} file {path} could not be read as .npy: {exc}") from exc


def _as_labels(values: np.ndarray, path: Path) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"ROI mask {path} must be 1-D (one value per vertex). Got shape {values.shape}.")
    if not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
        raise ValueError(f"ROI mask {path} must hold integer labels. Got non-integer values.")
    return values.astype(np.int64)


def _roi_labels(root: Path, subject: int, roi: str, hemi: str, vertices: np.ndarray) -> np.ndarray:
    """Label values of the challenge vertices of one hemisphere for ROI class ``roi``.

    Reads the challenge-space mask, the fsaverage-space mask, or both; when
    both exist they must agree on every challenge vertex.
    """
    spec = _spec()
    challenge_path = spec.path("roi_mask_challenge", root, subject=subject, hemi=hemi, roi=roi)
    fsaverage_path = spec.path("roi_mask_fsaverage", root, subject=subject, hemi=hemi, roi=roi)
    labels = None
    if challenge_path.is_file():
        labels = _as_labels(_load_npy(challenge_path, "ROI mask"), challenge_path)
        if labels.shape != vertices.shape:
            raise ValueError(
                f"ROI mask {challenge_path} has {labels.size} values but {hemi} has {vertices.size} challenge vertices."
            )
    if fsaverage_path.is_file():
        full = _as_labels(_load_npy(fsaverage_path, "ROI mask"), fsaverage_path)
        if vertices.size and full.size <= vertices.max():
            raise ValueError(
                f"ROI mask {fsaverage_path} has {full.size} values; vertex {int(vertices.max())} is out of range."
            )
        if labels is not None and not np.array_equal(labels, full[vertices]):
            raise ValueError(f"ROI masks {challenge_path} and {fsaverage_path} disagree on the challenge vertices.")
        labels = full[vertices]
    if labels is None:
        raise FileNotFoundError(f"Neither {challenge_path} nor {fsaverage_path} exists.")
    return labels


def _roi_names(root: Path, subject: int, roi: str, labels: np.ndarray) -> np.ndarray:
    path = _spec().path("roi_mapping", root, subject=subject, roi=roi)
    obj = _load_npy(path, "ROI mapping", allow_pickle=True)
    mapping = obj.item() if getattr(obj, "shape", None) == () else obj
    if not isinstance(mapping, dict):
        raise ValueError(f"ROI mapping {path} must hold a pickled dict label -> name. Got {type(mapping).__name__}.")
    mapping = {int(k): str(v) for k, v in mapping.items()}
    mapping.setdefault(0, "Unknown")
    unknown = sorted(set(np.unique(labels).tolist()) - set(mapping))
    if unknown:
        raise ValueError(f"ROI mapping {path} has no name for label value(s) {unknown}; it maps {sorted(mapping)}.")
    return np.array([mapping[v] for v in labels.tolist()], dtype=object)


def _available_rois(root: Path, subject: int) -> list[str]:
    return sorted(fields["roi"] for fields, _ in _spec().find("roi_mapping", root, subject=subject))


def algonauts_hemisphere(
    root: Path, subject: int, hemi: str, image_paths: Sequence[Path], rois: Sequence[str]
) -> tuple[np.ndarray, pd.DataFrame, int]:
    """One hemisphere's training fMRI (memory-mapped), its unit table and its fsaverage size, checked.

    The fMRI must have one row per training image and one column per vertex
    of ``{hemi}.all-vertices_fsaverage_space.npy``; each ROI class must label
    those vertices consistently. Shared by :func:`load_algonauts` and
    ``neurodec check-data``.
    """
    spec = _spec()
    fmri_path = spec.path("training_fmri", root, subject=subject, hemi=hemi)
    fmri = _load_npy(fmri_path, "fMRI", mmap_mode="r")
    if fmri.ndim != 2 or fmri.shape[0] != len(image_paths):
        raise ValueError(
            f"Algonauts fMRI file {fmri_path} must have shape (n_train_images, n_vertices) with "
            f"{len(image_paths)} rows (one per training image in {image_paths[0].parent}). Got shape {fmri.shape}."
        )
    mask_path = spec.path("all_vertices_mask", root, subject=subject, hemi=hemi)
    vertex_mask = _load_npy(mask_path, "vertex mask")
    vertices = np.flatnonzero(vertex_mask)
    if vertices.size != fmri.shape[1]:
        raise ValueError(
            f"Algonauts fMRI file {fmri_path} has {fmri.shape[1]} vertices but {mask_path} selects {vertices.size}."
        )
    units = pd.DataFrame({"hemi": hemi, "vertex": vertices})
    for roi in rois:
        units[f"roi:{roi}"] = _roi_names(root, subject, roi, _roi_labels(root, subject, roi, hemi, vertices))
    return fmri, units, int(vertex_mask.size)


def load_algonauts(
    root: str | Path,
    subject: int = 1,
    *,
    hemis: Sequence[str] = HEMIS,
    rois: Sequence[str] | None = None,
    verbose: bool | int = True,
) -> Responses:
    """Load one subject's Algonauts 2023 training responses.

    Parameters
    ----------
    root : path-like
        The challenge data folder that holds ``subj01`` .. ``subj08``.
    subject : int
        Subject number, 1..8.
    hemis : sequence of {"lh", "rh"}
        Hemispheres to load, concatenated along units in this order.
    rois : sequence of str, optional
        ROI classes to label the units with (e.g. "prf-visualrois",
        "floc-faces", "streams"). None labels with every class that has a
        ``mapping_<roi>.npy`` file; an empty sequence adds no labels.
    verbose : bool or int
        Show a progress bar.

    Returns
    -------
    Responses
        ``data`` of shape (n_train_images, n_vertices), float32, one trial per
        training image in running-index order. ``trials`` has ``stimulus_id``
        (the 0-based NSD 73k id parsed from the image file name),
        ``image_index`` (the file's 1-based running index), ``split`` "train",
        ``repeat`` 0 and ``session``/``run`` -1 (rows are averages over
        sessions). ``units`` has ``hemi`` and ``vertex`` (fsaverage vertex
        index) and one ``roi:<class>`` column of label names per ROI class
        ("Unknown" outside the class's ROIs). ``space`` is "fsaverage".

    Notes
    -----
    The responses were z-scored within each NSD scan session and averaged
    over the (up to three) repeats of each image by the challenge organisers;
    ``info["preprocessing"]`` records this. The challenge's vertices are the
    nonzero vertices of ``{hemi}.all-vertices_fsaverage_space.npy``;
    ``info["fsaverage_size"]`` gives each hemisphere's number of fsaverage
    vertices, to map values back onto the surface.

    Checked: training images numbered 1..n without a gap, one fMRI row per
    training image, one fMRI column per vertex of the vertex mask, ROI masks
    that agree with each other, finite responses (NaN or infinite values
    raise ValueError naming the file) and readable files (PermissionError
    naming the file otherwise).

    Examples
    --------
    >>> import tempfile
    >>> from neurodec.data.fixtures.algonauts import make_algonauts_miniature
    >>> root = tempfile.mkdtemp()
    >>> _ = make_algonauts_miniature(root, random_state=0)
    >>> responses = load_algonauts(root, 1, verbose=False)
    >>> responses.shape, responses.roi_mask("floc-places", "PPA").dtype
    ((6, 20), dtype('bool'))
    """
    root = Path(root)
    _check_subject(root, subject, "load_algonauts")
    hemis = list(hemis)
    bad = [h for h in hemis if h not in HEMIS]
    if bad or not hemis or len(set(hemis)) != len(hemis):
        raise ValueError(
            f"The 'hemis' parameter of load_algonauts must be distinct values among {HEMIS}. Got {hemis} instead."
        )
    available = _available_rois(root, subject)
    rois = available if rois is None else ([rois] if isinstance(rois, str) else list(rois))
    unknown = [r for r in rois if r not in available]
    if unknown:
        raise ValueError(
            f"Unknown ROI class(es) {unknown} for subj{subject:02d}: the ROI classes with a mapping file "
            f"in {root / f'subj{subject:02d}' / 'roi_masks'} are {available}."
        )
    nsd_ids, paths = _list_images(root, subject, "train")
    spec = _spec()
    blocks, unit_tables, fsaverage_size = [], [], {}
    for hemi in progress(hemis, verbose=verbose, desc=f"algonauts subj{subject:02d}", unit="hemi"):
        fmri, units, fsaverage_size[hemi] = algonauts_hemisphere(root, subject, hemi, paths, rois)
        block = np.asarray(fmri, dtype=np.float32)
        raise_if_nonfinite(block, spec.path("training_fmri", root, subject=subject, hemi=hemi), unit="vertex")
        blocks.append(block)
        unit_tables.append(units)
    data = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
    logger.info("Algonauts subj%02d: %d training images x %d vertices (%s)", subject, *data.shape, "+".join(hemis))
    trials = pd.DataFrame(
        {
            "stimulus_id": nsd_ids,
            "image_index": np.arange(1, len(paths) + 1),
            "session": -1,
            "run": -1,
            "repeat": 0,
            "split": "train",
        }
    )
    return Responses(
        data=data.astype(np.float32, copy=False),
        trials=trials,
        units=pd.concat(unit_tables, ignore_index=True),
        subject=f"subj{subject:02d}",
        modality="fmri",
        space="fsaverage",
        info={
            "dataset": "algonauts2023",
            "root": str(root),
            "hemis": hemis,
            "fsaverage_size": fsaverage_size,
            "preprocessing": "z-scored within each NSD session, then averaged over the repeats of each image",
            "stimulus_id": "0-based NSD 73k image id",
        },
    )


def load_algonauts_stimuli(
    root: str | Path, subject: int = 1, *, split: Literal["train", "test"] = "train"
) -> Stimuli:
    """The training or test images of one Algonauts 2023 subject.

    Parameters
    ----------
    root : path-like
        The challenge data folder that holds ``subj01`` .. ``subj08``.
    subject : int
        Subject number, 1..8.
    split : {"train", "test"}
        Which images. The test images have no released fMRI.

    Returns
    -------
    Stimuli
        Ids are the 0-based NSD 73k ids (the ``stimulus_id`` of
        :func:`load_algonauts`), in running-index order; images are read from
        the PNG files on demand.
    """
    root = Path(root)
    _check_subject(root, subject, "load_algonauts_stimuli")
    if split not in ("train", "test"):
        raise ValueError(f"The 'split' parameter of load_algonauts_stimuli must be 'train' or 'test'. Got {split!r}.")
    nsd_ids, paths = _list_images(root, subject, split)
    return Stimuli.from_files(dict(zip(nsd_ids.tolist(), paths)), name=f"algonauts2023-subj{subject:02d}-{split}")
