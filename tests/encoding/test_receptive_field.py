"""TemporalReceptiveField: lag moments vs the materialized design, MNE agreement, CV vs the ridge solver,
planted latencies, scikit-learn pipelines (mne-python#5089), bad input."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from float32_tolerance import float32_atol
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from neurodec.ridge import BlockedKFold, solve_ridge_cv
from neurodec.ridge.delays import Delayer
from neurodec.encoding import TemporalReceptiveField
from neurodec.encoding._lags import Lags, lagged_cross, lagged_gram, lagged_predict, lagged_sums

SFREQ = 100.0


def _design(x, dmin, dmax):
    """Materialized lagged design of segments x (R, T, F), zero-padded per segment."""
    return np.stack([Delayer(delays=list(range(dmin, dmax + 1))).fit_transform(seg) for seg in x])


@pytest.mark.parametrize("dmin, dmax, T", [(0, 5, 40), (-3, 4, 50), (2, 6, 30), (-5, -1, 33), (0, 3, 6), (0, 10, 300)])
def test_lag_moments_match_the_materialized_design(rng, dmin, dmax, T):
    # Toeplitz Gram minus edges (long pieces) and the direct route (short ones) against D^T D.
    lags = Lags(dmin, dmax)
    x, y = rng.standard_normal((2, T, 3)), rng.standard_normal((2, T, 4))
    D = _design(x, dmin, dmax)
    xp = lags.pad(torch.as_tensor(x))
    W = rng.standard_normal((3 * lags.n_delays, 4))
    for a, b in [(0, T), (3, T - 2), (T // 2, T)]:
        z, Dab = lags.window(xp, a, b), D[:, a:b].reshape(-1, D.shape[-1])
        np.testing.assert_allclose(lagged_gram(z, lags.n_delays).numpy(), Dab.T @ Dab, atol=1e-10)
        yab = torch.as_tensor(y[:, a:b])
        cross = lagged_cross(z, yab, lags.n_delays).numpy()
        np.testing.assert_allclose(cross, Dab.T @ y[:, a:b].reshape(-1, 4), atol=1e-10)
        np.testing.assert_allclose(lagged_sums(z, lags.n_delays).numpy(), Dab.sum(0), atol=1e-10)
        pred = lagged_predict(z, torch.as_tensor(W), lags.n_delays).numpy().reshape(-1, 4)
        np.testing.assert_allclose(pred, Dab @ W, atol=1e-10)


def _tolerance(X3, Y3, alpha, tmin, tmax):
    """float32 error of the weights: the n-term cross products X^T Y (float32; Grams are float64)
    perturb the right-hand side by n * eps32 * |x| |y| per entry, and (G + alpha I)^-1 scales a
    perturbation by at most 1 / (s_min + alpha)."""
    dmin, dmax = round(tmin * SFREQ), round(tmax * SFREQ)
    Xc = X3 - X3.mean((0, 1))
    D = _design(Xc, dmin, dmax).reshape(-1, X3.shape[-1] * (dmax - dmin + 1))
    s_min = np.linalg.eigvalsh(D.T @ D).min()
    rhs = float32_atol(D.shape[0], np.abs(Xc).max() * np.abs(Y3 - Y3.mean((0, 1))).max()) * np.sqrt(D.shape[1])
    return rhs / (s_min + alpha)


@pytest.mark.parametrize("epoched", [False, True])
def test_matches_mne_receptive_field_and_time_delaying_ridge(rng, epoched):
    from mne.decoding import ReceptiveField, TimeDelayingRidge

    tmin, tmax, alpha = -0.03, 0.1, 10.0
    shape = (4, 300) if epoched else (1, 1200)
    X3 = rng.standard_normal((*shape, 3)) + 0.5  # non-zero means: the intercept convention matters
    Y3 = X3[..., :1] * 0.5 + rng.standard_normal((*shape, 4)) + 2.0
    X, Y = (X3, Y3) if epoched else (X3[0], Y3[0])
    ours = TemporalReceptiveField(tmin, tmax, SFREQ, alphas=[alpha], cv=None).fit(X, Y)
    mne_X, mne_Y = (X3.transpose(1, 0, 2), Y3.transpose(1, 0, 2)) if epoched else (X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rf = ReceptiveField(tmin, tmax, SFREQ, estimator=alpha).fit(mne_X, mne_Y)
        tdr = TimeDelayingRidge(tmin, tmax, SFREQ, alpha=alpha).fit(mne_X, mne_Y)
        mne_pred = rf.predict(mne_X)
    atol = _tolerance(X3, Y3, alpha, tmin, tmax)
    for coef in (rf.coef_, tdr.coef_):
        np.testing.assert_allclose(ours.coef_, coef, rtol=0, atol=atol)
    # intercepts and predictions sum p = n_features * n_delays weights times |x|: their error bound
    x_bound = ours.coef_[0].size * np.abs(X3).max() * atol
    np.testing.assert_allclose(ours.intercept_, tdr.intercept_, rtol=0, atol=x_bound)
    valid = rf.valid_samples_  # MNE pads raw zeros at prediction time, we pad the mean: compare where no pad
    pred = ours.predict(X)
    ours_valid = pred[:, valid] if epoched else pred[valid]
    mne_valid = mne_pred[valid].transpose(1, 0, 2) if epoched else mne_pred[valid]
    np.testing.assert_allclose(ours_valid, mne_valid, rtol=0, atol=x_bound)
    np.testing.assert_array_equal(ours.delays_, rf.delays_)


def test_cross_validation_matches_the_ridge_solver_on_the_design(rng):
    # Same folds, same centred design: scores per alpha and chosen alphas of solve_ridge_cv.
    X = rng.standard_normal((900, 2)) + 1.0
    Y = np.convolve(X[:, 0], [0, 0.5, 1.0, 0.5])[:900, None] * [1.0, 0.3, 0.0] + rng.standard_normal((900, 3))
    alphas = np.logspace(-1, 5, 7)
    trf = TemporalReceptiveField(0, 0.05, SFREQ, alphas=alphas, cv=BlockedKFold(4), warn_alpha_edge=False).fit(X, Y)
    D = Delayer(delays=list(range(6))).fit_transform(X - X.mean(0))
    ref = solve_ridge_cv(
        torch.as_tensor(D), torch.as_tensor(Y - Y.mean(0)), alphas, list(BlockedKFold(4).split(D)),
        fit_intercept=False, dtype=torch.float64, device="cpu",
    )
    atol = float32_atol(900, 1.0) * 10
    np.testing.assert_allclose(trf.cv_scores_, ref.cv_scores.numpy(), rtol=0, atol=atol)
    np.testing.assert_array_equal(trf.best_alphas_, ref.best_alphas.numpy())
    np.testing.assert_allclose(trf.coef_.reshape(3, -1).T, ref.coef.numpy(), rtol=0, atol=atol * np.abs(Y).max())


def _planted(rng, n=3000, latencies=(0.05, 0.1, 0.15, 0.2), n_noise=4):
    """One white stimulus feature driving channels through kernels peaking at planted latencies."""
    x = rng.standard_normal((n, 1))
    lags = np.arange(0, 31) / SFREQ
    channels = []
    for latency in latencies:
        kernel = np.exp(-0.5 * ((lags - latency) / 0.02) ** 2)
        channels.append(np.convolve(x[:, 0], kernel)[:n])
    signal = np.stack(channels, 1)
    noise = rng.standard_normal((n, len(latencies) + n_noise)) * signal.std()
    Y = np.concatenate([signal, np.zeros((n, n_noise))], 1) + noise
    return x, Y


def test_planted_latencies_and_driven_channels_are_recovered(rng):
    x, Y = _planted(rng)
    trf = TemporalReceptiveField(0, 0.3, SFREQ, alphas=np.logspace(-2, 8, 21)).fit(x[:2400], Y[:2400])
    np.testing.assert_allclose(trf.peak_latencies()[:4], [0.05, 0.1, 0.15, 0.2], atol=0.5 / SFREQ)
    assert trf.coef_.shape == (8, 1, 31) and trf.best_alphas_.shape == (8,)
    assert trf.scores_[:4].min() > 0.3 and trf.scores_[4:].max() < 0.02
    held_out = trf.score_channels(x[2400:], Y[2400:], metric="pearson")
    assert held_out[:4].min() > 0.6 and np.abs(held_out[4:]).max() < 0.15


def test_pipeline_and_grid_search_choose_the_window_that_holds_the_response(rng):
    # mne-python#5089: ReceptiveField fails inside Pipeline/GridSearchCV; ours is a plain regressor.
    x, Y = _planted(rng, n=2000, latencies=(0.2,), n_noise=0)
    trf = TemporalReceptiveField(0, 0.1, SFREQ, alphas=np.logspace(-1, 5, 7))
    pipe = Pipeline([("scale", StandardScaler()), ("trf", trf)])
    search = GridSearchCV(pipe, {"trf__tmax": [0.1, 0.3]}, cv=KFold(3)).fit(x, Y[:, 0])
    assert search.best_params_ == {"trf__tmax": 0.3}
    assert search.cv_results_["mean_test_score"][1] > search.cv_results_["mean_test_score"][0] + 0.2
    assert clone(pipe).get_params()["trf__tmax"] == 0.1
    assert search.predict(x).shape == (2000,)


def test_runs_are_segments_like_epochs(rng):
    X, Y = rng.standard_normal((3, 200, 2)), rng.standard_normal((3, 200, 2))
    runs = np.repeat([0, 1, 0], 200)  # a label coming back starts a new run
    kwargs = dict(alphas=[5.0], cv=None, dtype="float64")  # same sums in another order: exact in float64
    epochs = TemporalReceptiveField(-0.02, 0.05, SFREQ, **kwargs).fit(X, Y)
    Xc, Yc = X.reshape(600, 2), Y.reshape(600, 2)
    continuous = TemporalReceptiveField(-0.02, 0.05, SFREQ, **kwargs).fit(Xc, Yc, runs=runs)
    np.testing.assert_allclose(continuous.coef_, epochs.coef_, atol=1e-10)
    np.testing.assert_allclose(continuous.predict(Xc, runs=runs), epochs.predict(X).reshape(600, 2), atol=1e-9)


def test_bad_input_is_named(rng):
    X, Y = rng.standard_normal((100, 2)), rng.standard_normal((100, 3))
    with pytest.raises(ValueError, match="'tmin' parameter must be <= 'tmax'"):
        TemporalReceptiveField(0.2, 0.1, SFREQ).fit(X, Y)
    with pytest.raises(ValueError, match="'sfreq' parameter"):
        TemporalReceptiveField(0, 0.1, -1.0).fit(X, Y)
    with pytest.raises(ValueError, match="'X' argument must be of shape"):
        TemporalReceptiveField(0, 0.1, SFREQ).fit(X[:, 0], Y)
    with pytest.raises(ValueError, match="share their epochs and time axes"):
        TemporalReceptiveField(0, 0.1, SFREQ).fit(X, Y[:90])
    with pytest.raises(ValueError, match="cv=None the 'alphas' parameter must hold one value"):
        TemporalReceptiveField(0, 0.1, SFREQ, cv=None).fit(X, Y)
    with pytest.raises(ValueError, match="NaN or infinite"):
        TemporalReceptiveField(0, 0.1, SFREQ).fit(np.where(X > 2, np.nan, X), Y)
    trf = TemporalReceptiveField(0, 0.05, SFREQ, alphas=[1.0], cv=None).fit(X, Y)
    with pytest.raises(ValueError, match="fitted with 2"):
        trf.predict(X[:, :1])
    with pytest.raises(ValueError, match="'runs' argument must hold one label per time sample"):
        trf.predict(X, runs=np.zeros(5))


def test_import_stays_light():
    code = "import sys, neurodec.encoding, neurodec.decoding; print(sorted({'torch', 'mne', 'sklearn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
