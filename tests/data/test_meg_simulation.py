"""The MEG simulation plants what it says: latencies, stimulus-driven amplitudes, SNR, a real head geometry."""

import numpy as np
import pytest

pytest.importorskip("mne")

from neurodec.data.meg_head_model import make_ctf275_info, make_head_model  # noqa: E402
from neurodec.data.meg_simulation import simulate_meg_epochs  # noqa: E402


@pytest.fixture(scope="module")
def simulated():
    return simulate_meg_epochs(n_train=150, n_test=20, n_test_repeats=4, n_dims=8, snr=0.5, random_state=0)


def test_epochs_have_the_things_design_and_ctf275_sensors(simulated):
    responses, embeddings, truth = simulated
    assert responses.data.shape == (150 + 80, 274, len(responses.times))
    assert responses.modality == "meg" and responses.info["sfreq"] == 200.0
    np.testing.assert_allclose(np.diff(responses.times), 1 / 200.0, atol=1e-12)
    assert embeddings.shape == (170, 8)
    counts = responses.trials.groupby("split")["stimulus_id"].agg(["nunique", "size"])
    assert counts.loc["train"].tolist() == [150, 150] and counts.loc["test"].tolist() == [20, 80]
    assert sorted(responses.split("test").trials["repeat"].unique()) == [0, 1, 2, 3]
    units = responses.units
    assert (units["type"] == "mag").all() and (units["unit"] == "T").all() and (units["coil_type"] == 5001).all()
    assert units["channel"].str.fullmatch(r"M[LRZ][CFOPT]\d\d-1609").all()
    # Evoked fields of tens of nA·m sources are hundreds of fT, as in real MEG.
    assert 1e-14 < np.abs(responses.data).max() < 1e-11


def test_sensors_sit_a_helmet_away_from_the_inner_skull():
    from scipy.spatial import cKDTree

    from neurodec.data.meg_simulation import channel_units

    model = make_head_model()
    units = channel_units(make_ctf275_info(1200.0))
    distance = cKDTree(model.cortex).query(units[["x", "y", "z"]].to_numpy())[0]
    # Sources lie 12 mm under the inner skull, sensors 3-5 cm outside it.
    assert 0.03 + model.depth - 0.002 < distance.min() and distance.max() < 0.05 + model.depth + 0.002
    assert 0.07 < model.radius < 0.09


def test_planted_latencies_are_recovered_from_the_sensor_evoked_response(simulated):
    responses, _, truth = simulated
    evoked = responses.data.mean(0)
    # Unmix the sensor evoked field into the planted sources (least squares on their patterns).
    sources = np.linalg.pinv(truth.patterns) @ evoked
    peaks = responses.times[np.argmax(np.abs(sources), axis=1)]
    np.testing.assert_allclose(peaks, truth.latencies, atol=1.0 / responses.info["sfreq"] + 1e-9)
    # The global field power peaks at one of the planted latencies.
    gfp_peak = responses.times[np.argmax((evoked**2).mean(0))]
    assert np.min(np.abs(gfp_peak - truth.latencies)) <= 1.0 / responses.info["sfreq"] + 1e-9


def test_snr_is_the_stated_power_ratio(simulated):
    responses, _, truth = simulated
    data = responses.data.astype(np.float64)
    # Before onset there is only noise (the evoked waves start >= 4 widths later).
    noise = (data[:, :, responses.times < 0] ** 2).mean()
    total = (data[:, :, responses.times >= 0] ** 2).mean()
    assert (total - noise) / noise == pytest.approx(truth.snr, rel=0.15)


def test_a_ridge_decoder_identifies_test_images_above_chance(simulated):
    from sklearn.linear_model import RidgeCV

    responses, embeddings, _ = simulated
    window = (responses.times >= 0.05) & (responses.times <= 0.25)
    train, test = responses.split("train"), responses.split("test").average_repeats()
    flat = lambda r: r.data[:, :, window].reshape(r.n_trials, -1) / 1e-13  # noqa: E731
    model = RidgeCV(alphas=np.logspace(-1, 6, 8)).fit(flat(train), embeddings[train.stimulus_ids])
    predicted = model.predict(flat(test))
    truth = embeddings[test.stimulus_ids]
    z = lambda a: (a - a.mean(1, keepdims=True)) / a.std(1, keepdims=True)  # noqa: E731
    similarity = z(predicted) @ z(truth).T
    top1 = np.mean(np.argmax(similarity, axis=1) == np.arange(len(truth)))
    assert top1 >= 5 * (1 / len(truth))  # chance is 1/20


def test_given_embeddings_drive_the_sources_and_are_returned():
    embeddings = np.random.default_rng(3).standard_normal((12, 3)) * 5 + 2
    responses, returned, truth = simulate_meg_epochs(
        n_train=10, n_test=2, n_test_repeats=2, embeddings=embeddings, n_noise_sources=10, random_state=1
    )
    np.testing.assert_array_equal(returned, embeddings)
    assert truth.weights.shape == (4, 3) and responses.n_trials == 14
    assert truth.trial_latencies.shape == (14, 4)
    assert np.std(truth.trial_latencies - truth.latencies) == pytest.approx(truth.jitter, rel=0.5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_test": 0}, "n_test"),
        ({"tmin": 0.1}, "tmin"),
        ({"tmax": 0.15}, "tmax"),
        ({"embeddings": np.zeros((5, 2))}, "'embeddings'"),
        ({"snr": 0.0}, "snr"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_meg_epochs(**{"n_train": 4, "n_test": 2, "n_test_repeats": 2, "n_noise_sources": 5, **kwargs})
