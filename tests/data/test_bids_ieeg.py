"""load_bids_ieeg reads the ds003688 layout exactly, the real py-neuromodulation recording correctly, and refuses bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest

from neurodec.data import load_bids_ieeg, simulate_ieeg, write_bids_ieeg
from neurodec.data.ieeg_preprocessing import high_gamma, notch_line_noise, rereference, resample
from neurodec.data.registry import load_responses

from float32_tolerance import EPS32

REAL = Path(__file__).parent / "py_neuromodulation_ieeg"
REAL_IEEG = REAL / "sub-testsub" / "ses-EphysMedOff" / "ieeg"
FOLDER = ("sub-01", "ses-iemu", "ieeg")


@pytest.fixture(scope="module")
def sim():
    return simulate_ieeg(duration=16.0, sfreq=512.0, n_shafts=3, contacts_per_shaft=4, grid_shape=(1, 4),
                         block_duration=4.0, random_state=7)  # fmt: skip


@pytest.fixture
def root(sim, tmp_path):
    write_bids_ieeg(tmp_path, sim)
    return tmp_path


def _file(root: Path, suffix: str) -> Path:
    (path,) = root.joinpath(*FOLDER).glob(f"*{suffix}")
    return path


def _float32_atol(x: np.ndarray) -> float:
    return EPS32 * float(np.abs(x).max())  # BrainVision stores float32 samples


def test_miniature_is_read_exactly(root, sim):
    r = load_bids_ieeg(root, 1)
    assert r.subject == "sub-01" and r.modality == "ieeg" and r.shape == (1, len(sim.ch_names), sim.data.shape[1])
    np.testing.assert_allclose(r.data[0], sim.data, rtol=0, atol=_float32_atol(sim.data))
    np.testing.assert_allclose(r.times, sim.times, atol=1e-12)
    units = r.units
    assert units["name"].tolist() == sim.ch_names
    assert units["type"].tolist() == sim.channels["type"].tolist()
    assert set(units["unit"]) == {"µV"} and set(units["coord_frame"]) == {"ACPC"} and set(units["coord_units"]) == {"mm"}
    np.testing.assert_allclose(units[["x", "y", "z"]].to_numpy(), sim.channels[["x", "y", "z"]].to_numpy(), atol=5e-5)
    assert units["region"].tolist() == sim.channels["region"].tolist()
    assert r.trials[["stimulus_id", "session", "run", "repeat", "split"]].to_dict("records") == [
        {"stimulus_id": "film", "session": "iemu", "run": 1, "repeat": 0, "split": "train"}
    ]
    assert r.info["sfreq"] == 512.0 and r.info["line_freq"] == 50.0 and r.info["coord_frame"] == "ACPC"
    pd.testing.assert_frame_equal(r.info["events"].drop(columns="run"), sim.events)
    assert r.info["warnings"] == []
    via_registry = load_responses("bids-ieeg", root, 1)
    np.testing.assert_array_equal(via_registry.data, r.data)


def test_epochs_are_windows_of_the_run_around_events(root, sim):
    r = load_bids_ieeg(root, "01", epochs={"tmin": -0.5, "tmax": 1.0, "event_names": ["music", "speech"]})
    kinds = sim.events[sim.events["trial_type"].isin(["music", "speech"])]
    assert r.trials["stimulus_id"].tolist() == kinds["trial_type"].tolist()
    assert r.trials["repeat"].tolist() == [0, 0, 1]
    n = int(round(1.5 * 512)) + 1
    assert r.shape == (3, len(sim.ch_names), n)
    np.testing.assert_allclose(r.times, np.arange(n) / 512.0 - 0.5, atol=1e-12)
    for trial, onset in enumerate(kinds["onset"]):
        start = int(round(onset * 512)) - 256
        expected = sim.data[:, start : start + n]
        np.testing.assert_allclose(r.data[trial], expected, rtol=0, atol=_float32_atol(sim.data))


def test_preprocessing_matches_the_functions_applied_to_the_raw(root):
    r = load_bids_ieeg(root, 1, notch=True, reference="bipolar", high_gamma=True, sfreq=100.0)
    raw = mne.io.read_raw_brainvision(_file(root, "_ieeg.vhdr"), preload=True, verbose="error")
    types = pd.read_csv(_file(root, "_channels.tsv"), sep="\t")["type"].str.lower()
    raw.set_channel_types(dict(zip(raw.ch_names, types)), verbose="error")
    raw.info["line_freq"] = 50.0
    expected = resample(high_gamma(rereference(notch_line_noise(raw), "bipolar")), 100.0)
    assert r.units["name"].tolist() == expected.ch_names
    np.testing.assert_array_equal(r.data[0], expected.get_data())
    assert r.info["sfreq"] == 100.0 and set(r.units["unit"]) == {"z"}
    lt12 = r.units.set_index("name").loc["LT1-LT2"]
    positions = pd.read_csv(_file(root, "_electrodes.tsv"), sep="\t").set_index("name")
    np.testing.assert_allclose(lt12[["x", "y", "z"]].to_numpy(float), positions.loc[["LT1", "LT2"], ["x", "y", "z"]].mean().to_numpy())
    assert (lt12["anode"], lt12["cathode"]) == ("LT1", "LT2")


def test_average_reference_matches_numpy(root, sim):
    r = load_bids_ieeg(root, 1, reference="average")
    data = load_bids_ieeg(root, 1).data[0]
    np.testing.assert_allclose(r.data[0], data - data.mean(axis=0), atol=64 * np.finfo(float).eps * np.abs(data).max())


def test_real_recording_is_read_with_its_metadata_problems_reported():
    with pytest.warns(UserWarning) as record:
        r = load_bids_ieeg(REAL, "testsub")
    raw = mne.io.read_raw_brainvision(next(REAL_IEEG.glob("*.vhdr")), preload=True, verbose="error")
    names = ["LFP_RIGHT_0", "LFP_RIGHT_1", "LFP_RIGHT_2"] + [f"ECOG_RIGHT_{i}" for i in range(6)]
    assert r.units["name"].tolist() == names  # MOV_RIGHT (MISC) is not iEEG
    assert r.units["type"].tolist() == ["dbs"] * 3 + ["ecog"] * 6
    assert r.info["sfreq"] == 1000.0 and r.shape == (1, 9, 19001) and r.times[-1] == 19.0
    np.testing.assert_array_equal(r.data[0], raw.get_data(picks=names))
    electrodes = pd.read_csv(next(REAL_IEEG.glob("*_electrodes.tsv")), sep="\t").set_index("name")
    np.testing.assert_array_equal(r.units[["x", "y", "z"]].to_numpy(), electrodes.loc[names, ["x", "y", "z"]].to_numpy())
    assert r.units.loc[3, "x"] == 0.037318173999999996  # as written, in metres: never moved to "head"
    assert r.info["coord_frame"] == "unknown" and r.info["coord_space"] == "mni" and r.info["coord_units"] == "m"
    assert r.trials["stimulus_id"].tolist() == ["gripforce"] and r.trials["run"].tolist() == [0]
    median = np.median(raw.get_data(picks=names).std(axis=1))
    messages = [str(w.message) for w in record]
    assert any(f"median channel standard deviation is {median:.4g} V" in m for m in messages)
    assert 10 < median < 100  # tens of volts, as the issue reports
    assert any("declares the coordinate system 'Other'" in m and "'unknown'" in m for m in messages)
    assert r.info["warnings"] == messages


def test_events_beyond_the_run_are_refused(root):
    events = _file(root, "_events.tsv")
    table = pd.read_csv(events, sep="\t")
    table.loc[len(table) - 1, "onset"] = 99.0
    table.to_csv(events, sep="\t", index=False)
    with pytest.raises(ValueError, match=r"events.tsv has 1 event\(s\) outside the run, which lasts 15.998 s.*99.0"):
        load_bids_ieeg(root, 1)


def test_channels_missing_from_channels_tsv_are_refused(root):
    path = _file(root, "_channels.tsv")
    table = pd.read_csv(path, sep="\t")
    table[table["name"] != "LH2"].to_csv(path, sep="\t", index=False)
    with pytest.raises(ValueError, match=r"channel\(s\) \['LH2'\] that are missing from .*channels.tsv"):
        load_bids_ieeg(root, 1)


def test_bad_status_drops_the_channel(root):
    path = _file(root, "_channels.tsv")
    table = pd.read_csv(path, sep="\t")
    table.loc[table["name"] == "LH2", "status"] = "bad"
    table.to_csv(path, sep="\t", index=False)
    assert "LH2" not in load_bids_ieeg(root, 1).units["name"].tolist()


def test_differing_sampling_rates_are_refused_or_resampled(root, sim):
    other = simulate_ieeg(duration=16.0, sfreq=640.0, n_shafts=3, contacts_per_shaft=4, grid_shape=(1, 4),
                          block_duration=4.0, random_state=8)  # fmt: skip
    write_bids_ieeg(root, other, run=2)
    with pytest.raises(ValueError, match=r"different sampling rates \{.*run-1_ieeg.vhdr': 512.0, .*run-2_ieeg.vhdr': 640.0\}; pass 'sfreq'"):
        load_bids_ieeg(root, 1)
    r = load_bids_ieeg(root, 1, sfreq=256.0)
    assert r.shape == (2, len(sim.ch_names), 16 * 256) and r.trials["run"].tolist() == [1, 2]
    assert r.trials["repeat"].tolist() == [0, 1]
    only = load_bids_ieeg(root, 1, runs=[2])
    assert only.info["sfreq"] == 640.0 and only.n_trials == 1


def test_electrodes_without_coordinates_warn_and_read_nan(root):
    path = _file(root, "_electrodes.tsv")
    table = pd.read_csv(path, sep="\t")
    table.loc[table["name"] == "LT3", ["x", "y", "z"]] = np.nan
    table[table["name"] != "G2"].to_csv(path, sep="\t", index=False, na_rep="n/a")
    with pytest.warns(UserWarning, match=r"2 iEEG channel\(s\) have no coordinates .*\['LT3', 'G2'\]"):
        r = load_bids_ieeg(root, 1)
    missing = r.units.set_index("name").loc[["LT3", "G2"], ["x", "y", "z"]]
    assert missing.isna().all().all() and r.units[["x", "y", "z"]].notna().all(axis=1).sum() == len(r.units) - 2


def test_implausible_amplitudes_warn_with_the_value_seen(sim, tmp_path):
    scaled = simulate_ieeg(duration=16.0, sfreq=512.0, n_shafts=3, contacts_per_shaft=4, grid_shape=(1, 4),
                           block_duration=4.0, random_state=7)  # fmt: skip
    scaled.data *= 1e6  # volts written as microvolts: a classic unit slip
    write_bids_ieeg(tmp_path, scaled)
    median = np.median(scaled.data.std(axis=1))
    with pytest.warns(UserWarning, match=f"median channel standard deviation is {median:.4g} V"):
        load_bids_ieeg(tmp_path, 1)


def test_bad_arguments_are_refused(root, sim):
    with pytest.raises(ValueError, match=r"The 'subject' 2 is not in .*subjects there: \['01'\]"):
        load_bids_ieeg(root, 2)
    with pytest.raises(ValueError, match="'reference' parameter of load_bids_ieeg must be None, 'average' or 'bipolar'"):
        load_bids_ieeg(root, 1, reference="car")
    with pytest.raises(ValueError, match="'epochs' parameter of load_bids_ieeg needs 'tmin' and 'tmax'"):
        load_bids_ieeg(root, 1, epochs={"tmin": 0.0})
    with pytest.raises(ValueError, match=r"No event of .* is among \['laughter'\]"):
        load_bids_ieeg(root, 1, epochs={"tmin": 0.0, "tmax": 1.0, "event_names": ["laughter"]})
    with pytest.raises(FileNotFoundError, match="No iEEG run of sub-01 matches"):
        load_bids_ieeg(root, 1, task="rest")
    write_bids_ieeg(root, sim, task="rest")
    with pytest.raises(ValueError, match=r"several task values \['film', 'rest'\]; pass 'task'"):
        load_bids_ieeg(root, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean dataset loads without any warning
        assert load_bids_ieeg(root, 1, task="rest").trials["stimulus_id"].tolist() == ["rest"]


def _check_data(root):
    from typer.testing import CliRunner

    from neurodec.cli import app

    return CliRunner().invoke(app, ["check-data", "bids-ieeg", str(root)])


def test_check_data_reports_the_real_recording_usable_with_its_metadata_notes():
    result = _check_data(REAL)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any("found    sub-testsub_ses-EphysMedOff_task-gripforce_run-0_ieeg.vhdr: 9 iEEG channels (dbs 3, ecog 6), "
               "1000 Hz, 19.0 s, 0 events, electrodes in frame 'unknown' (m)" in line for line in lines)  # fmt: skip
    assert any(line.startswith("  note") and "median channel standard deviation is 38.74 V" in line for line in lines)
    assert any(line.startswith("  note") and "'Other'" in line for line in lines)
    assert lines[-1] == "usable"


def test_check_data_refuses_what_the_loader_refuses(root):
    assert _check_data(root).exit_code == 0
    events = _file(root, "_events.tsv")
    table = pd.read_csv(events, sep="\t")
    table.loc[0, "onset"] = -3.0
    table.to_csv(events, sep="\t", index=False)
    result = _check_data(root)
    assert result.exit_code == 1
    assert any(line.startswith("  PROBLEM  sub-01_ses-iemu_task-film_acq-clinical_run-1_ieeg.vhdr:") and
               "1 event(s) outside the run" in line for line in result.output.splitlines())  # fmt: skip
    _file(root, "_channels.tsv").unlink()
    result = _check_data(root)
    assert result.exit_code == 1 and "MISSING  group 'channels'" in result.output
    assert "channels sidecar" in result.output and "is missing" in result.output


def test_a_dataset_written_by_mne_bids_is_read_in_its_own_frame_and_units(sim, tmp_path):
    import mne_bids

    raw = mne.io.RawArray(sim.data, mne.create_info(sim.ch_names, sim.sfreq, sim.channels["type"].tolist()),
                          verbose="error")  # fmt: skip
    raw.info["line_freq"] = 50.0
    metres = sim.channels[["x", "y", "z"]].to_numpy() / 1000.0
    raw.set_montage(mne.channels.make_dig_montage(dict(zip(sim.ch_names, metres)), coord_frame="ras"), verbose="error")
    raw.set_annotations(mne.Annotations(sim.events["onset"], sim.events["duration"], sim.events["trial_type"]))
    path = mne_bids.BIDSPath(subject="01", session="iemu", task="film", acquisition="clinical", run=1,
                             datatype="ieeg", root=tmp_path, space="ACPC")  # fmt: skip
    mne_bids.write_raw_bids(raw, path, format="BrainVision", allow_preload=True, acpc_aligned=True, verbose="error")
    assert list(tmp_path.rglob("*_acq-clinical_space-ACPC_electrodes.tsv"))  # mne-bids' naming, not ds003688's
    r = load_bids_ieeg(tmp_path, 1)
    assert r.info["coord_frame"] == "ACPC" and r.info["coord_units"] == "m" and r.info["warnings"] == []
    np.testing.assert_allclose(r.units[["x", "y", "z"]].to_numpy(), metres, atol=1e-12)
    np.testing.assert_allclose(r.data[0], sim.data, rtol=0, atol=_float32_atol(sim.data))
    assert r.info["events"]["trial_type"].tolist() == sim.events["trial_type"].tolist()


def test_real_recording_bipolar_high_gamma():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its metadata warnings are checked above
        r = load_bids_ieeg(REAL, "testsub", reference="bipolar", high_gamma=True)
    assert r.units["name"].tolist() == [
        "LFP_RIGHT_0-LFP_RIGHT_1", "LFP_RIGHT_1-LFP_RIGHT_2",
        *[f"ECOG_RIGHT_{i}-ECOG_RIGHT_{i + 1}" for i in range(5)],
    ]  # fmt: skip
    assert r.shape == (1, 7, 19001) and r.info["sfreq"] == 1000.0 and set(r.units["unit"]) == {"z"}
    np.testing.assert_allclose(r.data[0].mean(axis=1), 0.0, atol=1e-9)  # z-scored envelopes
    np.testing.assert_allclose(r.data[0].std(axis=1), 1.0, rtol=1e-9)
