"""THINGS-MEG (Hebart et al. 2023; OpenNeuro ds004212): BIDS MEG runs -> epochs in a Responses.

Layout (``data_specs/things-meg.yaml``): ``sub-BIGMEG{n}/ses-{nn}/meg/`` holds
each run (a CTF ``.ds`` folder, or FIF) with ``_events.tsv`` and
``_channels.tsv``. Each image onset is a row of events.tsv: ``trial_type``
``exp`` (an image shown once: the "train" split), ``test`` (one of the 200
test images, repeated in every session: the "test" split) or ``catch`` (an
oddball target, dropped), ``value`` the THINGS image number, ``sample`` the
onset at the run's rate (what the published code epochs at).

The run is planned first (:func:`plan_things_meg_runs`: headers and tables
only, every check that refuses data) and read after, so ``neurodec
check-data things-meg`` refuses exactly what :func:`load_things_meg` refuses.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._docs import fill_doc
from ._checks import as_integer_ids, ensure_readable
from .meg_preprocessing import decimation_factor, epoch_run, resolve_preprocessing
from .meg_simulation import channel_units
from .responses import Responses
from .specs import load_spec

__all__ = ["ThingsMEGRun", "load_things_meg", "plan_things_meg_runs"]

logger = logging.getLogger(__name__)

#: events.tsv trial types kept, and the split each goes to.
SPLITS = {"exp": "train", "test": "test"}
#: Plausible robust spread (median absolute deviation) of MEG sensors in tesla: 0.1 fT .. 1 nT.
PLAUSIBLE_TESLA = (1e-16, 1e-9)


@dataclasses.dataclass
class ThingsMEGRun:
    """One run as planned: its files, header and the trials to epoch.

    Attributes
    ----------
    session, run : int
    path, events_path, channels_path : Path
    raw : mne.io.Raw
        The run's header (data not loaded), channel types from the file itself.
    trials : DataFrame
        Kept rows of events.tsv (exp and test) with ``stimulus_id``, ``split`` and ``sample``.
    n_catch : int
        Catch trials dropped.
    bads : list of str
        Channels whose ``status`` in channels.tsv is "bad".
    retyped : list of str
        MEG channels whose channels.tsv type disagrees with the header (the quirk fixed).
    """

    session: int
    run: int
    path: Path
    events_path: Path
    channels_path: Path
    raw: Any
    trials: pd.DataFrame
    n_catch: int
    bads: list[str]
    retyped: list[str]

    @property
    def sfreq(self) -> float:
        return float(self.raw.info["sfreq"])


def _read_events(path: Path, raw: Any) -> tuple[pd.DataFrame, int]:
    """Kept trials of one events.tsv and the number of catch trials, checked against the run."""
    ensure_readable(path, "THINGS-MEG events file")
    table = pd.read_csv(path, sep="\t", na_values=["N/A", "n/a"], keep_default_na=True)
    missing = [c for c in ("onset", "trial_type", "value", "sample") if c not in table.columns]
    if missing:
        raise ValueError(f"THINGS-MEG events file {path} lacks column(s) {missing}; it has {list(table.columns)}.")
    unknown = sorted(set(table["trial_type"].dropna().astype(str)) - {"exp", "test", "catch"})
    if unknown:
        raise ValueError(f"THINGS-MEG events file {path}: field 'trial_type' holds {unknown}; expected exp, test, catch.")
    n_catch = int((table["trial_type"] == "catch").sum())
    kept = table[table["trial_type"].isin(list(SPLITS))].copy()
    if kept["value"].isna().any():
        row = int(kept.index[kept["value"].isna()][0])
        raise ValueError(f"THINGS-MEG events file {path}: row {row} is an exp/test trial without an image 'value'.")
    kept["stimulus_id"] = as_integer_ids(kept["value"], f"'value' field of {path}")
    kept["sample"] = as_integer_ids(kept["sample"], f"'sample' field of {path}")
    last = raw.first_samp + raw.n_times - 1
    beyond = kept[(kept["sample"] > last) | (kept["sample"] < raw.first_samp)]
    if len(beyond):
        row = beyond.iloc[0]
        raise ValueError(
            f"THINGS-MEG events file {path}: {len(beyond)} event(s) lie beyond the run's samples "
            f"{raw.first_samp}..{last} (first: row {int(beyond.index[0])}, field 'sample' = {int(row['sample'])}, "
            f"onset {row['onset']} s). The events file does not belong to this run, or the run is truncated."
        )
    onset_samples = kept["onset"].to_numpy(float) * raw.info["sfreq"] + raw.first_samp
    off = np.abs(onset_samples - kept["sample"].to_numpy()) > 1.5
    if off.any():
        warnings.warn(
            f"THINGS-MEG events file {path}: 'onset' and 'sample' disagree by more than one sample in {int(off.sum())}"
            " row(s); epochs are cut at 'sample', as in the published preprocessing.",
            stacklevel=3,
        )
    kept["split"] = kept["trial_type"].map(SPLITS)
    if "things_category_nr" in kept.columns:
        kept["things_category_nr"] = pd.to_numeric(kept["things_category_nr"]).astype("Int64")
    return kept.reset_index(drop=True), n_catch


def _read_channels(path: Path, raw: Any) -> tuple[list[str], list[str]]:
    """(bad channels, MEG channels mistyped in channels.tsv); refuses channels absent from it."""
    ensure_readable(path, "THINGS-MEG channels file")
    table = pd.read_csv(path, sep="\t", keep_default_na=False)
    for column in ("name", "type"):
        if column not in table.columns:
            raise ValueError(f"THINGS-MEG channels file {path} lacks the column {column!r}.")
    listed = set(table["name"].astype(str))
    missing = [name for name in raw.ch_names if name not in listed]
    if missing:
        raise ValueError(
            f"THINGS-MEG channels file {path} lists {len(table)} channels but {len(missing)} channel(s) of the run "
            f"{raw.filenames[0]} are missing from it: {missing[:5]}. The sidecar does not belong to this run."
        )
    status = table["status"].astype(str).str.lower() if "status" in table.columns else pd.Series("good", table.index)
    bads = table.loc[status == "bad", "name"].astype(str).tolist()
    types = dict(zip(table["name"].astype(str), table["type"].astype(str).str.upper()))
    header = dict(zip(raw.ch_names, raw.get_channel_types()))
    retyped = [n for n, t in header.items() if t in ("mag", "grad") and not types[n].startswith("MEG")]
    return bads, retyped


def _read_header(path: Path) -> Any:
    import mne

    try:
        if path.suffix == ".ds":
            return mne.io.read_raw_ctf(path, preload=False, verbose=False)
        return mne.io.read_raw_fif(path, preload=False, verbose=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"THINGS-MEG run {path} could not be read by mne: {exc}") from exc


def _runs_of(root: Path, subject: int) -> dict[tuple[int, int], Path]:
    spec = load_spec("things-meg")
    found: dict[tuple[int, int], Path] = {}
    # CTF folders are the release's originals: they win over a FIF of the same run.
    for key in ("runs_fif", "runs_ctf"):
        for fields, path in spec.find(key, root, subject=subject):
            found[(fields["session"], fields["run"])] = path
    return dict(sorted(found.items()))


def plan_things_meg_runs(
    root: str | Path,
    subject: int,
    *,
    sessions: Iterable[int] | None = None,
    runs: Iterable[int] | None = None,
    resample: float | None = None,
) -> list[ThingsMEGRun]:
    """Find, open (headers only) and check the runs of one subject.

    Parameters
    ----------
    root : path-like
        THINGS-MEG BIDS root.
    subject : int
        1..4 (``sub-BIGMEG{subject}``).
    sessions, runs : iterable of int, optional
        Default: every one present.
    resample : float, optional
        The rate the loader will resample to; without it every run must share one rate.

    Returns
    -------
    list of ThingsMEGRun
        In session, run order.

    Raises
    ------
    FileNotFoundError
        No run of the subject, or a requested session/run absent (the ones present are listed).
    ValueError
        Naming the file and field: events beyond the run's samples, channels
        missing from channels.tsv, sampling rates that differ across runs
        without ``resample``, unknown trial types.
    """
    root = Path(root)
    (subject,) = as_integer_ids([subject], "'subject' parameter of load_things_meg")
    found = _runs_of(root, subject)
    if not found:
        raise FileNotFoundError(
            f"No THINGS-MEG run of subject {subject} under {root} (expected e.g. "
            f"{load_spec('things-meg').entry('runs_ctf').pattern.format(subject=subject, session=1, run=1)})."
        )
    wanted_sessions = None if sessions is None else set(as_integer_ids(sessions, "'sessions' parameter"))
    wanted_runs = None if runs is None else set(as_integer_ids(runs, "'runs' parameter"))
    selected = {k: p for k, p in found.items()
                if (wanted_sessions is None or k[0] in wanted_sessions) and (wanted_runs is None or k[1] in wanted_runs)}
    absent = sorted((wanted_sessions or set()) - {s for s, _ in found})
    if absent or not selected:
        raise FileNotFoundError(
            f"THINGS-MEG subject {subject} under {root} has no run for sessions={sorted(wanted_sessions or [])} "
            f"runs={sorted(wanted_runs or [])}; present (session, run): {list(found)}."
        )
    spec = load_spec("things-meg")
    plans = []
    for (session, run), path in selected.items():
        fields = {"subject": subject, "session": session, "run": run}
        events_path, channels_path = spec.path("events", root, **fields), spec.path("channels", root, **fields)
        for sidecar in (events_path, channels_path):
            if not sidecar.is_file():
                raise FileNotFoundError(f"THINGS-MEG run {path} has no sidecar {sidecar}.")
        raw = _read_header(path)
        bads, retyped = _read_channels(channels_path, raw)
        trials, n_catch = _read_events(events_path, raw)
        plans.append(ThingsMEGRun(session, run, path, events_path, channels_path, raw, trials, n_catch, bads, retyped))
    rates = {p.sfreq for p in plans}
    if len(rates) > 1 and resample is None:
        listing = ", ".join(f"{p.path.name}: {p.sfreq:g} Hz" for p in plans)
        raise ValueError(
            f"THINGS-MEG runs of subject {subject} differ in sampling rate ({listing}). Pass resample=<Hz> to "
            "resample every run to one rate, or select runs of one rate."
        )
    return plans


def check_units(raw: Any, picks: list[str], where: Path, seconds: float = 10.0) -> float:
    """Robust amplitude (median over sensors of the median absolute deviation, T) of a run's first seconds.

    Warns, with the value seen, when it is outside :data:`PLAUSIBLE_TESLA`
    (e.g. data stored in fT, or a sensor unit of "V" in the header).
    """
    stop = min(raw.n_times, int(seconds * raw.info["sfreq"]))
    data = raw.get_data(picks=picks, stop=stop)
    spread = float(np.median(np.median(np.abs(data - np.median(data, axis=1, keepdims=True)), axis=1)))
    low, high = PLAUSIBLE_TESLA
    if not low <= spread <= high:
        warnings.warn(
            f"THINGS-MEG run {where}: MEG amplitudes look implausible for tesla: median absolute deviation "
            f"{spread:.3g} (expected {low:g}..{high:g} T). Check the unit of the recording (fT stored as T?).",
            stacklevel=3,
        )
    return spread


@fill_doc
def load_things_meg(
    root: str | Path,
    subject: int = 1,
    *,
    sessions: Iterable[int] | None = None,
    runs: Iterable[int] | None = None,
    preprocessing: None | str | dict[str, Any] = None,
    resample: float | None = None,
    images_root: str | Path | None = None,
    image_paths: str | Path | None = None,
    verbose: bool | int = False,
) -> Responses:
    """Epochs of THINGS-MEG's image trials, one subject, as a Responses of shape (trials, sensors, times).

    Runs are read with :func:`mne.io.read_raw_ctf` / :func:`mne.io.read_raw_fif`
    and their sidecars with pandas, not with :func:`mne_bids.read_raw_bids`:
    the release's channels.tsv types the MEG sensors ``OTHER``, from which
    mne-bids makes them ``misc`` and drops their coil definitions (mne-bids#1493),
    so ``picks="mag"`` finds nothing and sensor positions are lost. Here the
    channel types, coils and positions come from the run's own header, and
    channels.tsv gives only the bad channels (``status``); the channels it
    mistypes are counted in ``info["n_retyped_channels"]``.

    Parameters
    ----------
    root : path-like
        THINGS-MEG BIDS root.
    subject : int
        1..4.
    sessions, runs : iterable of int, optional
        Default every one present.
    preprocessing : None, "published", "benchetrit" or dict
        See :mod:`neurodec.data.meg_preprocessing`. None: epochs -0.1..1.3 s
        at the recorded rate, unfiltered, in tesla.
    resample : float, optional
        Resample every run to this rate (Hz, :meth:`mne.io.Raw.resample`, events
        moved with it) before filtering; needed when runs differ in rate.
    images_root, image_paths : path-like, optional
        A local THINGS ``object_images`` folder (and its image-path list): every
        trial's image is then looked up, and its concept checked against
        ``things_category_nr``, before any run is read (see
        :func:`~neurodec.data.things_meg_stimuli.load_things_meg_stimuli`).
    %(verbose)s

    Returns
    -------
    Responses
        ``data`` float32 of shape (n_trials, n_sensors, n_times): exp and test
        trials of every run, in order; catch trials are dropped (counted in
        ``info["n_catch_dropped"]``). ``trials``: ``stimulus_id`` (THINGS image
        number), ``things_category_nr``, ``trial_type``, ``split`` (exp -> "train",
        test -> "test"), ``session``, ``run``, ``repeat`` (0-based presentation
        count of the image among the loaded trials), ``onset``, ``sample``.
        ``units``: sensor name, type, unit, head-frame position (m), coil type.
        ``info``: ``sfreq``, ``preprocessing``, ``line_freq``, provenance.

    Raises
    ------
    FileNotFoundError, ValueError
        See :func:`plan_things_meg_runs`; also a preprocessing that cannot be
        applied (e.g. a decimation that does not divide the rate).
    """
    from tqdm.auto import tqdm

    params = resolve_preprocessing(preprocessing)
    plans = plan_things_meg_runs(root, subject, sessions=sessions, runs=runs, resample=resample)
    sfreq = float(resample) if resample is not None else plans[0].sfreq
    decimation_factor(sfreq, params["sfreq"], f"load_things_meg(preprocessing={preprocessing!r})")
    meg = [set(n for n, t in zip(p.raw.ch_names, p.raw.get_channel_types()) if t == "mag") for p in plans]
    dropped = set(params["drop_channels"]).union(*(p.bads for p in plans))
    channels = [n for n in plans[0].raw.ch_names if all(n in m for m in meg) and n not in dropped]
    if not channels:
        raise ValueError(f"THINGS-MEG subject {subject}: no MEG sensor is present and good in every selected run.")
    if images_root is not None:
        from .things_meg_stimuli import load_things_meg_stimuli

        shown = pd.concat([p.trials for p in plans])
        categories = dict(zip(shown["stimulus_id"], shown.get("things_category_nr", pd.Series(dtype="Int64"))))
        load_things_meg_stimuli(images_root, shown["stimulus_id"].unique(), image_paths=image_paths,
                                categories={k: v for k, v in categories.items() if pd.notna(v)})
    blocks, tables, times = [], [], None
    for plan in tqdm(plans, desc=f"THINGS-MEG sub-BIGMEG{subject}", disable=not verbose):
        raw = plan.raw.copy().pick(channels).load_data(verbose=False)
        check_units(raw, channels, plan.path)
        samples = plan.trials["sample"].to_numpy()
        if resample is not None and raw.info["sfreq"] != sfreq:
            events = np.c_[samples, np.zeros_like(samples), np.arange(len(samples))]
            raw, events = raw.resample(sfreq, events=events, verbose=False)
            samples = events[:, 0]
        keep = _inside(raw, samples, params, plan)
        data, times = epoch_run(raw, samples[keep], params, where=str(plan.path))
        blocks.append(data.astype(np.float32))
        tables.append(plan.trials[keep].assign(session=plan.session, run=plan.run))
    trials = pd.concat(tables, ignore_index=True)
    trials["repeat"] = trials.groupby("stimulus_id").cumcount()
    columns = ["stimulus_id", "things_category_nr", "trial_type", "split", "session", "run", "repeat", "onset", "sample"]
    info = plans[0].raw.info
    units = channel_units(info).set_index("channel").loc[channels].reset_index()
    n_catch = sum(p.n_catch for p in plans)
    logger.info("THINGS-MEG sub-BIGMEG%d: %d trials kept, %d catch trials dropped", subject, len(trials), n_catch)
    return Responses(
        data=np.concatenate(blocks),
        trials=trials[[c for c in columns if c in trials.columns]],
        units=units,
        subject=f"BIGMEG{subject}",
        modality="meg",
        space="sensor",
        times=times,
        info={
            "dataset": "things-meg",
            "root": str(root),
            "images_root": None if images_root is None else str(images_root),
            "sfreq": sfreq / decimation_factor(sfreq, params["sfreq"], "load_things_meg"),
            "line_freq": info.get("line_freq"),
            "preprocessing": params,
            "n_catch_dropped": n_catch,
            "n_retyped_channels": len(set().union(*(p.retyped for p in plans))),
            "dropped_channels": sorted(dropped & set(plans[0].raw.ch_names)),
        },
    )


def _inside(raw: Any, samples: np.ndarray, params: dict[str, Any], plan: ThingsMEGRun) -> np.ndarray:
    """Mask of the onsets whose whole epoch lies inside the run; warns, naming the file, about the others."""
    sfreq = raw.info["sfreq"]
    start = samples + int(np.round(params["tmin"] * sfreq))
    stop = samples + int(np.round(params["tmax"] * sfreq))
    keep = (start >= raw.first_samp) & (stop <= raw.first_samp + raw.n_times - 1)
    if not keep.all():
        warnings.warn(
            f"THINGS-MEG run {plan.path}: {int((~keep).sum())} trial(s) of {plan.events_path.name} have an epoch "
            f"({params['tmin']}..{params['tmax']} s) reaching past the recording; they are left out.",
            stacklevel=3,
        )
    return keep
