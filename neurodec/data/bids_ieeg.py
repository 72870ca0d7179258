"""BIDS iEEG loader: runs, sidecars and preprocessing -> :class:`~neurodec.data.Responses`.

Built for the layout of the naturalistic film dataset (OpenNeuro ds003688,
``data_specs/bids-ieeg.yaml``) and any BIDS iEEG dataset alike: runs are
found with ``mne_bids.BIDSPath.match``, read with ``mne.io.read_raw``
(BrainVision, EDF, ...), and their sidecars with
:mod:`~neurodec.data.bids_ieeg_sidecars`:

- channel types come from channels.tsv (not from the recording's header), and
  its ``status`` column marks bad channels;
- electrode positions stay in their own frame and units, exactly as in
  electrodes.tsv, with the frame (``coord_frame``: "ACPC", "MNI...", or
  "unknown" with a warning) and units recorded in ``units`` and ``info``; they
  are never moved to mne's "head" frame;
- events are looked up with the run's ``acq-`` entity and, failing that,
  without it (ds003688 names them without).

Continuous recordings are returned as ONE TRIAL PER RUN, data of shape
(n_runs, n_channels, n_times) (runs cropped to the shortest, with a warning),
unless ``epochs`` asks for windows around events: then one trial per event.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from .._docs import fill_doc
from . import bids_ieeg_sidecars as sidecars
from .ieeg_preprocessing import IEEG_TYPES

__all__ = ["load_bids_ieeg"]

_RAW_EXTENSIONS = (".vhdr", ".edf", ".bdf", ".set", ".fif")


def _subject_label(root: Path, subject: Any) -> str:
    import mne_bids

    labels = mne_bids.get_entity_vals(root, "subject")
    label = str(subject).removeprefix("sub-")
    if label in labels:
        return label
    if isinstance(subject, (int, np.integer)):  # 1 -> "01", "001", ...
        matches = [lab for lab in labels if lab.isdigit() and int(lab) == int(subject)]
        if len(matches) == 1:
            return matches[0]
    raise ValueError(f"The 'subject' {subject!r} is not in {root}; subjects there: {labels}.")


def _find_runs(root: Path, subject: str, session: str | None, task: str | None, acquisition: str | None,
               runs: Sequence[int | str] | None) -> list[Any]:  # fmt: skip
    import mne_bids

    query = mne_bids.BIDSPath(
        root=root, subject=subject, session=session, task=task, acquisition=acquisition, datatype="ieeg",
        suffix="ieeg", check=False,
    )  # fmt: skip
    found = [p for p in query.match() if p.extension in _RAW_EXTENSIONS]
    if runs is not None:
        wanted = {str(r) for r in runs}
        found = [p for p in found if str(p.run) in wanted or (p.run is not None and str(int(p.run)) in wanted)]
    if not found:
        raise FileNotFoundError(
            f"No iEEG run of sub-{subject} matches session={session!r}, task={task!r}, "
            f"acquisition={acquisition!r}, runs={runs!r} under {root}."
        )
    for entity in ("task", "acquisition"):
        values = sorted({str(getattr(p, entity)) for p in found})
        if len(values) > 1:
            raise ValueError(
                f"sub-{subject} has runs of several {entity} values {values}; pass '{entity}' to choose one "
                "(their channels or lengths differ)."
            )
    return sorted(found, key=lambda p: (str(p.session), str(p.run)))


def _run_index(path: Any) -> int | None:
    """The run entity as an integer (BIDS run indices are non-negative integers, maybe zero-padded)."""
    return None if path.run is None else int(path.run)


def _units_table(channels: pd.DataFrame, electrodes: pd.DataFrame, frame: dict[str, Any]) -> pd.DataFrame:
    units = pd.DataFrame({"name": channels["name"], "type": channels["mne_type"]})
    for column in channels.columns.drop(["name", "type", "mne_type"]):
        units[column if column != "units" else "unit"] = channels[column].to_numpy()
    for column in electrodes.columns:
        if column not in units.columns:
            units[column] = electrodes[column].to_numpy()
    units["coord_frame"] = frame.get("coord_frame", "unknown")
    units["coord_units"] = frame.get("coord_units", "n/a")
    return units


def _bipolar_units(units: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Rows of bipolar channels "A-B": A's metadata, position at the midpoint of A and B."""
    table = units.set_index("name")
    rows = []
    for name in names:
        anode, cathode = name.split("-", 1)
        row = table.loc[anode].copy()
        row[["x", "y", "z"]] = (table.loc[anode, ["x", "y", "z"]] + table.loc[cathode, ["x", "y", "z"]]) / 2.0
        rows.append(row.rename(name))
    out = pd.DataFrame(rows).rename_axis("name").reset_index()
    out["anode"] = [n.split("-", 1)[0] for n in names]
    out["cathode"] = [n.split("-", 1)[1] for n in names]
    return out


def _load_run(path: Any, *, reference: str | None, notch: bool, high_gamma: bool, sfreq: float | None,
              high_gamma_kwargs: dict[str, Any], verbose: bool | int) -> dict[str, Any]:  # fmt: skip
    import mne

    from . import ieeg_preprocessing as prep

    fpath = Path(path.fpath)
    raw = mne.io.read_raw(fpath, preload=True, verbose="error")
    channels = sidecars.read_channels(
        Path(path.copy().update(suffix="channels", extension=".tsv", check=False).fpath), raw.ch_names
    )
    raw.set_channel_types(dict(zip(channels["name"], channels["mne_type"])), on_unit_change="ignore", verbose="error")
    if "status" in channels.columns:
        raw.info["bads"] = channels.loc[channels["status"].astype(str).str.lower() == "bad", "name"].tolist()
    sidecar = Path(path.copy().update(extension=".json", check=False).fpath)
    meta = json.loads(sidecar.read_text(encoding="utf-8-sig")) if sidecar.exists() else {}
    if meta.get("PowerLineFrequency") not in (None, "n/a"):
        raw.info["line_freq"] = float(meta["PowerLineFrequency"])
    declared = meta.get("SamplingFrequency")
    if declared not in (None, "n/a") and abs(float(declared) - raw.info["sfreq"]) > 1e-6 * raw.info["sfreq"]:
        warnings.warn(f"{sidecar.name} declares {declared} Hz but {fpath.name} is sampled at {raw.info['sfreq']} Hz.")

    ieeg = [n for n, t in zip(raw.ch_names, raw.get_channel_types()) if t in IEEG_TYPES and n not in raw.info["bads"]]
    if not ieeg:
        raise ValueError(f"{fpath.name} has no good iEEG channel (types {IEEG_TYPES}) according to its channels.tsv.")
    values = raw.get_data(picks=ieeg)
    bad = ~np.isfinite(values)
    if bad.any():
        channel, sample = np.argwhere(bad)[0]
        raise ValueError(
            f"{fpath} holds {int(bad.sum())} NaN or infinite sample(s) (first: channel {ieeg[channel]}, "
            f"sample {sample}); iEEG samples must be finite."
        )
    sidecars.check_amplitudes(values, ieeg, fpath.name)
    raw.pick(ieeg)
    channels = channels.set_index("name").loc[ieeg].reset_index()
    found = sidecars.find_electrodes(path)
    if found is None:
        warnings.warn(f"No electrodes.tsv for {fpath.name}: every channel's x, y, z is NaN.")
        electrodes, frame = pd.DataFrame({"x": np.nan, "y": np.nan, "z": np.nan}, index=range(len(ieeg))), {}
    else:
        frame = sidecars.read_coordsystem(found[1], found[0])
        electrodes = sidecars.read_electrodes(found[0], ieeg, channels["mne_type"].tolist())
    units = _units_table(channels, electrodes, frame)

    events_path = sidecars.find_events(path)
    events = None if events_path is None else sidecars.read_events(events_path, raw.times[-1])
    if notch:
        raw = prep.notch_line_noise(raw, verbose=verbose)
    if reference is not None:
        groups = units["group"].astype(str).tolist() if "group" in units.columns else None
        raw = prep.rereference(raw, reference, groups=groups, verbose=verbose)
        if reference == "bipolar":
            units = _bipolar_units(units, raw.ch_names)
    if high_gamma:
        raw = prep.high_gamma(raw, verbose=verbose, **high_gamma_kwargs)
        units["unit"] = "z" if high_gamma_kwargs.get("zscore", True) else "relative amplitude"
    if sfreq is not None and sfreq != raw.info["sfreq"]:
        raw = prep.resample(raw, sfreq, verbose=verbose)
    return {"raw": raw, "units": units, "events": events, "frame": frame, "path": path}


def _epoch(run: dict[str, Any], epochs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    import mne

    raw, events, name = run["raw"], run["events"], Path(run["path"].fpath).name
    if events is None:
        raise ValueError(f"'epochs' needs events, but {name} has no events.tsv (with or without its acq- entity).")
    wanted = epochs.get("event_names")
    chosen = events if wanted is None else events[events["trial_type"].isin(list(wanted))]
    if chosen.empty:
        raise ValueError(f"No event of {name} is among {wanted}; trial types: {sorted(events['trial_type'].unique())}.")
    codes = {kind: i + 1 for i, kind in enumerate(sorted(chosen["trial_type"].astype(str).unique()))}
    samples = np.round(chosen["onset"].to_numpy(float) * raw.info["sfreq"]).astype(int) + raw.first_samp
    array = np.column_stack([samples, np.zeros_like(samples), chosen["trial_type"].astype(str).map(codes)])
    ep = mne.Epochs(raw, array, codes, tmin=epochs["tmin"], tmax=epochs["tmax"], baseline=None, preload=True,
                    reject_by_annotation=False, event_repeated="keep", verbose="error")  # fmt: skip
    if len(ep) < len(chosen):
        warnings.warn(f"{len(chosen) - len(ep)} epoch(s) of {name} extend beyond the run and were dropped.")
    return ep.get_data(), ep.times, chosen.iloc[ep.selection].reset_index(drop=True)


def _load_all(root: Path, subject: Any, session: str | None, task: str | None, acquisition: str | None,
              runs: Sequence[int | str] | None, epochs: dict[str, Any] | None, options: dict[str, Any]) -> tuple:  # fmt: skip
    """Find, read, preprocess and cut every run; checks that the runs agree."""
    label = _subject_label(root, subject)
    paths = _find_runs(root, label, session, task, acquisition, runs)
    loaded = [_load_run(p, **options) for p in paths]
    rates = {Path(r["path"].fpath).name: r["raw"].info["sfreq"] for r in loaded}
    if len(set(rates.values())) > 1:
        raise ValueError(f"The runs have different sampling rates {rates}; pass 'sfreq' to resample them to one.")
    names = loaded[0]["raw"].ch_names
    for run in loaded[1:]:
        if run["raw"].ch_names != names:
            raise ValueError(
                f"{Path(run['path'].fpath).name} has channels {run['raw'].ch_names}, "
                f"but {Path(loaded[0]['path'].fpath).name} has {names}."
            )
    blocks, tables = [], []
    for run in loaded:
        p = run["path"]
        base = {"session": p.session, "run": _run_index(p), "task": p.task, "acquisition": p.acquisition}
        if epochs is None:
            blocks.append(run["raw"].get_data()[None])
            tables.append(pd.DataFrame([{"stimulus_id": p.task, **base}]))
            times = run["raw"].times
        else:
            data, times, chosen = _epoch(run, epochs)
            blocks.append(data)
            tables.append(chosen.assign(stimulus_id=chosen["trial_type"].astype(str), **base))
    if epochs is None and len({b.shape[2] for b in blocks}) > 1:
        n = min(b.shape[2] for b in blocks)
        warnings.warn(f"Runs of different lengths {[b.shape[2] for b in blocks]} samples are cropped to {n}.")
        blocks, times = [b[..., :n] for b in blocks], times[:n]
    return label, paths, loaded, blocks, tables, times


@fill_doc
def load_bids_ieeg(
    root: str | os.PathLike,
    subject: str | int,
    session: str | None = None,
    *,
    task: str | None = None,
    acquisition: str | None = None,
    runs: Sequence[int | str] | None = None,
    reference: Literal["average", "bipolar"] | None = None,
    notch: bool = False,
    high_gamma: bool = False,
    high_gamma_kwargs: dict[str, Any] | None = None,
    sfreq: float | None = None,
    epochs: dict[str, Any] | None = None,
    verbose: bool | int = False,
) -> Any:
    """Load the iEEG runs of one subject from a BIDS dataset as :class:`~neurodec.data.Responses`.

    Parameters
    ----------
    root : path-like
        The BIDS root.
    subject : str or int
        Subject label ("01", "sub-01") or number (1 finds "01").
    session, task, acquisition : str, optional
        BIDS entities; None matches any. Runs of several tasks or acquisitions
        are refused (pass one).
    runs : sequence of int or str, optional
        Run indices to load (default all).
    reference : {"average", "bipolar"}, optional
        Common average of the good iEEG channels, or bipolar per shaft / strip
        (channels "LA1-LA2", positioned at the contacts' midpoint, with ``anode``
        and ``cathode`` columns); see :func:`~neurodec.data.ieeg_preprocessing.rereference`.
    notch : bool
        Notch-filter the line frequency (ieeg.json's PowerLineFrequency) and harmonics first.
    high_gamma : bool
        Replace the signal by its high-gamma envelope
        (:func:`~neurodec.data.ieeg_preprocessing.high_gamma`; ``high_gamma_kwargs`` go to it).
    high_gamma_kwargs : dict, optional
    sfreq : float, optional
        Resample every run to this rate (Hz), after the other steps. Without it,
        runs sampled at different rates are refused.
    epochs : dict, optional
        ``{"tmin": float, "tmax": float, "event_names": [...]}``: one trial per
        event of events.tsv whose ``trial_type`` is listed (all events without
        ``event_names``), from ``tmin`` to ``tmax`` seconds around its onset.
        Default: one trial per run (the continuous recording).
    %(verbose)s

    Returns
    -------
    Responses
        ``modality`` "ieeg"; ``data`` of shape (n_trials, n_channels, n_times),
        volts unless ``high_gamma``; ``units``: channels.tsv columns (``unit``
        from its ``units``) with ``type`` as mne names it, electrodes.tsv columns
        (``x``, ``y``, ``z`` as in the file), ``coord_frame`` and ``coord_units``;
        ``trials``: ``stimulus_id`` (the task for whole runs, the event's
        ``trial_type`` for epochs) and the event columns; ``info``: ``sfreq``,
        ``line_freq``, ``coord_frame``, ``coord_units``, ``coord_space``,
        ``events`` (all runs', with ``run``), ``files`` and ``warnings`` (the
        messages of the warnings given while loading).
    """
    from .responses import Responses

    root = Path(root)
    if reference not in (None, "average", "bipolar"):
        raise ValueError(f"The 'reference' parameter of load_bids_ieeg must be None, 'average' or 'bipolar'. Got {reference!r}.")  # fmt: skip
    if epochs is not None and not {"tmin", "tmax"} <= set(epochs):
        raise ValueError(f"The 'epochs' parameter of load_bids_ieeg needs 'tmin' and 'tmax' keys. Got {sorted(epochs)}.")  # fmt: skip
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            label, paths, loaded, blocks, tables, times = _load_all(
                root, subject, session, task, acquisition, runs, epochs,
                dict(reference=reference, notch=notch, high_gamma=high_gamma, sfreq=sfreq,
                     high_gamma_kwargs=dict(high_gamma_kwargs or {}), verbose=verbose),
            )  # fmt: skip
    finally:
        for w in caught:  # re-emitted for the caller (also on error), and kept in info for check-data
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    trials = pd.concat(tables, ignore_index=True)
    trials["repeat"] = trials.groupby("stimulus_id").cumcount()
    trials["split"] = "train"  # BIDS iEEG datasets define no test split
    first = loaded[0]
    all_events = [r["events"].assign(run=_run_index(r["path"])) for r in loaded if r["events"] is not None]
    info = {
        "sfreq": float(first["raw"].info["sfreq"]), "line_freq": first["raw"].info["line_freq"],
        "coord_frame": first["frame"].get("coord_frame", "unknown"), "coord_units": first["frame"].get("coord_units"),
        "coord_space": first["frame"].get("coord_space"), "reference": reference, "high_gamma": high_gamma,
        "events": pd.concat(all_events, ignore_index=True) if all_events else None,
        "files": [str(r["path"].fpath) for r in loaded], "warnings": [str(w.message) for w in caught],
        "dataset": "bids-ieeg", "root": str(root),
    }  # fmt: skip
    return Responses(
        data=np.concatenate(blocks), trials=trials, units=first["units"], subject=f"sub-{label}",
        modality="ieeg", space="electrode", times=np.asarray(times), info=info,
    )  # fmt: skip
