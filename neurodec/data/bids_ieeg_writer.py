"""Write a simulated iEEG recording as a miniature BIDS dataset in ds003688's layout.

The layout is that of the naturalistic film dataset (OpenNeuro ds003688,
``data_specs/bids-ieeg.yaml``)::

    dataset_description.json, participants.tsv
    sub-01/ses-iemu/ieeg/
        sub-01_ses-iemu_task-film_acq-clinical_run-1_ieeg.{vhdr,vmrk,eeg}   BrainVision (pybv)
        sub-01_ses-iemu_task-film_acq-clinical_run-1_channels.tsv
        sub-01_ses-iemu_task-film_acq-clinical_run-1_ieeg.json
        sub-01_ses-iemu_task-film_run-1_events.tsv                          no acq- entity
        sub-01_ses-iemu_acq-clinical_electrodes.tsv                          name x y z size manufacturer
        sub-01_ses-iemu_acq-clinical_coordsystem.json                        ACPC, mm

The files are written with pybv and pandas rather than mne-bids, because
mne-bids writes a different layout (``space-`` electrodes in metres, events
with the ``acq-`` entity). Every file is written atomically.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import write_json_atomic, write_text_atomic
from .ieeg_simulation import SimulatedIEEG

__all__ = ["write_bids_ieeg"]

def _write_tsv(path: Path, table: pd.DataFrame) -> None:
    write_text_atomic(path, table.to_csv(sep="\t", index=False, na_rep="n/a", lineterminator="\n"))


def write_bids_ieeg(
    root: str | os.PathLike,
    simulation: SimulatedIEEG,
    *,
    subject: str = "01",
    session: str = "iemu",
    task: str = "film",
    acquisition: str = "clinical",
    run: int = 1,
    coordinate_system: str = "ACPC",
) -> Path:
    """Write ``simulation`` as one run of a BIDS iEEG dataset in ds003688's layout.

    Parameters
    ----------
    root : path-like
        The dataset root (created if needed; other runs already there are kept).
    simulation : SimulatedIEEG
        From :func:`~neurodec.data.ieeg_simulation.simulate_ieeg`.
    subject, session, task, acquisition : str
        BIDS entities (without their ``sub-`` etc. prefixes).
    run : int
        Run index, written without zero padding as in ds003688.
    coordinate_system : str
        ``iEEGCoordinateSystem`` of the coordsystem sidecar. The simulated
        positions are MNI-like millimetres; ds003688 declares "ACPC".

    Returns
    -------
    pathlib.Path
        The ``.vhdr`` file of the run.
    """
    import pybv

    unit = "µV"  # ds003688's, and the only voltage unit BrainVision readers all understand
    root = Path(root)
    folder = root / f"sub-{subject}" / f"ses-{session}" / "ieeg"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"sub-{subject}_ses-{session}"
    base = f"{stem}_task-{task}_acq-{acquisition}_run-{run}"
    channels = simulation.channels

    if not (root / "dataset_description.json").exists():
        write_json_atomic(
            root / "dataset_description.json",
            {"Name": "neurodec simulated iEEG", "BIDSVersion": "1.6.0", "DatasetType": "raw",
             "GeneratedBy": [{"Name": "neurodec", "Description": "neurodec.data.ieeg_simulation"}]},
        )  # fmt: skip
    participants = root / "participants.tsv"
    known = pd.read_csv(participants, sep="\t")["participant_id"].tolist() if participants.exists() else []
    if f"sub-{subject}" not in known:
        _write_tsv(participants, pd.DataFrame({"participant_id": known + [f"sub-{subject}"]}))

    # BrainVision: the three files are written into a temporary sibling folder, then moved into place.
    with tempfile.TemporaryDirectory(dir=folder, prefix=".tmp-") as tmp:
        pybv.write_brainvision(
            data=simulation.data, sfreq=simulation.sfreq, ch_names=simulation.ch_names, fname_base=f"{base}_ieeg",
            folder_out=tmp, unit=unit, overwrite=True,
        )  # fmt: skip
        for suffix in (".eeg", ".vmrk", ".vhdr"):  # header last: it is what readers open
            os.replace(Path(tmp) / f"{base}_ieeg{suffix}", folder / f"{base}_ieeg{suffix}")

    n = len(channels)
    _write_tsv(
        folder / f"{base}_channels.tsv",
        pd.DataFrame({
            "name": channels["name"], "type": channels["type"].str.upper(), "units": [unit] * n,
            "low_cutoff": [0.15] * n, "high_cutoff": [simulation.sfreq / 4] * n, "reference": ["n/a"] * n,
            "group": channels["group"], "notch": ["n/a"] * n, "status": ["good"] * n,
        }),
    )  # fmt: skip
    types = channels["type"].str.upper().value_counts()
    write_json_atomic(
        folder / f"{base}_ieeg.json",
        {"TaskName": task, "SamplingFrequency": simulation.sfreq, "PowerLineFrequency": simulation.line_freq,
         "iEEGReference": "n/a", "SoftwareFilters": "n/a", "RecordingType": "continuous",
         "RecordingDuration": simulation.data.shape[1] / simulation.sfreq,
         "ECOGChannelCount": int(types.get("ECOG", 0)), "SEEGChannelCount": int(types.get("SEEG", 0))},
    )  # fmt: skip
    _write_tsv(folder / f"{stem}_task-{task}_run-{run}_events.tsv", simulation.events)
    electrodes = channels[["name", "x", "y", "z"]].assign(size=4.2, manufacturer="simulated")
    # Region labels are extra columns (BIDS allows them); the loader keeps every electrodes.tsv column.
    electrodes = electrodes.assign(group=channels["group"], region=channels["region"], lobe=channels["lobe"])
    electrodes[["x", "y", "z"]] = np.round(electrodes[["x", "y", "z"]].to_numpy(float), 4)
    _write_tsv(folder / f"{stem}_acq-{acquisition}_electrodes.tsv", electrodes)
    write_json_atomic(
        folder / f"{stem}_acq-{acquisition}_coordsystem.json",
        {"iEEGCoordinateSystem": coordinate_system, "iEEGCoordinateUnits": "mm",
         "iEEGCoordinateProcessingDescription": "simulated MNI-like positions"},
    )  # fmt: skip
    return folder / f"{base}_ieeg.vhdr"
