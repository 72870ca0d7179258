"""BIDS iEEG sidecars read and checked for :func:`~neurodec.data.bids_ieeg.load_bids_ieeg`.

Sidecars are read with pandas / json rather than through ``mne_bids.read_raw_bids``,
which sets channel types that differ from channels.tsv (mne-bids#1493), moves
MNI / ACPC electrode positions to the "head" frame (mne-bids#723) and looks for
events with the ``acq-`` entity that ds003688 does not give them.

Every check names the file at fault and the values seen.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "AMPLITUDE_RANGE",
    "BIDS_TO_MNE_TYPES",
    "check_amplitudes",
    "find_electrodes",
    "find_events",
    "read_channels",
    "read_coordsystem",
    "read_electrodes",
    "read_events",
]

#: BIDS channels.tsv types -> mne channel types.
BIDS_TO_MNE_TYPES = {
    "SEEG": "seeg", "ECOG": "ecog", "DBS": "dbs", "EEG": "eeg", "EOG": "eog", "ECG": "ecg", "EMG": "emg",
    "MISC": "misc", "TRIG": "stim", "REF": "misc", "AUDIO": "misc", "PD": "misc", "SYSCLOCK": "syst",
    "RESP": "resp", "GSR": "gsr", "TEMP": "temp", "VEOG": "eog", "HEOG": "eog",
}  # fmt: skip

#: Plausible range (volts) of the standard deviation of an intracranial channel.
AMPLITUDE_RANGE = (1e-7, 1e-2)


def _read_tsv(path: Path) -> pd.DataFrame:
    # utf-8-sig: some writers (e.g. py-neuromodulation's) start the file with a byte-order mark.
    return pd.read_csv(path, sep="\t", encoding="utf-8-sig", na_values=["n/a"], keep_default_na=False)


def read_channels(path: Path, raw_names: list[str]) -> pd.DataFrame:
    """channels.tsv of a run, rows in the recording's channel order, with ``mne_type``.

    Raises ValueError when the recording has channels that channels.tsv lacks,
    or the reverse.
    """
    if not path.exists():
        raise FileNotFoundError(f"The channels sidecar {path} is missing: BIDS iEEG requires one per run.")
    table = _read_tsv(path)
    for column in ("name", "type"):
        if column not in table.columns:
            raise ValueError(f"{path} lacks the required column {column!r}; columns: {list(table.columns)}.")
    table["name"] = table["name"].astype(str)
    missing = [n for n in raw_names if n not in set(table["name"])]
    if missing:
        raise ValueError(
            f"The recording has channel(s) {missing} that are missing from {path}; "
            "channels.tsv must list every channel of the run."
        )
    extra = [n for n in table["name"] if n not in set(raw_names)]
    if extra:
        raise ValueError(f"{path} lists channel(s) {extra} that the recording does not have.")
    table = table.set_index("name").loc[raw_names].reset_index()
    kinds = table["type"].astype(str).str.upper()
    unknown = sorted(set(kinds) - set(BIDS_TO_MNE_TYPES))
    if unknown:
        warnings.warn(f"{path}: unknown channel type(s) {unknown}; read as 'misc'.", stacklevel=3)
    table["mne_type"] = [BIDS_TO_MNE_TYPES.get(k, "misc") for k in kinds]
    return table


def find_events(ieeg_path: Any) -> Path | None:
    """The events.tsv of a run: with its ``acq-`` entity, else without it (ds003688), else None."""
    with_acq = ieeg_path.copy().update(suffix="events", extension=".tsv", check=False)
    candidates = [with_acq, with_acq.copy().update(acquisition=None, check=False)]
    for candidate in candidates:
        if Path(candidate.fpath).exists():
            return Path(candidate.fpath)
    return None


def read_events(path: Path, duration: float) -> pd.DataFrame:
    """events.tsv of a run (onset, duration, trial_type, value, ...).

    Raises ValueError when an event starts outside the run (negative onset, or
    after its last sample at ``duration`` seconds).
    """
    table = _read_tsv(path)
    if "onset" not in table.columns:
        raise ValueError(f"{path} lacks the required column 'onset'; columns: {list(table.columns)}.")
    if "trial_type" not in table.columns:
        table["trial_type"] = table["value"].astype(str) if "value" in table.columns else "event"
    onsets = table["onset"].to_numpy(float)
    outside = table[(onsets < 0) | (onsets > duration)]
    if len(outside):
        shown = outside[["onset", "trial_type"]].head(5).to_dict("records")
        raise ValueError(
            f"{path} has {len(outside)} event(s) outside the run, which lasts {duration:.3f} s: {shown}. "
            "The events do not belong to this recording, or the recording is truncated."
        )
    return table


def find_electrodes(ieeg_path: Any) -> tuple[Path, Path] | None:
    """electrodes.tsv and coordsystem.json of a run: same subject, session and acquisition; any space.

    mne-bids writes ``space-<frame>_electrodes.tsv``; ds003688 has
    ``acq-<acq>_electrodes.tsv`` without a space. Returns None when there is none.
    """
    folder = Path(ieeg_path.fpath).parent
    prefix = f"sub-{ieeg_path.subject}" + (f"_ses-{ieeg_path.session}" if ieeg_path.session else "")
    found = sorted(folder.glob(f"{prefix}*_electrodes.tsv"))
    acq = ieeg_path.acquisition
    if acq is not None and any(f"_acq-{acq}_" in p.name for p in found):
        found = [p for p in found if f"_acq-{acq}_" in p.name]
    elif acq is not None:
        found = [p for p in found if "_acq-" not in p.name]
    if not found:
        return None
    if len(found) > 1:
        raise ValueError(
            f"Several electrode files match {Path(ieeg_path.fpath).name}: {[p.name for p in found]}. "
            "Keep one per acquisition (space) or pass 'acquisition'."
        )
    electrodes = found[0]
    return electrodes, electrodes.with_name(electrodes.name.replace("_electrodes.tsv", "_coordsystem.json"))


def read_coordsystem(path: Path, electrodes: Path) -> dict[str, Any]:
    """Frame and units of the electrode positions.

    Returns a dict with ``coord_frame`` (the iEEGCoordinateSystem as declared,
    e.g. "ACPC" or "MNI152NLin2009aSym", or "unknown" when the file says
    "Other" or nothing; a warning says so), ``coord_units``, ``coord_space``
    (the ``space-`` entity of the electrodes file, if any) and ``description``.
    """
    space = next((part[6:] for part in electrodes.name.split("_") if part.startswith("space-")), None)
    sidecar = json.loads(path.read_text(encoding="utf-8-sig")) if path.exists() else {}
    declared = sidecar.get("iEEGCoordinateSystem")
    # "Other" (or nothing) names no frame: the positions' frame is unknown, whatever the file name says.
    frame = str(declared) if declared and declared != "Other" else "unknown"
    units = sidecar.get("iEEGCoordinateUnits", "n/a")
    if frame == "unknown":
        warnings.warn(
            f"{path.name} declares the coordinate system {declared!r}"
            + (f" (the file name says space {space!r})" if space else "")
            + "; the electrode frame is recorded as 'unknown' and positions are kept as in "
            f"{electrodes.name}.",
            stacklevel=3,
        )
    if units not in ("m", "mm", "cm", "pixels"):
        warnings.warn(f"{path.name}: iEEGCoordinateUnits is {units!r}; expected 'm', 'mm' or 'cm'.", stacklevel=3)
    return {
        "coord_frame": frame, "coord_units": units, "coord_space": space,
        "coord_description": sidecar.get("iEEGCoordinateSystemDescription"),
    }  # fmt: skip


def read_electrodes(path: Path, names: list[str], types: list[str]) -> pd.DataFrame:
    """Positions (x, y, z, as in the file) and extra columns of ``names``; NaN where missing.

    Warns, naming them, about iEEG channels without coordinates (absent from
    the file or "n/a").
    """
    table = _read_tsv(path)
    if "name" not in table.columns:
        raise ValueError(f"{path} lacks the required column 'name'; columns: {list(table.columns)}.")
    table["name"] = table["name"].astype(str)
    table = table.drop_duplicates("name").set_index("name")
    out = table.reindex(names)
    for axis in ("x", "y", "z"):
        out[axis] = pd.to_numeric(out[axis], errors="coerce") if axis in out.columns else np.nan
    ieeg = np.isin(types, ("seeg", "ecog", "dbs"))
    lacking = [n for n, ok, flag in zip(names, out[["x", "y", "z"]].notna().all(axis=1), ieeg) if flag and not ok]
    if lacking:
        warnings.warn(
            f"{len(lacking)} iEEG channel(s) have no coordinates in {path.name}: {lacking}; their x, y, z are "
            "NaN (spatial models fall back to their labels).",
            stacklevel=3,
        )
    return out.reset_index(drop=True)


def check_amplitudes(data: np.ndarray, names: list[str], where: str) -> str | None:
    """Warn when iEEG amplitudes are implausible (standard deviation outside :data:`AMPLITUDE_RANGE`).

    Parameters
    ----------
    data : array of shape (n_channels, n_times)
        iEEG channels in volts, as read with the file's declared units.
    names : list of str
    where : str
        The file, for the message.

    Returns
    -------
    str or None
        The warning's message, when one was given.
    """
    if data.size == 0:
        return None
    std = data.std(axis=1)
    median = float(np.median(std))
    if AMPLITUDE_RANGE[0] <= median <= AMPLITUDE_RANGE[1]:
        return None
    worst = int(np.argmax(std)) if median > AMPLITUDE_RANGE[1] else int(np.argmin(std))
    message = (
        f"{where}: implausible iEEG amplitudes: the median channel standard deviation is {median:.4g} V "
        f"({names[worst]}: {std[worst]:.4g} V), outside the plausible {AMPLITUDE_RANGE[0]:g}-"
        f"{AMPLITUDE_RANGE[1]:g} V; the units declared by the recording (and channels.tsv) are probably wrong. "
        "Values are kept as read."
    )
    warnings.warn(message, stacklevel=3)
    return message
