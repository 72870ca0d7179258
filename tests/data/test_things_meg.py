"""THINGS-MEG: the loader reads the miniature BIDS dataset exactly, preprocesses as mne does, refuses bad input."""

import shutil

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("mne")
pytest.importorskip("mne_bids")

import mne  # noqa: E402
from float32_tolerance import EPS32  # noqa: E402

from neurodec.data.fixtures.things_meg import write_things_meg_bids  # noqa: E402
from neurodec.data.specs import load_spec  # noqa: E402
from neurodec.data.things_meg import load_things_meg  # noqa: E402
from neurodec.data.things_meg_stimuli import load_things_meg_stimuli  # noqa: E402

SPEC = load_spec("things-meg")


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return write_things_meg_bids(tmp_path_factory.mktemp("things_meg"), runs=(1, 2), random_state=0)


@pytest.fixture(scope="module")
def raw_epochs(mini):
    return load_things_meg(mini.root, 1)


def _clone(mini, dest):
    """A copy of the miniature whose FIF runs are links (cheap) and whose sidecars are real files (editable)."""
    for path in mini.root.rglob("*"):
        if path.is_dir() or "THINGS" in path.parts:
            continue
        target = dest / path.relative_to(mini.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".fif":
            target.symlink_to(path)
        else:
            shutil.copy(path, target)
    return dest


def _events(root, run):
    return SPEC.path("events", root, subject=1, session=1, run=run)


def _channels(root, run):
    return SPEC.path("channels", root, subject=1, session=1, run=run)


def _run(root, run):
    return SPEC.path("runs_fif", root, subject=1, session=1, run=run)


def test_loader_reads_trials_times_and_sensors_exactly(mini, raw_epochs):
    r = raw_epochs
    events = pd.concat([mini.events[(1, 1, run)].assign(run=run) for run in (1, 2)], ignore_index=True)
    kept = events[events["trial_type"] != "catch"].reset_index(drop=True)
    assert r.n_trials == len(kept) and r.info["n_catch_dropped"] == (events["trial_type"] == "catch").sum() == 4
    np.testing.assert_array_equal(r.stimulus_ids, kept["value"].astype(float).astype(int))
    np.testing.assert_array_equal(r.trials["things_category_nr"], kept["things_category_nr"].astype(int))
    np.testing.assert_array_equal(r.trials["split"], kept["trial_type"].map({"exp": "train", "test": "test"}))
    np.testing.assert_array_equal(r.trials["run"], kept["run"])
    test = r.trials[r.trials["split"] == "test"]
    assert test.groupby("stimulus_id")["repeat"].apply(list).tolist() == [[0, 1], [0, 1]]  # once per run
    assert (r.trials.loc[r.trials["split"] == "train", "repeat"] == 0).all()
    assert r.info["sfreq"] == 400.0 and r.info["line_freq"] == 60.0
    np.testing.assert_allclose(r.times, np.arange(-40, 521) / 400.0, atol=1e-12)
    # The channel-type quirk is fixed: every sensor is a magnetometer-type CTF axial gradiometer with a position.
    assert r.n_units == 274 and (r.units["type"] == "mag").all() and (r.units["coil_type"] == 5001).all()
    assert r.info["n_retyped_channels"] == 274
    from neurodec.data.meg_simulation import channel_units

    truth = channel_units(mini.truth.info)
    np.testing.assert_allclose(r.units[["x", "y", "z"]], truth[["x", "y", "z"]], atol=1e-6)
    # Epochs are the run's samples, cut at the events' 'sample' column.
    raw = mne.io.read_raw_fif(_run(mini.root, 2), preload=True, verbose=False).pick("mag")
    first = int(np.flatnonzero(r.trials["run"] == 2)[0])
    sample = int(r.trials["sample"][first])
    expected = raw.get_data()[:, sample - 40 : sample + 521]
    np.testing.assert_allclose(r.data[first], expected, rtol=EPS32, atol=EPS32 * np.abs(expected).max())


def test_mne_bids_alone_gets_the_channel_types_wrong(mini):
    import mne_bids

    path = mne_bids.BIDSPath(subject="BIGMEG1", session="01", task="main", run="01", datatype="meg", root=mini.root)
    with pytest.warns(RuntimeWarning):
        raw = mne_bids.read_raw_bids(path, verbose=False)
    assert "mag" not in raw.get_channel_types()  # what load_things_meg fixes (mne-bids#1493)


def _reference(mini, run, channels, *, baseline, scaling, clamp=None):
    """THINGS-MEG's published steps written directly with mne (step1_preprocessing.py of THINGS-data)."""
    raw = mne.io.read_raw_fif(_run(mini.root, run), preload=True, verbose=False).pick(channels)
    raw.filter(l_freq=0.1, h_freq=40.0, verbose=False)
    table = pd.read_csv(_events(mini.root, run), sep="\t")
    table = table[table["trial_type"] != "catch"]
    events = np.c_[table["sample"], np.zeros(len(table), int), np.ones(len(table), int)]
    epochs = mne.Epochs(raw, events, tmin=-0.1, tmax=1.3, baseline=baseline, preload=True, verbose=False)
    data = epochs.get_data()
    if scaling == "zscore":
        data = mne.baseline.rescale(data, epochs.times, baseline=(None, 0), mode="zscore", copy=True, verbose=False)
        return mne.EpochsArray(data, epochs.info, tmin=-0.1, verbose=False).decimate(2).get_data()
    from sklearn.preprocessing import RobustScaler

    data = data[:, :, ::2]  # mne.Epochs decimation: every second sample from tmin
    flat = np.moveaxis(data, 1, 2).reshape(-1, data.shape[1])
    scaled = RobustScaler().fit_transform(flat).reshape(data.shape[0], data.shape[2], data.shape[1])
    return np.clip(np.moveaxis(scaled, 2, 1), -clamp, clamp)


def test_published_preprocessing_equals_mne_applied_directly(mini):
    r = load_things_meg(mini.root, 1, runs=[1], preprocessing="published")
    assert "MRO11-1609" not in set(r.units["channel"]) and r.n_units == 273
    assert r.info["sfreq"] == 200.0 and r.data.shape[2] == 281
    np.testing.assert_allclose(r.times, np.arange(-20, 261) / 200.0, atol=1e-12)
    channels = r.units["channel"].tolist()
    expected = _reference(mini, 1, channels, baseline=None, scaling="zscore")
    scale = np.abs(expected).max()
    np.testing.assert_allclose(r.data, expected, rtol=0, atol=4 * EPS32 * scale)


def test_benchetrit_preprocessing_equals_mne_and_sklearn_applied_directly(mini):
    r = load_things_meg(mini.root, 1, runs=[2], preprocessing="benchetrit")
    channels = r.units["channel"].tolist()
    expected = _reference(mini, 2, channels, baseline=(None, 0), scaling="robust", clamp=20.0)
    np.testing.assert_allclose(r.data, expected, rtol=0, atol=4 * EPS32 * np.abs(expected).max())
    assert np.abs(r.data).max() <= 20.0


def test_planted_evoked_latencies_survive_the_loader(mini, raw_epochs):
    truth = mini.truth
    sources = np.linalg.pinv(truth.patterns) @ raw_epochs.data.mean(0)
    peaks = raw_epochs.times[np.argmax(np.abs(sources), axis=1)]
    # 10 ms at 400 Hz: the 10 ms latency jitter averaged over 38 trials moves the peak by ~2 ms.
    np.testing.assert_allclose(peaks, truth.latencies, atol=0.01 + 1e-9)


def test_events_beyond_the_run_are_refused(mini, tmp_path):
    root = _clone(mini, tmp_path)
    table = pd.read_csv(_events(root, 2), sep="\t", dtype=str, keep_default_na=False)
    table.loc[3, "sample"] = "999999"
    table.to_csv(_events(root, 2), sep="\t", index=False)
    with pytest.raises(ValueError, match=r"run-02_events.tsv: 1 event\(s\) lie beyond .*row 3, field 'sample' = 999999"):
        load_things_meg(root, 1)


def test_channels_missing_from_channels_tsv_are_refused(mini, tmp_path):
    root = _clone(mini, tmp_path)
    table = pd.read_csv(_channels(root, 1), sep="\t", keep_default_na=False)
    table[table["name"] != "MLT11-1609"].to_csv(_channels(root, 1), sep="\t", index=False)
    with pytest.raises(ValueError, match=r"run-01_channels.tsv .*1 channel\(s\) .* missing from it: \['MLT11-1609'\]"):
        load_things_meg(root, 1)


def test_bad_channels_and_trial_types(mini, tmp_path):
    root = _clone(mini, tmp_path)
    table = pd.read_csv(_channels(root, 2), sep="\t", keep_default_na=False)
    table.loc[table["name"] == "MZC01-1609", "status"] = "bad"
    table.to_csv(_channels(root, 2), sep="\t", index=False)
    assert "MZC01-1609" not in set(load_things_meg(root, 1, runs=[1, 2]).units["channel"])
    events = pd.read_csv(_events(root, 1), sep="\t", dtype=str, keep_default_na=False)
    events.loc[0, "trial_type"] = "oddball"
    events.to_csv(_events(root, 1), sep="\t", index=False)
    with pytest.raises(ValueError, match=r"run-01_events.tsv: field 'trial_type' holds \['oddball'\]"):
        load_things_meg(root, 1)


def test_sampling_rates_that_differ_are_refused_or_resampled(mini, tmp_path):
    root = _clone(mini, tmp_path)
    raw = mne.io.read_raw_fif(_run(mini.root, 2), preload=True, verbose=False).resample(200.0, verbose=False)
    _run(root, 2).unlink()
    raw.save(_run(root, 2), verbose=False)
    table = pd.read_csv(_events(root, 2), sep="\t", dtype=str, keep_default_na=False)
    table["sample"] = (table["onset"].astype(float) * 200).round().astype(int).astype(str)
    table.to_csv(_events(root, 2), sep="\t", index=False)
    with pytest.raises(ValueError, match=r"differ in sampling rate \(.*run-01_meg.fif: 400 Hz, .*run-02_meg.fif: 200 Hz\)"):
        load_things_meg(root, 1)
    r = load_things_meg(root, 1, resample=200.0)
    assert r.info["sfreq"] == 200.0 and r.n_trials == 38 and r.data.shape[2] == 281


def test_implausible_units_warn_with_the_value_seen(mini, tmp_path):
    root = _clone(mini, tmp_path)
    raw = mne.io.read_raw_fif(_run(mini.root, 1), preload=True, verbose=False)
    raw.apply_function(lambda x: x * 1e15, picks="mag")  # femtotesla stored as tesla
    _run(root, 1).unlink()
    raw.save(_run(root, 1), verbose=False)
    with pytest.warns(UserWarning, match=r"run-01_meg.fif: MEG amplitudes look implausible .* deviation \d"):
        load_things_meg(root, 1, runs=[1])


def test_preprocessing_arguments_are_checked(mini):
    with pytest.raises(ValueError, match=r"Unknown key\(s\) \['lfreq'\]"):
        load_things_meg(mini.root, 1, preprocessing={"lfreq": 1.0})
    with pytest.raises(ValueError, match="must be None, a dict or one of"):
        load_things_meg(mini.root, 1, preprocessing="hebart")
    with pytest.raises(ValueError, match=r"cannot decimate 400 Hz to preprocessing\['sfreq'\]=150 Hz"):
        load_things_meg(mini.root, 1, preprocessing={"sfreq": 150.0})
    with pytest.raises(FileNotFoundError, match=r"present \(session, run\): \[\(1, 1\), \(1, 2\)\]"):
        load_things_meg(mini.root, 1, sessions=[3])
    with pytest.raises(FileNotFoundError, match="No THINGS-MEG run of subject 2"):
        load_things_meg(mini.root, 2)


def test_stimuli_are_found_by_things_number(mini, raw_epochs, tmp_path):
    trials = raw_epochs.trials
    ids = trials["stimulus_id"].unique()
    categories = dict(zip(trials["stimulus_id"], trials["things_category_nr"]))
    stimuli = load_things_meg_stimuli(mini.images_root, ids, categories=categories)
    assert stimuli.ids == list(ids)
    for number in ids[:3]:
        path = stimuli._key(number)
        assert path.relative_to(mini.images_root).as_posix() == mini.image_paths[number - 1]
        assert stimuli.get_image(number).shape == (24, 24, 3)
    wrong = {int(ids[0]): categories[ids[0]] % 16 + 1}
    with pytest.raises(ValueError, match=f"THINGS image {ids[0]} is .* names concept"):
        load_things_meg_stimuli(mini.images_root, ids, categories=wrong)
    with pytest.raises(ValueError, match=r"outside 1\.\.\d+"):
        load_things_meg_stimuli(mini.images_root, [10**6])
    # The loader checks the images before reading any run.
    checked = load_things_meg(mini.root, 1, runs=[1], images_root=mini.images_root)
    assert checked.info["images_root"] == str(mini.images_root)
    listing = tmp_path / "shuffled_paths.txt"
    listing.write_text("\n".join(sorted(mini.image_paths, key=lambda p: p[::-1])))
    with pytest.raises(ValueError, match="numbering of .* is not THINGS'"):
        load_things_meg(mini.root, 1, images_root=mini.images_root, image_paths=listing)


def test_an_image_path_list_fixes_the_numbering(mini, tmp_path):
    listing = tmp_path / "image_paths.txt"
    listing.write_text("\n".join(reversed(mini.image_paths)) + "\n")
    stimuli = load_things_meg_stimuli(mini.images_root, [1], image_paths=listing)
    assert stimuli._key(1).relative_to(mini.images_root).as_posix() == mini.image_paths[-1]


def test_registry_and_check_data(mini, tmp_path):
    from typer.testing import CliRunner

    from neurodec.cli import app
    from neurodec.data.registry import get_dataset, load_stimuli

    assert get_dataset("things-meg").modality == "meg"
    assert len(load_stimuli("things-meg", mini.images_root, ids=[1, 2])) == 2
    ok = CliRunner().invoke(app, ["check-data", "things-meg", str(mini.root)])
    assert ok.exit_code == 0, ok.output
    assert "found    sub-BIGMEG1: sessions 1, ses-01 runs 1-2; 34 exp + 4 test trials, 4 catch trials" in ok.output
    assert "274 MEG sensors at 400 Hz" in ok.output and "mne-bids#1493" in ok.output
    root = _clone(mini, tmp_path)
    table = pd.read_csv(_channels(root, 2), sep="\t", keep_default_na=False)
    table.iloc[:-1].to_csv(_channels(root, 2), sep="\t", index=False)
    bad = CliRunner().invoke(app, ["check-data", "things-meg", str(root)])
    assert bad.exit_code == 1
    assert "PROBLEM  sub-BIGMEG1: THINGS-MEG channels file" in bad.output and "['UPPT001']" in bad.output


def test_epochs_reaching_past_the_run_are_left_out_with_a_warning(mini, tmp_path):
    root = _clone(mini, tmp_path)
    n_times = mne.io.read_raw_fif(_run(mini.root, 1), verbose=False).n_times
    table = pd.read_csv(_events(root, 1), sep="\t", dtype=str, keep_default_na=False)
    last = table.index[table["trial_type"] != "catch"][-1]
    table.loc[last, "sample"] = str(n_times - 10)
    table.loc[last, "onset"] = str((n_times - 10) / 400.0)
    table.to_csv(_events(root, 1), sep="\t", index=False)
    with pytest.warns(UserWarning, match=r"run-01_meg.fif: 1 trial\(s\) of .*run-01_events.tsv have an epoch"):
        r = load_things_meg(root, 1, runs=[1])
    assert r.n_trials == (mini.events[(1, 1, 1)]["trial_type"] != "catch").sum() - 1
