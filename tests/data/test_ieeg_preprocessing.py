"""iEEG preprocessing matches mne's functions and numpy references, and recovers planted high-gamma responses."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from neurodec.data.ieeg_preprocessing import (
    bipolar_pairs,
    high_gamma,
    high_gamma_bands,
    notch_line_noise,
    rereference,
    resample,
)
from neurodec.data.ieeg_simulation import simulate_ieeg

from float32_tolerance import EPS32


@pytest.fixture(scope="module")
def sim():
    # A 2 Hz feature: at the default 1 Hz the cross-correlation peak is ~160 ms wide and 24 s of data place
    # it only within +-20 ms; at 2 Hz the 10 ms bin of the planted latency is found for seeds 0-11 alike.
    return simulate_ieeg(duration=24.0, sfreq=512.0, n_shafts=3, contacts_per_shaft=5, grid_shape=(1, 4),
                         block_duration=6.0, feature_cutoff=2.0, random_state=3)  # fmt: skip


@pytest.fixture
def raw(sim):
    return sim.to_raw()


def _atol(x: np.ndarray, n_terms: int = 1) -> float:
    # float64 data: the rounding error of sums of n_terms values of x's magnitude
    return 4 * n_terms * np.finfo(np.float64).eps * float(np.abs(x).max())


def test_average_reference_subtracts_the_mean_of_good_ieeg_channels(raw):
    raw.info["bads"] = ["LT2"]
    out = rereference(raw, "average")
    data = raw.get_data()
    good = [i for i, n in enumerate(raw.ch_names) if n != "LT2"]
    expected = data[good] - data[good].mean(axis=0)
    np.testing.assert_allclose(out.get_data(picks=[raw.ch_names[i] for i in good]), expected, atol=_atol(data, 32))
    np.testing.assert_array_equal(raw.get_data(), data)  # the input is untouched


def test_bipolar_pairs_follow_numbers_within_shafts_and_break_at_gaps():
    anodes, cathodes = bipolar_pairs(["LA1", "LA2", "LA4", "LA3", "RB10", "RB11", "G1", "TRIG", "LA6"])
    assert list(zip(anodes, cathodes)) == [("LA1", "LA2"), ("LA2", "LA3"), ("LA3", "LA4"), ("RB10", "RB11")]
    anodes, _ = bipolar_pairs(["A1", "A2", "B3", "B4"], groups=["s", "s", "t", "t"])
    assert anodes == ["A1", "B3"]
    with pytest.raises(ValueError, match="no neighbouring numbered contacts"):
        bipolar_pairs(["LA1", "LB1"])
    with pytest.raises(ValueError, match="'groups' has 1 entries for 2 channels"):
        bipolar_pairs(["LA1", "LA2"], groups=["a"])


def test_bipolar_reference_is_the_difference_of_neighbours(raw, sim):
    out = rereference(raw, "bipolar")
    anodes, cathodes = bipolar_pairs(sim.ch_names)
    assert out.ch_names == [f"{a}-{c}" for a, c in zip(anodes, cathodes)]
    expected = raw.get_data(picks=anodes) - raw.get_data(picks=cathodes)
    np.testing.assert_allclose(out.get_data(), expected, atol=_atol(expected, 2))
    with pytest.raises(ValueError, match="'method' parameter of rereference must be 'average' or 'bipolar'"):
        rereference(raw, "laplacian")


def test_notch_matches_mne_and_removes_line_noise(raw, sim):
    out = notch_line_noise(raw)
    direct = raw.copy().notch_filter(np.arange(50.0, 256.0, 50.0), picks=["seeg", "ecog"], verbose="error")
    np.testing.assert_array_equal(out.get_data(), direct.get_data())
    psd_before = raw.compute_psd(fmin=45, fmax=55, verbose="error").get_data()
    psd_after = out.compute_psd(fmin=45, fmax=55, verbose="error").get_data()
    line = np.argmax(psd_before.mean(axis=0))
    assert np.all(psd_after[:, line] < psd_before[:, line] / 100)  # >= 20 dB at 50 Hz
    raw.info["line_freq"] = None
    with pytest.raises(ValueError, match="no 'line_freq'"):
        notch_line_noise(raw)


def test_fir_high_gamma_matches_mne_filter_and_hilbert_applied_directly(raw):
    out = high_gamma(raw, method="fir").get_data()
    total = 0.0
    for lo, hi in high_gamma_bands():
        amp = raw.copy().filter(lo, hi, verbose="error").apply_hilbert(envelope=True, verbose="error").get_data()
        total = total + amp / amp.mean(axis=1, keepdims=True)
    expected = total / 8
    expected = (expected - expected.mean(axis=1, keepdims=True)) / expected.std(axis=1, keepdims=True)
    np.testing.assert_allclose(out, expected, atol=1e-9)


def test_gaussian_high_gamma_matches_mne_morlet_applied_directly(raw):
    bands = high_gamma_bands()
    centers = np.sqrt(bands[:, 0] * bands[:, 1])
    sigmas = (bands[:, 1] - bands[:, 0]) / 2
    tfr = mne.time_frequency.tfr_array_morlet(raw.get_data()[None], raw.info["sfreq"], centers, centers / sigmas,
                                              output="complex", verbose="error")[0]  # fmt: skip
    amp = np.abs(tfr)  # (n_channels, n_bands, n_times)
    expected = (amp / amp.mean(axis=2, keepdims=True)).mean(axis=1)
    out = high_gamma(raw, zscore=False, chunk=5).get_data()  # chunks of channels: same result
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["gaussian", "fir"])
def test_high_gamma_follows_an_amplitude_modulation(method):
    sfreq, n = 512.0, 4096
    t = np.arange(n) / sfreq
    modulation = 1.0 + 0.8 * np.sin(2 * np.pi * 0.5 * t)
    carrier = np.sin(2 * np.pi * 110.0 * t)  # one carrier: two would beat in bands that hold both
    raw = mne.io.RawArray((modulation * carrier * 1e-5)[None], mne.create_info(["E1"], sfreq, "ecog"), verbose="error")
    envelope = high_gamma(raw, method=method).get_data()[0]
    inner = slice(int(sfreq), n - int(sfreq))  # away from the filters' edge effects
    assert np.corrcoef(envelope[inner], modulation[inner])[0, 1] > 0.99


def test_high_gamma_recovers_planted_channels_at_the_planted_latency(sim):
    hg = resample(high_gamma(rereference(notch_line_noise(sim.to_raw()), "average")), 100.0)
    env = hg.get_data()
    feature = np.interp(hg.times, sim.times, sim.feature)
    lags = np.arange(0, 41)  # 0-400 ms at 100 Hz
    corr = np.array([[np.corrcoef(feature[: len(feature) - k], e[k:])[0, 1] for k in lags] for e in env])
    best = lags[np.argmax(corr[sim.responsive].mean(axis=0))] / 100.0
    assert abs(best - sim.latency) <= 0.02
    at_latency = corr[:, int(round(sim.latency * 100))]
    # Every planted channel above every noise channel (whose correlations are chance, ~1/sqrt(n_independent))
    assert at_latency[sim.responsive].min() > np.abs(at_latency[~sim.responsive]).max()
    condition = np.round(np.interp(hg.times, sim.times, sim.condition)).astype(int)
    rise = env[:, condition == 1].mean(axis=1) - env[:, condition == 0].mean(axis=1)
    assert rise[sim.condition_channels].min() > np.abs(rise[~sim.condition_channels]).max()


def test_resample_matches_mne_and_keeps_annotation_times(raw):
    raw.set_annotations(mne.Annotations([1.5, 4.0], [0.5, 0.5], ["a", "b"]))
    out = resample(raw, 128.0)
    np.testing.assert_array_equal(out.get_data(), raw.copy().resample(128.0, verbose="error").get_data())
    assert out.info["sfreq"] == 128.0 and out.n_times == raw.n_times // 4
    np.testing.assert_allclose(out.annotations.onset, [1.5, 4.0], atol=EPS32)
    with pytest.raises(ValueError, match="'sfreq' parameter of resample must be a positive rate"):
        resample(raw, 0)


def test_bad_high_gamma_arguments_are_refused(raw):
    with pytest.raises(ValueError, match=r"'band' parameter of high_gamma must satisfy .* Nyquist \(256.0 Hz\)"):
        high_gamma(raw, band=(70.0, 300.0))
    with pytest.raises(ValueError, match="'method' parameter of high_gamma must be 'gaussian' or 'fir'"):
        high_gamma(raw, method="wavelet")
    eeg = mne.io.RawArray(np.zeros((1, 1024)), mne.create_info(["Cz"], 512.0, "eeg"), verbose="error")
    with pytest.raises(ValueError, match=r"no iEEG channel .* channel types are \['eeg'\]"):
        high_gamma(eeg)
