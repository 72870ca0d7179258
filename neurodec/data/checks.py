"""``neurodec check-data``: is a dataset root complete, and will the loader read it correctly?

:func:`check_dataset` runs two layers of checks and reports them together:

1. :func:`~neurodec.data.specs.check_root`: every file the spec names, its
   presence and header (dtype, dimensions, variables, columns);
2. the dataset's consistency, through the loaders' own checking code (no
   second implementation): for NSD,
   :func:`~neurodec.data.nsd_sessions.plan_nsd_sessions` and
   :func:`~neurodec.data.nsd_sessions.nsd_session_trials` per subject,
   space, beta version and file format (missing sessions, trial counts of
   stimpattern / behaviour file / beta files, the behaviour file's images,
   transposed HDF5), :func:`~neurodec.data.nsd_rois.resolve_nsd_roi_mask` per
   atlas (empty ROIs); for BOLD5000 the GLMsingle session and image-name
   checks, ROI responses and masks, stimulus folders; for Algonauts the
   per-hemisphere checks of :func:`~neurodec.data.algonauts.load_algonauts`.

NaN scan: beta files of float type are scanned for NaN and infinite values
with the loaders' :func:`~neurodec.data._checks.raise_if_nonfinite`, on
``nan_trials`` evenly spaced trials (rows) of each file, first and last
included (all of them with ``nan_trials=None``), so a check of a whole
release stays fast. NSD's volume betas are int16 and cannot hold NaN; its
fsaverage betas (float32) are scanned. A NaN outside the sampled trials is
found by the loader when it reads it.

"usable" means the loader loads every subject, session and atlas listed
under "found" without error.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ._checks import raise_if_nonfinite, sample_indices
from .specs import CheckReport, check_root, load_spec

__all__ = ["DEFAULT_NAN_TRIALS", "check_dataset"]

#: Trials (rows) of each float beta file scanned for NaN by default.
DEFAULT_NAN_TRIALS = 8

_ERRORS = (ValueError, FileNotFoundError, PermissionError, OSError)


def _ranges(values: list[int]) -> str:
    """'1-3, 5' for [1, 2, 3, 5]."""
    out, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            out.append(f"{start}" if start == v else f"{start}-{v}")
            start = None
    return ", ".join(out)


def _subset(rows: np.ndarray, n: int) -> np.ndarray | None:
    """``rows`` when they are a sample of the ``n`` trials, None when they are all of them."""
    return None if len(rows) == n else rows


def _scan_mgh(path: Path, nan_trials: int | None) -> None:
    import nibabel as nib

    proxy = nib.load(path).dataobj
    rows = sample_indices(proxy.shape[3], nan_trials)
    block = np.stack([np.asarray(proxy[:, 0, 0, int(t)]) for t in rows])
    raise_if_nonfinite(block, path, rows=_subset(rows, proxy.shape[3]), unit="vertex")


# --------------------------------------------------------------------------- NSD


def _check_nsd(report: CheckReport, root: Path, nan_trials: int | None) -> None:
    from .nsd import NSD_SPACES
    from .nsd_design import load_nsd_behavior, load_nsd_design
    from .nsd_rois import empty_nsd_roi_labels, list_nsd_rois, load_nsd_roi, resolve_nsd_roi_mask
    from .nsd_sessions import nsd_session_trials, plan_nsd_sessions

    spec = load_spec("nsd")
    try:
        design = load_nsd_design(root)
    except _ERRORS as exc:
        report.problems.append(f"design: {exc}")
        return
    report.found.append(
        f"design: {design.n_subjects} subject(s), {design.masterordering.size} trials, "
        + (f"{design.n_sessions} sessions in stimpattern" if design.n_sessions else "no stimpattern")
    )
    # What load_nsd reads by default (format="auto": HDF5 where present, else NIfTI); when a
    # volume has both formats, each is also checked alone (format="hdf5" / "nifti").
    formats = {"betas_volume_hdf5": "hdf5", "betas_volume_nifti": "nifti", "betas_surface": "auto"}
    present: dict[tuple[int, str, str], set[str]] = {}
    for key, fmt in formats.items():
        for fields, _ in spec.find(key, root):
            where = (fields["subject"], fields.get("space", "fsaverage"), fields["beta_version"])
            present.setdefault(where, set()).add(fmt)
    runs: dict[int, set[tuple[str, str, str]]] = {}
    for (subject, space, beta_version), fmts in present.items():
        explicit = sorted(fmts) if len(fmts) > 1 else []
        runs.setdefault(subject, set()).update((space, beta_version, f) for f in ["auto", *explicit])
    subjects = sorted(set(runs) | {f["subject"] for f, _ in spec.find("behavior", root)}
                      | {f["subject"] for f, _ in spec.find("roi_volume", root)})
    shapes: dict[tuple[int, str], tuple[int, ...]] = {}
    for subject in subjects:
        name = f"subj{subject:02d}"
        try:
            design.check_subject(subject)
        except ValueError as exc:
            report.problems.append(f"{name}: {exc}")
            continue
        behavior = None
        if spec.path("behavior", root, subject=subject).is_file():
            try:
                behavior = load_nsd_behavior(root, subject)
            except _ERRORS as exc:
                report.problems.append(f"{name} behaviour file: {exc}")
                continue
        for space, beta_version, fmt in sorted(runs.get(subject, ())):
            where = f"{name} {space}/{beta_version}" + ("" if fmt == "auto" else f" (format={fmt!r})")
            try:
                plan = plan_nsd_sessions(
                    root, subject, space=space, beta_version=beta_version, fmt=fmt, sessions=None, design=design,
                    behavior=behavior,
                )
                trials = nsd_session_trials(design, subject, plan, behavior)
                for betas in plan.files.values():
                    for beta in betas:
                        if beta.kind == "mgh":
                            _scan_mgh(beta.path, nan_trials)
            except FileNotFoundError as exc:
                # A format with files missing is no problem while format="auto" reads the other one.
                (report.notes if fmt != "auto" else report.problems).append(
                    f"{where}: {exc}" + (f" (format={fmt!r} cannot load it; the default format='auto' is "
                                         "checked on its own)" if fmt != "auto" else "")
                )
                continue
            except _ERRORS as exc:
                report.problems.append(f"{where}: {exc}")
                continue
            first = next(iter(plan.files.values()))
            shapes[(subject, space)] = (
                (sum(b.spatial_shape[0] for b in first),) if space == "fsaverage" else first[0].spatial_shape
            )
            report.found.append(
                f"{where}: sessions {_ranges(sorted(plan.files))}, {len(trials)} trials "
                f"(trials per session from {plan.count_source}), units {shapes[(subject, space)]}"
            )
        for space in NSD_SPACES:
            atlases = list_nsd_rois(root, subject, space=space)
            if not atlases or (space == "fsaverage" and (subject, space) not in shapes):
                continue
            checked = []
            for atlas in atlases:
                try:
                    labels, names = load_nsd_roi(root, subject, atlas, space=space)
                    shape = shapes.get((subject, space), labels.shape)
                    resolve_nsd_roi_mask(root, subject, atlas, space=space, shape=shape)
                except _ERRORS as exc:
                    report.problems.append(f"{name} {space} ROI {atlas!r}: {exc}")
                    continue
                checked.append(atlas)
                empty = empty_nsd_roi_labels(labels, names)
                if empty:
                    report.notes.append(
                        f"{name} {space} ROI {atlas!r}: label(s) {empty} of its colour table cover no unit; "
                        "selecting them with roi=(atlas, labels) raises an error"
                    )
            report.found.append(f"{name} {space} ROI atlases: {', '.join(checked) if checked else 'none usable'}")


# ---------------------------------------------------------------------- BOLD5000


def _check_bold5000(report: CheckReport, root: Path, nan_trials: int | None) -> None:
    from .bold5000 import _release1, _roi_betas, _sessions, _voxel_masks
    from .bold5000_rois import ROI_NAMES, find_roi_masks
    from .bold5000_stimuli import find_bold5000_stimuli

    spec = load_spec("bold5000")
    subjects = sorted({f["subject"] for key in ("glmsingle_betas", "imgnames", "roi_betas", "release1_rois")
                       for f, _ in spec.find(key, root)})
    stimuli: dict[str, Path] | None = None
    if any((root / p).exists() for p in ("BOLD5000_Stimuli",)):
        try:
            stimuli = find_bold5000_stimuli(root)
            report.found.append(f"stimuli: {len(stimuli)} image file(s)")
        except _ERRORS as exc:
            report.problems.append(f"stimuli: {exc}")
    for subject in subjects:
        name = f"CSI{subject}"
        if spec.find("glmsingle_betas", root, subject=subject):
            try:
                images, names = _sessions(root, subject)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    first = next(iter(images.values()))[0]
                    voxels, labelled, _ = _voxel_masks(root, subject, None, "brain", tuple(first.shape[:3]))
                report.notes += [f"{name}: {w.message}" for w in caught]
                for session, (img, path) in images.items():
                    rows = sample_indices(img.shape[3], nan_trials)
                    block = np.stack([np.asarray(img.dataobj[..., int(t)], dtype=np.float32)[voxels] for t in rows])
                    raise_if_nonfinite(block, path, rows=_subset(rows, img.shape[3]), unit="voxel")
                report.found.append(
                    f"{name} glmsingle: sessions {_ranges(sorted(images))}, {len(names)} trials, "
                    f"{int(voxels.sum())} brain voxels, ROI masks: {', '.join(labelled) or 'none'}"
                )
                if stimuli is not None:
                    _check_stimuli(report, name, names, stimuli)
            except _ERRORS as exc:
                report.problems.append(f"{name} glmsingle: {exc}")
        present = [f["roi_name"] for f, _ in spec.find("roi_betas", root, subject=subject)]
        if present:
            try:
                arrays, names, _ = _roi_betas(root, subject, [n for n in ROI_NAMES if n in present], False)
                report.found.append(f"{name} roi-betas: {len(names)} trials, ROIs {', '.join(sorted(present))}")
            except _ERRORS as exc:
                report.problems.append(f"{name} roi-betas: {exc}")
        for fields, _ in spec.find("release1_rois", root, subject=subject):
            try:
                arrays, names, _ = _release1(root, subject, list(ROI_NAMES), fields["tr"])
                report.found.append(f"{name} release1 TR{fields['tr']}: {len(names)} trials, {len(arrays)} ROIs")
            except _ERRORS as exc:
                report.problems.append(f"{name} release1 TR{fields['tr']}: {exc}")
        if not spec.find("glmsingle_betas", root, subject=subject) and find_roi_masks(root, subject):
            report.notes.append(f"{name}: ROI masks without GLMsingle betas are not used by any source")


def _check_stimuli(report: CheckReport, name: str, raw_names: list[str], stimuli: dict[str, Path]) -> None:
    names = {n[4:] if n.startswith("rep_") else n for n in raw_names}
    missing = sorted(names - set(stimuli))
    if missing:
        report.problems.append(
            f"{name}: {len(missing)} presented image(s) have no stimulus file: {missing[:5]}"
        )


# --------------------------------------------------------------------- Algonauts


def _check_algonauts(report: CheckReport, root: Path, nan_trials: int | None) -> None:
    from .algonauts import HEMIS, _available_rois, _list_images, algonauts_hemisphere

    spec = load_spec("algonauts")
    subjects = sorted({f["subject"] for f, _ in spec.find("training_fmri", root)})
    for subject in subjects:
        name = f"subj{subject:02d}"
        try:
            rois = _available_rois(root, subject)
            ids, paths = _list_images(root, subject, "train")
            sizes = []
            for hemi in HEMIS:
                if not spec.path("training_fmri", root, subject=subject, hemi=hemi).is_file():
                    continue
                fmri, units, _ = algonauts_hemisphere(root, subject, hemi, paths, rois)
                rows = sample_indices(fmri.shape[0], nan_trials)
                path = spec.path("training_fmri", root, subject=subject, hemi=hemi)
                block = np.asarray(fmri[rows], dtype=np.float32)
                raise_if_nonfinite(block, path, rows=_subset(rows, fmri.shape[0]), unit="vertex")
                sizes.append(f"{hemi} {len(units)}")
            has_test = bool(spec.find("test_images", root, subject=subject))
            n_test = len(_list_images(root, subject, "test")[0]) if has_test else 0
            report.found.append(
                f"{name}: {len(ids)} training images, {n_test} test images, vertices {', '.join(sizes)}, "
                f"ROI classes: {', '.join(rois) or 'none'}"
            )
        except _ERRORS as exc:
            report.problems.append(f"{name}: {exc}")


# -------------------------------------------------------------------- THINGS-MEG


def _check_things_meg(report: CheckReport, root: Path, nan_trials: int | None) -> None:
    from .things_meg import check_units, plan_things_meg_runs

    subjects = sorted({f["subject"] for key in ("runs_ctf", "runs_fif") for f, _ in load_spec("things-meg").find(key, root)})
    for subject in subjects:
        name = f"sub-BIGMEG{subject}"
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                plans = plan_things_meg_runs(root, subject)
                for plan in plans:
                    meg = [n for n, t in zip(plan.raw.ch_names, plan.raw.get_channel_types()) if t == "mag"]
                    check_units(plan.raw, meg, plan.path)
        except _ERRORS as exc:
            report.problems.append(f"{name}: {exc}")
            continue
        report.notes += [f"{name}: {w.message}" for w in caught]
        sessions: dict[int, list[int]] = {}
        for plan in plans:
            sessions.setdefault(plan.session, []).append(plan.run)
        counts = pd.concat([p.trials for p in plans])["trial_type"].value_counts()
        n_meg = len([t for t in plans[0].raw.get_channel_types() if t == "mag"])
        report.found.append(
            f"{name}: sessions {_ranges(sorted(sessions))}, "
            + "; ".join(f"ses-{s:02d} runs {_ranges(sorted(r))}" for s, r in sorted(sessions.items()))
            + f"; {int(counts.get('exp', 0))} exp + {int(counts.get('test', 0))} test trials, "
            f"{sum(p.n_catch for p in plans)} catch trials (dropped); {n_meg} MEG sensors at "
            f"{', '.join(f'{r:g}' for r in sorted({p.sfreq for p in plans}))} Hz"
        )
        retyped = max(len(p.retyped) for p in plans)
        if retyped:
            report.notes.append(
                f"{name}: channels.tsv types {retyped} MEG sensor(s) as non-MEG (mne-bids#1493); the loader takes "
                "the types from the runs' headers"
            )


_CONSISTENCY: dict[str, Callable[[CheckReport, Path, int | None], None]] = {
    "nsd": _check_nsd,
    "bold5000": _check_bold5000,
    "algonauts": _check_algonauts,
    "things-meg": _check_things_meg,
}


def check_dataset(name: str, root: str | Path, *, nan_trials: int | None = DEFAULT_NAN_TRIALS) -> CheckReport:
    """Check a dataset root: its files against the spec, then its consistency as the loader sees it.

    Parameters
    ----------
    name : str
        Dataset spec name ("nsd", "bold5000", "algonauts").
    root : path-like
        The dataset's root folder.
    nan_trials : int or None
        Trials (rows) of each float beta file scanned for NaN and infinite
        values, evenly spaced; None scans every trial.

    Returns
    -------
    CheckReport
        ``found`` lists the subjects, sessions and atlases recognised;
        ``problems`` what the loader would refuse; ``usable`` is True only
        when there is none (and no file is missing or malformed).

    Raises
    ------
    FileNotFoundError
        When ``root`` is not a folder.
    ValueError
        When ``name`` is not a known spec.
    """
    if nan_trials is not None and nan_trials < 1:
        raise ValueError(f"The 'nan_trials' parameter of check_dataset must be >= 1 or None. Got {nan_trials!r}.")
    root = Path(root)
    report = check_root(name, root)
    checker = _CONSISTENCY.get(report.spec.name)
    if checker is not None:
        checker(report, root, nan_trials)
    return report
