"""Per-target scores agree with scikit-learn and scipy; noise-ceiling normalization."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr
from sklearn.metrics import r2_score as sk_r2_score

from encoding_simulation import simulate
from neurodec.data import noise_ceiling_from_ncsnr
from neurodec.encoding import EncodingScores, estimate_ncsnr, normalize_by_noise_ceiling, pearson_r, r2_score


def test_scores_match_sklearn_and_scipy(rng):
    y = rng.standard_normal((50, 7))
    p = 0.5 * y + rng.standard_normal((50, 7))
    np.testing.assert_allclose(r2_score(y, p), sk_r2_score(y, p, multioutput="raw_values"), rtol=1e-12)
    expected = [pearsonr(y[:, t], p[:, t])[0] for t in range(7)]
    np.testing.assert_allclose(pearson_r(y, p), expected, rtol=1e-12)


def test_constant_or_nan_targets_score_nan(rng):
    y = rng.standard_normal((20, 3))
    y[:, 1] = 4.0
    y[3, 2] = np.nan
    p = rng.standard_normal((20, 3))
    assert np.isnan(pearson_r(y, p)[1:]).all() and np.isnan(r2_score(y, p)[1:]).all()
    assert np.isfinite(pearson_r(y, p)[0])
    with pytest.raises(ValueError, match="shape"):
        r2_score(y, p[:, :2])


def test_normalization_by_noise_ceiling():
    r2 = np.array([0.2, 0.4, 0.1, 0.3])
    nc = np.array([0.4, 0.4, 0.0, np.nan])
    np.testing.assert_allclose(normalize_by_noise_ceiling(r2, nc), [0.5, 1.0, np.nan, np.nan])
    r = np.sqrt(np.array([0.2, 0.4, 0.1, 0.3]))
    np.testing.assert_allclose(normalize_by_noise_ceiling(r, nc, kind="r")[:2], np.sqrt([0.5, 1.0]))
    with pytest.raises(ValueError, match="'kind'"):
        normalize_by_noise_ceiling(r2, nc, kind="corr")


def test_estimate_ncsnr_recovers_planted_snr(rng):
    _, responses, _ = simulate(rng, n_train=300, n_test=10, train_repeats=3, signal_sd=1.5, noise_sd=1.0)
    ncsnr = estimate_ncsnr(responses)
    np.testing.assert_allclose(ncsnr, responses.units["ncsnr"], rtol=0.15)
    # The noise ceiling of a 3-repeat average follows the NSD formula.
    nc = noise_ceiling_from_ncsnr(ncsnr, 3)
    np.testing.assert_allclose(nc, 1.5**2 / (1.5**2 + 1 / 3), atol=0.05)
    # Pure-noise units have an ncsnr near 0.
    pure_noise = responses.select_units(np.arange(3))
    pure_noise.data = rng.standard_normal(pure_noise.data.shape)
    assert np.all(estimate_ncsnr(pure_noise) < 0.3)


def test_estimate_ncsnr_needs_repeats(rng):
    _, responses, _ = simulate(rng, train_repeats=1, test_repeats=1)
    with pytest.raises(ValueError, match="at least twice"):
        estimate_ncsnr(responses)


def test_encoding_scores_container():
    units = pd.DataFrame({"i": [0, 1, 2]})
    scores = EncodingScores(r=[0.5, 0.2, np.nan], r2=[0.25, 0.04, np.nan], noise_ceiling=[0.5, 0.5, 0.5], units=units)
    np.testing.assert_allclose(scores.r2_normalized[:2], [0.5, 0.08])
    frame = scores.to_frame()
    assert list(frame.columns) == ["i", "r", "r2", "noise_ceiling", "r_normalized", "r2_normalized"]
    with pytest.raises(ValueError, match="n_permutations"):
        scores.significant()
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        EncodingScores(r=[0.1], r2=[0.1, 0.2, 0.3], noise_ceiling=[1, 1, 1], units=units)


def test_compute_noise_ceiling_sources(rng):
    from neurodec.encoding import compute_noise_ceiling

    _, responses, truth = simulate(rng, test_repeats=2)
    np.testing.assert_allclose(compute_noise_ceiling(responses), 1 / (1 + 1 / 2))  # ncsnr column, 2 repeats
    np.testing.assert_allclose(compute_noise_ceiling(responses.average_repeats()), 1 / (1 + 1 / 2))
    once = responses.select_trials((responses.trials["repeat"] == 0).to_numpy())
    once.units = once.units.drop(columns="ncsnr")
    assert np.isnan(compute_noise_ceiling(once)).all()
