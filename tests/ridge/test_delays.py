"""Delayer: FIR delayed copies against explicit loops, run boundaries, pipelines, TRF recovery."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
from sklearn.pipeline import make_pipeline

from neurodec.ridge import RidgeCV
from neurodec.ridge.delays import Delayer


def _loop_reference(X, delays, runs=None):
    """Delay-major reference built sample by sample (the layout of the Gallant lab tutorials)."""
    n_samples, n_features = X.shape
    runs = np.zeros(n_samples) if runs is None else np.asarray(runs)
    out = np.zeros((n_samples, len(delays) * n_features))
    for k, d in enumerate(delays):
        for t in range(n_samples):
            s = t - d
            # the source sample must exist and belong to the same contiguous run
            if 0 <= s < n_samples and np.all(runs[min(s, t) : max(s, t) + 1] == runs[t]):
                out[t, k * n_features : (k + 1) * n_features] = X[s]
    return out


def _to_delay_major(Xt, n_features, n_delays):
    return Xt.reshape(-1, n_features, n_delays).transpose(0, 2, 1).reshape(-1, n_delays * n_features)


def test_docstring_example_by_hand():
    X = np.arange(6.0).reshape(3, 2)
    expected = np.array([[0, 0, 1, 0], [2, 0, 3, 1], [4, 2, 5, 3]], dtype=float)
    np.testing.assert_array_equal(Delayer(delays=[0, 1]).fit_transform(X), expected)


@pytest.mark.parametrize("delays", [[1, 2, 3, 4], [0, -2, 3], [-1]])
def test_matches_loop_reference(rng, delays):
    X = rng.standard_normal((23, 3))
    Xt = Delayer(delays=delays).fit_transform(X)
    assert Xt.shape == (23, 3 * len(delays))
    np.testing.assert_array_equal(_to_delay_major(Xt, 3, len(delays)), _loop_reference(X, delays))


def test_delays_do_not_cross_runs(rng):
    X = rng.standard_normal((20, 2))
    runs = np.repeat(["a", "b", "c", "a"], 5)  # a label may come back: it is a new run
    delays = [-2, 0, 1, 3]
    Xt = Delayer(delays=delays).fit_transform(X, runs=runs)
    np.testing.assert_array_equal(_to_delay_major(Xt, 2, 4), _loop_reference(X, delays, runs))
    # the first sample of each run has no past
    np.testing.assert_array_equal(Xt[[0, 5, 10, 15]][:, [2, 3, 6, 7]], 0.0)


def test_delays_in_seconds_and_feature_names(rng):
    X = rng.standard_normal((10, 2))
    delayer = Delayer(delays=[0.5, 1.0], sfreq=4.0).fit(X)
    np.testing.assert_array_equal(delayer.delays_, [2, 4])
    np.testing.assert_array_equal(delayer.transform(X), Delayer(delays=[2, 4]).fit_transform(X))
    assert list(delayer.get_feature_names_out()) == ["x0_delay2", "x0_delay4", "x1_delay2", "x1_delay4"]
    assert list(delayer.get_feature_names_out(["a", "b"]))[:2] == ["a_delay2", "a_delay4"]


def test_dataframe_names_pass_through(rng):
    import pandas as pd

    df = pd.DataFrame(rng.standard_normal((5, 2)), columns=["loud", "pitch"])
    names = Delayer(delays=[1, -1]).fit(df).get_feature_names_out()
    assert list(names) == ["loud_delay1", "loud_delay-1", "pitch_delay1", "pitch_delay-1"]


def test_bad_input_errors(rng):
    X = rng.standard_normal((6, 2))
    with pytest.raises(ValueError, match="whole numbers of samples"):
        Delayer(delays=[0.3], sfreq=2.0).fit(X)
    with pytest.raises(ValueError, match="repeated delays"):
        Delayer(delays=[1, 1]).fit(X)
    with pytest.raises(ValueError, match="one run label per sample"):
        Delayer().fit_transform(X, runs=[0, 0, 1])
    with pytest.raises(ValueError, match="at least one delay"):
        Delayer(delays=[]).fit(X)
    with pytest.raises(ValueError, match="features"):
        Delayer().fit(X).transform(rng.standard_normal((6, 3)))


def test_scikit_learn_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator

    # a time-series transformer depends on the order of the samples, by design
    order_checks = {
        "check_methods_sample_order_invariance": "delays depend on sample order",
        "check_methods_subset_invariance": "delays depend on neighbouring samples",
    }
    results = check_estimator(Delayer(), on_fail=None, expected_failed_checks=order_checks)
    failed = [(r["check_name"], str(r["exception"])[:300]) for r in results if r["status"] == "failed"]
    assert failed == []


def _simulate_trf(rng, n_samples=600, runs=None):
    h = np.array([[0.0, 1.0, 0.6, -0.4, 0.1], [0.5, -0.8, 0.0, 0.3, 0.0]])  # (n_features, n_delays)
    delays = np.arange(5)
    X = rng.standard_normal((n_samples, 2))
    Y = Delayer(delays=delays).fit_transform(X, runs=runs) @ h.ravel()
    return X, Y + 0.1 * rng.standard_normal(n_samples), h, delays


def test_planted_temporal_receptive_field_is_recovered(rng):
    X, y, h, delays = _simulate_trf(rng)
    pipe = make_pipeline(Delayer(delays=delays), RidgeCV(alphas=np.logspace(-4, 4, 9), device="cpu", dtype="float64"))
    pipe.fit(X[:500], y[:500])
    h_hat = pipe[-1].coef_.reshape(h.shape)  # feature-major layout: (n_features, n_delays)
    np.testing.assert_allclose(h_hat, h, atol=0.03)
    assert pipe.score(X[500:], y[500:]) > 0.95


def test_runs_route_through_a_pipeline(rng):
    runs = np.repeat([0, 1, 2], 200)
    X, y, h, delays = _simulate_trf(rng, runs=runs)
    with sklearn.config_context(enable_metadata_routing=True):
        delayer = Delayer(delays=delays).set_fit_request(runs=True).set_transform_request(runs=True)
        pipe = make_pipeline(delayer, RidgeCV(alphas=np.logspace(-4, 4, 9), device="cpu", dtype="float64"))
        pipe.fit(X[:400], y[:400], runs=runs[:400])
        pred = pipe.predict(X[400:], runs=runs[400:])
    np.testing.assert_allclose(pipe[-1].coef_.reshape(h.shape), h, atol=0.03)
    # the pipeline's prediction uses run-aware delays: it equals a direct computation
    direct = Delayer(delays=delays).fit_transform(X[400:], runs=runs[400:]) @ pipe[-1].coef_ + pipe[-1].intercept_
    np.testing.assert_allclose(pred, direct, rtol=1e-8, atol=1e-8)
