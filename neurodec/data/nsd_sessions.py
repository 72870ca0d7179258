"""Which beta files make up an NSD subject, and which design trials each one holds.

:func:`plan_nsd_sessions` is the one place that decides this, for
:func:`~neurodec.data.load_nsd` and for ``neurodec check-data`` alike. It

- finds each session's beta file(s) and refuses a session missing in the
  middle (sessions 1 and 3 present, 2 absent) instead of skipping it;
- reads every file's header (trial count, spatial shape) and recognises an
  HDF5 file written in (X, Y, Z, n_trials) order instead of NSD's
  (n_trials, Z, Y, X);
- cross-checks each session's trial count between the design's
  ``stimpattern``, the behaviour file (``responses.tsv``) and the beta files,
  naming every source and count when they disagree;
- places each session's trials in the design (its first global trial),
  refusing to guess when neither ``stimpattern`` nor the behaviour file gives
  the counts and the beta files' counts differ (a short session would shift
  the image of every later trial).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ._checks import ensure_listable
from .nsd_betas import BetaFile, read_beta_header
from .nsd_design import NSDDesign
from .nsd_rois import HEMIS, SURFACE_SPACES
from .specs import load_spec

__all__ = ["NSDSessions", "beta_kind", "find_nsd_sessions", "nsd_session_trials", "plan_nsd_sessions"]

_FORMAT_KEYS = {"auto": ["betas_volume_hdf5", "betas_volume_nifti"], "hdf5": ["betas_volume_hdf5"],
                "nifti": ["betas_volume_nifti"]}
_KIND_OF = {".hdf5": "hdf5", ".gz": "nifti", ".nii": "nifti", ".mgh": "mgh"}


def beta_kind(path: Path) -> str:
    """The reader kind of a beta file from its suffix: "hdf5", "nifti" or "mgh"."""
    return _KIND_OF[path.suffix]


@dataclasses.dataclass(frozen=True)
class NSDSessions:
    """The beta files of one subject's sessions and where their trials sit in the design.

    Attributes
    ----------
    files : dict of int -> list of BetaFile
        Header of each session's file(s), in the requested session order:
        ``[volume file]`` or ``[lh, rh]``.
    offsets : dict of int -> int
        0-based global trial (row of the design's ``masterordering``) of each
        session's first trial.
    counts : dict of str -> dict of int -> int
        Trials per session according to each source that was consulted:
        ``"stimpattern"``, ``"behaviour"`` and ``"betas"`` (the files read).
    count_source : str
        Which source placed the sessions: "stimpattern", "behaviour" or
        "betas" (all beta files hold the same number of trials).
    """

    files: dict[int, list[BetaFile]]
    offsets: dict[int, int]
    counts: dict[str, dict[int, int]]
    count_source: str


def _session_paths(root: Path, subject: int, space: str, beta_version: str, fmt: str):
    spec = load_spec("nsd")
    fields = dict(subject=subject, beta_version=beta_version)
    if space in SURFACE_SPACES:
        keys = ["betas_surface"]

        def paths(s: int) -> list[Path]:
            return [spec.path("betas_surface", root, hemi=h, session=s, **fields) for h in HEMIS]
    else:
        keys = _FORMAT_KEYS[fmt]

        def paths(s: int) -> list[Path]:
            options = [spec.path(k, root, space=space, session=s, **fields) for k in keys]
            return [next((p for p in options if p.is_file()), options[-1])]  # auto: HDF5 first
    return keys, paths


def find_nsd_sessions(
    root: str | Path, subject: int, *, space: str, beta_version: str, fmt: str = "auto"
) -> list[int]:
    """The sessions that have a beta file, checked to run from 1 without a gap.

    Raises
    ------
    FileNotFoundError
        When no session has a beta file, or when a session before the last
        one present has none (naming the missing sessions and the file
        looked for).
    PermissionError
        When the beta folder exists but cannot be listed.
    """
    root = Path(root)
    spec = load_spec("nsd")
    keys, paths = _session_paths(root, subject, space, beta_version, fmt)
    fields = dict(subject=subject, beta_version=beta_version, space=space)
    folder = spec.path(keys[0], root, hemi="lh", session=1, **fields).parent
    ensure_listable(folder, "NSD beta folder")
    found = sorted({f["session"] for k in keys for f, _ in spec.find(k, root, **fields)})
    if not found:
        names = {"auto": "HDF5 or NIfTI", "hdf5": "HDF5", "nifti": "NIfTI"}
        what = "surface" if space in SURFACE_SPACES else names[fmt]
        raise FileNotFoundError(f"No {what} beta files of subject {subject} in {folder}.")
    gaps = [s for s in range(1, found[-1] + 1) if s not in found]
    if gaps:
        raise FileNotFoundError(
            f"Subject {subject} ({space}, {beta_version}): session(s) {gaps} have no beta file (looked for "
            f"{paths(gaps[0])[0]}), but later session(s) do (present: {found}). A session missing in the middle "
            f"is not skipped silently: restore its file, or choose the sessions to load with sessions=[...]."
        )
    return found


def _hdf5_orientation_problem(beta: BetaFile, expected_trials: int | None) -> str | None:
    """A sentence when an HDF5 beta file looks written in (X, Y, Z, n_trials) order, else None."""
    if beta.kind != "hdf5":
        return None
    stored = (beta.n_trials, *beta.spatial_shape[::-1])  # the dataset's shape as h5py sees it
    twin = beta.path.with_name(beta.path.name.replace(".hdf5", ".nii.gz"))
    reference = None
    if twin.is_file():
        try:
            reference = read_beta_header(twin, "nifti")
        except (ValueError, OSError):
            reference = None
    if reference is not None:
        wanted = (reference.n_trials, *reference.spatial_shape[::-1])
        if stored != wanted and stored == (*reference.spatial_shape, reference.n_trials):
            nifti_shape = (*reference.spatial_shape, reference.n_trials)
            return f"its NIfTI twin {twin.name} is (X, Y, Z, n_trials) = {nifti_shape}, so it should be {wanted}"
        return None
    if expected_trials is not None and beta.n_trials != expected_trials and stored[-1] == expected_trials:
        return f"its last axis has the {expected_trials} trials the design expects, so it should come first"
    return None


def _raise_if_transposed(beta: BetaFile, expected_trials: int | None) -> None:
    why = _hdf5_orientation_problem(beta, expected_trials)
    if why is not None:
        stored = (beta.n_trials, *beta.spatial_shape[::-1])
        raise ValueError(
            f"Beta file {beta.path}: dataset 'betas' has shape {stored}, in (X, Y, Z, n_trials) order; NSD's HDF5 "
            f"files hold (n_trials, Z, Y, X) (MATLAB order as h5py sees it) and {why}. The file looks transposed: "
            "rewrite it with the array transposed (data.T)."
        )


def _count_table(counts: dict[str, dict[int, int]], sessions: Sequence[int]) -> str:
    return "; ".join(
        f"{source}: " + ", ".join(f"session {s}: {by_session.get(s, 0)}" for s in sessions)
        for source, by_session in counts.items()
    )


def _cross_check(
    counts: dict[str, dict[int, int]], sources: dict[str, str], files: dict[int, list[BetaFile]],
    behaviour_sessions: set[int],
) -> None:
    """Raise when two sources disagree on a session's number of trials."""
    design, behaviour = counts.get("stimpattern"), counts.get("behaviour")
    if design is not None and behaviour is not None:
        bad = sorted(s for s in behaviour_sessions if design.get(s, 0) != behaviour[s])
        if bad:
            raise ValueError(
                f"The trials per session disagree between the design's stimpattern ({sources['stimpattern']}) and "
                f"the behaviour file ({sources['behaviour']}): " + _count_table(
                    {"stimpattern": design, "behaviour file": behaviour}, bad
                ) + ". Check that both files come from the same release and subject."
            )
    for s, betas in files.items():
        n = betas[0].n_trials
        for name, by_session in (("stimpattern", design), ("behaviour", behaviour)):
            if by_session is None:
                continue
            expected = by_session.get(s, 0)
            if n != expected:
                _raise_if_transposed(betas[0], expected)
                label = "the design's stimpattern" if name == "stimpattern" else "the behaviour file"
                others = "".join(
                    f"; {'stimpattern' if o == 'stimpattern' else 'behaviour file'} {sources[o]}: "
                    f"{counts[o].get(s, 0)}" for o in ("stimpattern", "behaviour") if o in counts and o != name
                )
                raise ValueError(
                    f"Session {s}: beta file {betas[0].path} has {n} trials, but {label} ({sources[name]}) lists "
                    f"{expected}{others}. Trial counts must agree to label each trial with its image."
                )


def plan_nsd_sessions(
    root: str | Path,
    subject: int,
    *,
    space: str,
    beta_version: str,
    fmt: str,
    sessions: Sequence[int] | None,
    design: NSDDesign,
    behavior: pd.DataFrame | None,
) -> NSDSessions:
    """Find, check and place the beta files of one subject's sessions.

    Parameters
    ----------
    root : path-like
        NSD root.
    subject : int
        1-based subject number.
    space, beta_version : str
        As in :func:`~neurodec.data.load_nsd`.
    fmt : {"auto", "hdf5", "nifti"}
        Volume file format ("auto": the HDF5 twin when present).
    sessions : sequence of int or None
        1-based sessions, in this order; None: every session present, which
        must run from 1 without a gap.
    design : NSDDesign
        The design (``stimpattern`` gives the trials of each session when present).
    behavior : pandas.DataFrame or None
        The subject's behaviour table (:func:`~neurodec.data.load_nsd_behavior`), when present.

    Returns
    -------
    NSDSessions

    Raises
    ------
    FileNotFoundError
        A requested session's file is missing; a session is missing in the
        middle (``sessions=None``); an earlier session's file is needed to
        count trials and is missing.
    ValueError
        Repeated or out-of-range sessions; trial counts that disagree between
        stimpattern, behaviour file and beta files (naming each source and
        count); a transposed HDF5 file; unequal beta files with neither
        stimpattern nor behaviour file to place them; sessions beyond the
        design's trials; unreadable or malformed files.
    """
    root = Path(root)
    _, paths = _session_paths(root, subject, space, beta_version, fmt)
    if sessions is None:
        sessions = find_nsd_sessions(root, subject, space=space, beta_version=beta_version, fmt=fmt)
    sessions = list(sessions)
    if not sessions:
        raise ValueError("The 'sessions' parameter of load_nsd must name at least one session. Got [].")
    if len(set(sessions)) != len(sessions):
        raise ValueError(f"The 'sessions' of load_nsd must not repeat a session. Got {sessions}.")
    for s in sessions:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 or (
            design.n_sessions is not None and s > design.n_sessions
        ):
            upper = design.n_sessions if design.n_sessions is not None else "the number of sessions"
            raise ValueError(f"The 'sessions' of load_nsd are 1-based numbers from 1 to {upper}. Got {s!r}.")
    sessions = [int(s) for s in sessions]

    def header(s: int) -> list[BetaFile]:
        found = paths(s)
        missing = [p for p in found if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"Session {s} of subject {subject}: beta file {missing[0]} does not exist.")
        betas = [read_beta_header(p, beta_kind(p)) for p in found]
        if betas[-1].n_trials != betas[0].n_trials:  # surface: lh and rh
            raise ValueError(
                f"{betas[-1].path} has {betas[-1].n_trials} trials; {betas[0].path} has {betas[0].n_trials}."
            )
        return betas

    files = {s: header(s) for s in sessions}
    counts: dict[str, dict[int, int]] = {}
    sources: dict[str, str] = {}
    if design.trials_per_session is not None:
        counts["stimpattern"] = dict(enumerate(design.trials_per_session.tolist(), start=1))
        sources["stimpattern"] = str(design.path or "the design")
    behaviour_sessions: set[int] = set()
    if behavior is not None:
        counts["behaviour"] = {int(k): int(v) for k, v in behavior.groupby("SESSION").size().items()}
        sources["behaviour"] = str(behavior.attrs.get("path", "the behaviour table"))
        behaviour_sessions = set(counts["behaviour"])
    _cross_check(counts, sources, files, behaviour_sessions)
    first = next(iter(files.values()))
    for betas in files.values():
        _raise_if_transposed(betas[0], None)
        for beta, ref in zip(betas, first):
            if beta.spatial_shape != ref.spatial_shape:
                raise ValueError(
                    f"Beta file {beta.path} has spatial shape {beta.spatial_shape}; {ref.path} has {ref.spatial_shape}."
                )

    if "stimpattern" in counts or "behaviour" in counts:
        source = "stimpattern" if "stimpattern" in counts else "behaviour"
        expected = counts[source]
    else:
        # Without stimpattern or behaviour file, a session's place is the sum of
        # the earlier sessions' file sizes: safe only if no session is short.
        source = "betas"
        every = {}
        for s in range(1, max(sessions) + 1):
            try:
                every[s] = files[s] if s in files else header(s)
            except FileNotFoundError as exc:
                raise FileNotFoundError(
                    f"Cannot place the trials of session {max(sessions)} of subject {subject}: {design.path} has no "
                    f"'stimpattern' and there is no behaviour file ({_behaviour_path(root, subject)}), so the "
                    f"trials of every earlier session must be counted from its beta file: {exc}"
                ) from None
        expected = {s: betas[0].n_trials for s, betas in every.items()}
        if len(set(expected.values())) > 1:
            listing = ", ".join(f"{every[s][0].path.name}: {n}" for s, n in expected.items())
            raise ValueError(
                f"Cannot tell which design trials the betas of subject {subject} hold: {design.path} has no "
                f"'stimpattern', there is no behaviour file ({_behaviour_path(root, subject)}), and the beta files "
                f"hold different numbers of trials ({listing}). Trials are placed by counting the trials of earlier "
                "sessions, so a short session would shift the image of every later trial. Provide the design file "
                "with its 'stimpattern' variable or the subject's behav/responses.tsv."
            )
    counts["betas"] = {s: betas[0].n_trials for s, betas in files.items()}
    offsets = {}
    for s, betas in files.items():
        gaps = [r for r in range(1, s) if r not in expected]
        if gaps:
            raise ValueError(
                f"Cannot place session {s}'s trials: the {source} source ({sources.get(source, 'beta files')}) "
                f"gives no trial count for session(s) {gaps}."
            )
        offsets[s] = int(sum(expected[r] for r in range(1, s)))
        if offsets[s] + betas[0].n_trials > design.masterordering.size:
            raise ValueError(
                f"Beta file {betas[0].path} ends at trial {offsets[s] + betas[0].n_trials}, beyond the "
                f"{design.masterordering.size} trials of the design's masterordering ({design.path})."
            )
    return NSDSessions(files=files, offsets=offsets, counts=counts, count_source=source)


def _behaviour_path(root: Path, subject: int) -> Path:
    return load_spec("nsd").path("behavior", root, subject=subject)


def nsd_session_trials(
    design: NSDDesign, subject: int, plan: NSDSessions, behavior: pd.DataFrame | None,
) -> pd.DataFrame:
    """The design's trials of the planned sessions, in plan order, checked against the behaviour file.

    Parameters
    ----------
    design : NSDDesign
    subject : int
        1-based subject number.
    plan : NSDSessions
        From :func:`plan_nsd_sessions` (trial counts already cross-checked).
    behavior : pandas.DataFrame or None
        The subject's behaviour table; its 73KID of each trial must be the
        design's image of that trial, and its RUN becomes the ``run`` column.

    Returns
    -------
    pandas.DataFrame
        One row per trial: ``stimulus_id, session, run, repeat, split,
        trial_index, trial_in_session, shared``.

    Raises
    ------
    ValueError
        When the behaviour file's 73KID disagrees with the design (naming the
        session, trial and both ids).
    """
    table = design.trials(subject)
    parts = []
    for s, betas in plan.files.items():
        part = table.iloc[plan.offsets[s] : plan.offsets[s] + betas[0].n_trials].copy()
        part["session"], part["trial_in_session"] = s, np.arange(len(part))
        if behavior is not None:
            # Counts were cross-checked, so the session's rows pair up one to one.
            rows = behavior[behavior["SESSION"] == s]
            mismatch = np.flatnonzero(rows["stimulus_id"].to_numpy() != part["stimulus_id"].to_numpy())
            if mismatch.size:
                t = int(mismatch[0])
                raise ValueError(
                    f"The behaviour file {behavior.attrs.get('path')}: its 73KID column disagrees with the design "
                    f"({design.path}) on {mismatch.size} trial(s) of session {s}; first: trial {t} of the session "
                    f"shows 73KID {int(rows['73KID'].iloc[t])} in the behaviour file but 73k id "
                    f"{int(part['stimulus_id'].iloc[t]) + 1} (1-based) in the design."
                )
            part["run"] = rows["RUN"].to_numpy().astype(np.int64)
        parts.append(part)
    trials = pd.concat(parts, ignore_index=True)
    return trials[["stimulus_id", "session", "run", "repeat", "split", "trial_index", "trial_in_session", "shared"]]
