"""The iEEG simulation plants what it says, and its writer follows ds003688's layout."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from neurodec.data import simulate_ieeg, write_bids_ieeg


@pytest.fixture(scope="module")
def sim():
    return simulate_ieeg(duration=20.0, sfreq=512.0, block_duration=4.0, random_state=0)


def test_layout_labels_and_planted_channels(sim):
    ch = sim.channels
    assert ch["name"].tolist()[:7] == ["LT1", "LT2", "LT3", "LT4", "LT5", "LT6", "LH1"]
    assert set(ch["type"]) == {"seeg", "ecog"} and (ch["type"] == "ecog").sum() == 8
    shaft = ch[ch["group"] == "LT"][["x", "y", "z"]].to_numpy()
    np.testing.assert_allclose(np.linalg.norm(np.diff(shaft, axis=0), axis=1), 3.5, rtol=1e-12)
    np.testing.assert_array_equal(sim.responsive, ch["region"] == "superior temporal gyrus")
    np.testing.assert_array_equal(sim.condition_channels, ch["region"].isin(["superior temporal gyrus", "insula"]))
    assert set(ch["lobe"]) == {"temporal", "insula", "frontal"}


def test_envelope_follows_the_feature_at_the_latency(sim):
    lag = int(round(sim.latency * sim.sfreq))
    assert lag == round(0.15 * 512)
    base = sim.envelope[~sim.responsive & ~sim.condition_channels]
    np.testing.assert_allclose(base, 4e-6)
    speech = sim.condition == 1
    gain = np.where(speech, 1.5, 1.0)
    lt1 = sim.channels["name"].tolist().index("LT1")
    expected = 4e-6 * (1 + 2.0 * sim.feature[: sim.feature.size - lag]) * gain[lag:]
    np.testing.assert_allclose(sim.envelope[lt1, lag:], expected, rtol=1e-12)
    assert sim.feature.min() >= 0 and sim.feature.max() <= 1


def test_events_alternate_music_and_speech_with_ds003688_codes(sim):
    ev = sim.events
    assert ev["trial_type"].tolist() == ["start task", "music", "speech", "music", "speech", "end task"]
    assert ev["value"].tolist() == [9, 2, 1, 2, 1, 4]
    onset = ev.loc[2, "onset"]
    assert sim.condition[int(onset * sim.sfreq) + 1] == 1 and sim.condition[int(onset * sim.sfreq) - 1] == 0
    assert sim.condition[0] == -1


def test_background_is_one_over_f(sim):
    noise = sim.data[~sim.responsive & ~sim.condition_channels]
    freqs = np.fft.rfftfreq(noise.shape[1], 1 / sim.sfreq)
    power = (np.abs(np.fft.rfft(noise, axis=1)) ** 2).mean(axis=0)
    band = (freqs > 2) & (freqs < 30)  # above the 1 Hz knee, below the high-gamma band and the line
    slope = np.polyfit(np.log(freqs[band]), np.log(power[band]), 1)[0]
    assert abs(slope - (-2.0)) < 0.2


def test_bad_simulation_arguments_are_refused():
    with pytest.raises(ValueError, match="'sfreq' must exceed 300 Hz"):
        simulate_ieeg(sfreq=250.0)
    with pytest.raises(ValueError, match="'n_shafts' must be between 0 and 6"):
        simulate_ieeg(n_shafts=9)
    with pytest.raises(ValueError, match="at least 2 .* are needed"):
        simulate_ieeg(duration=10.0, block_duration=30.0)


def test_writer_follows_the_ds003688_layout(sim, tmp_path):
    vhdr = write_bids_ieeg(tmp_path, sim)
    folder = tmp_path / "sub-01" / "ses-iemu" / "ieeg"
    assert vhdr == folder / "sub-01_ses-iemu_task-film_acq-clinical_run-1_ieeg.vhdr"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([
        "sub-01_ses-iemu_acq-clinical_coordsystem.json", "sub-01_ses-iemu_acq-clinical_electrodes.tsv",
        "sub-01_ses-iemu_task-film_acq-clinical_run-1_channels.tsv",
        "sub-01_ses-iemu_task-film_acq-clinical_run-1_ieeg.eeg",
        "sub-01_ses-iemu_task-film_acq-clinical_run-1_ieeg.json",
        "sub-01_ses-iemu_task-film_acq-clinical_run-1_ieeg.vhdr",
        "sub-01_ses-iemu_task-film_acq-clinical_run-1_ieeg.vmrk", "sub-01_ses-iemu_task-film_run-1_events.tsv",
    ])  # fmt: skip
    channels = pd.read_csv(folder / names[2], sep="\t")
    assert list(channels.columns) == [
        "name", "type", "units", "low_cutoff", "high_cutoff", "reference", "group", "notch", "status"
    ]  # fmt: skip
    assert set(channels["type"]) == {"SEEG", "ECOG"} and set(channels["units"]) == {"µV"}
    electrodes = pd.read_csv(folder / names[1], sep="\t")
    assert list(electrodes.columns[:6]) == ["name", "x", "y", "z", "size", "manufacturer"]
    assert json.loads((folder / names[0]).read_text()) == {
        "iEEGCoordinateSystem": "ACPC", "iEEGCoordinateUnits": "mm",
        "iEEGCoordinateProcessingDescription": "simulated MNI-like positions",
    }  # fmt: skip
    sidecar = json.loads((folder / names[4]).read_text())
    assert sidecar["SamplingFrequency"] == 512.0 and sidecar["PowerLineFrequency"] == 50.0
    events = pd.read_csv(folder / names[-1], sep="\t")
    pd.testing.assert_frame_equal(events, sim.events)
    assert not list(tmp_path.rglob(".tmp*"))  # atomic writes leave nothing behind
    description = json.loads((tmp_path / "dataset_description.json").read_text())
    assert description["DatasetType"] == "raw"


def test_in_memory_forms_carry_the_data_and_positions(sim):
    r = sim.to_responses()
    assert r.shape == (1,) + sim.data.shape and r.modality == "ieeg" and r.info["sfreq"] == 512.0
    np.testing.assert_array_equal(r.data[0], sim.data)
    assert r.units["region"].tolist() == sim.channels["region"].tolist() and set(r.units["coord_units"]) == {"mm"}
    raw = sim.to_raw()
    assert raw.ch_names == sim.ch_names and raw.get_channel_types() == sim.channels["type"].tolist()
    montage = raw.get_montage().get_positions()
    assert montage["coord_frame"] == "mni_tal"
    np.testing.assert_allclose(montage["ch_pos"]["LT1"], sim.channels.loc[0, ["x", "y", "z"]].to_numpy(float) / 1000)
