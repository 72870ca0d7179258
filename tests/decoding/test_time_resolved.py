"""Time-resolved decoding: agreement with MNE's SlidingEstimator / GeneralizingEstimator and scikit-learn
ridge, the alpha search against RidgeCV per time point, planted information windows, permutation p-values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from float32_tolerance import float32_atol
from sklearn.linear_model import Ridge, RidgeClassifier
from sklearn.model_selection import KFold

from neurodec.ridge import RidgeCV
from neurodec.decoding import (
    GeneralizingRidge,
    SlidingRidge,
    SlidingRidgeClassifier,
    cross_val_time_scores,
    time_permutation_test,
)


def _epochs(rng, n=60, n_channels=8, n_times=12):
    X = rng.standard_normal((n, n_channels, n_times)) + 1.0
    y = X[:, 0, :].mean(1) + 0.5 * rng.standard_normal(n)
    return X, y


def _weight_tolerance(X, y, alpha):
    """float32 error of ridge weights: n-term X^T y sums, scaled by 1 / (s_min + alpha) (SVDs are float64)."""
    Xc = X - X.mean(0)
    s_min = min(np.linalg.svd(Xc[:, :, t], compute_uv=False).min() ** 2 for t in range(X.shape[2]))
    rhs = float32_atol(len(y), np.abs(Xc).max() * np.abs(y - y.mean()).max()) * np.sqrt(X.shape[1])
    return rhs / (s_min + alpha)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_sliding_ridge_matches_mne_sliding_estimator(rng):
    from mne.decoding import SlidingEstimator

    X, y = _epochs(rng)
    ours = SlidingRidge(alphas=[3.0]).fit(X, y)
    mne = _quiet(SlidingEstimator(Ridge(alpha=3.0), verbose=False).fit, X, y)
    atol = _weight_tolerance(X, y, 3.0)
    np.testing.assert_allclose(ours.coef_[:, :, 0], [e.coef_ for e in mne.estimators_], rtol=0, atol=atol)
    pred_bound = X.shape[1] * np.abs(X).max() * atol  # predictions sum n_channels weighted samples
    np.testing.assert_allclose(ours.predict(X), _quiet(mne.predict, X), rtol=0, atol=2 * pred_bound)


def test_cross_validated_scores_match_mne_for_regression_generalization_and_classification(rng):
    from mne.decoding import GeneralizingEstimator, SlidingEstimator, cross_val_multiscore

    X, y = _epochs(rng, n_times=8)  # MNE scores the generalization matrix one r2_score call per cell
    labels = (y > np.median(y)).astype(int)
    cv = KFold(5)
    cases = [
        (SlidingRidge(alphas=[3.0]), SlidingEstimator(Ridge(alpha=3.0), scoring="r2", verbose=False), y),
        (GeneralizingRidge(alphas=[3.0]), GeneralizingEstimator(Ridge(alpha=3.0), scoring="r2", verbose=False), y),
        (
            SlidingRidgeClassifier(alphas=[3.0], score_func="roc_auc"),
            SlidingEstimator(RidgeClassifier(alpha=3.0), scoring="roc_auc", verbose=False),
            labels,
        ),
    ]
    for ours, theirs, target in cases:
        got = cross_val_time_scores(ours, X, target, cv=cv)
        expected = _quiet(cross_val_multiscore, theirs, X, target, cv=cv)
        assert got.shape == expected.shape
        # O(1) ratios of sums over n_val predictions, each a sum of n_channels products of float32 weights
        # fitted from n-term sums: relative float32 error of n * n_channels terms.
        np.testing.assert_allclose(got, expected, rtol=0, atol=float32_atol(X.shape[0] * X.shape[1]))


def test_classifier_decisions_match_ridge_classifier_for_two_and_three_classes(rng):
    from mne.decoding import SlidingEstimator

    X, y = _epochs(rng)
    for labels in ((y > 0).astype(int), np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))):
        ours = SlidingRidgeClassifier(alphas=[3.0], dtype="float64").fit(X, labels)
        mne = _quiet(SlidingEstimator(RidgeClassifier(alpha=3.0), verbose=False).fit, X, labels)
        np.testing.assert_allclose(ours.decision_function(X), _quiet(mne.decision_function, X), atol=1e-10)
        np.testing.assert_array_equal(ours.predict(X), _quiet(mne.predict, X))


def test_alpha_search_per_time_point_matches_ridge_cv(rng):
    X, y = _epochs(rng, n_times=6)
    Y = np.stack([y, rng.standard_normal(len(y))], 1)
    alphas = np.logspace(-2, 4, 7)
    ours = SlidingRidge(alphas=alphas, cv=4, dtype="float64", warn_alpha_edge=False).fit(X, Y)
    for t in range(X.shape[2]):
        ref = RidgeCV(alphas=alphas, cv=4, dtype="float64", warn_alpha_edge=False, device="cpu").fit(X[:, :, t], Y)
        np.testing.assert_allclose(ours.cv_scores_[:, t], ref.cv_scores_, atol=1e-9)
        np.testing.assert_array_equal(ours.best_alphas_[t], ref.best_alphas_)
        np.testing.assert_allclose(ours.coef_[t], ref.coef_, atol=1e-9)


def _planted_window(rng, n=80, n_channels=10, n_times=40, window=(20, 30)):
    """Two classes that differ by a fixed spatial pattern only inside a planted window of time points."""
    labels = np.repeat([0, 1], n // 2)
    X = rng.standard_normal((n, n_channels, n_times))
    pattern = rng.standard_normal(n_channels)
    X[:, :, window[0] : window[1]] += 0.9 * np.outer(labels * 2 - 1, pattern)[:, :, None]
    return X, labels


def test_information_in_a_planted_window_is_found_and_only_there(rng):
    X, labels = _planted_window(rng)
    result = time_permutation_test(
        SlidingRidgeClassifier(alphas=np.logspace(-1, 4, 6), score_func="roc_auc", warn_alpha_edge=False),
        X, labels, cv=KFold(5, shuffle=True, random_state=0), n_permutations=200, random_state=0,
    )
    inside, before = slice(20, 30), slice(0, 15)
    assert result.scores[inside].min() > 0.8
    assert result.p_values[inside].max() < 0.01
    assert result.p_values[before].min() > 0.2  # family-wise: no pre-onset time point survives
    assert abs(result.scores[before].mean() - 0.5) < 0.1
    assert result.null_max.shape == (200,)


def test_temporal_generalization_of_a_sustained_pattern(rng):
    X, labels = _planted_window(rng, n_times=24, window=(8, 16))
    scores = cross_val_time_scores(
        GeneralizingRidge(alphas=[10.0], score_func="pearson"), X, labels * 2.0 - 1,
        cv=KFold(4, shuffle=True, random_state=0),
    ).mean(0)
    assert scores.shape == (24, 24)
    assert scores[8:16, 8:16].min() > 0.5  # one pattern: decoders generalize across the whole window
    assert np.abs(scores[:6, :6]).mean() < 0.15 and np.abs(scores[8:16, :6]).mean() < 0.15


def test_bad_input_is_named(rng):
    X, y = _epochs(rng)
    with pytest.raises(ValueError, match="epochs of shape \\(n_epochs, n_channels, n_times\\)"):
        SlidingRidge().fit(X[:, :, 0], y)
    with pytest.raises(ValueError, match="'y' argument must be of shape"):
        SlidingRidge().fit(X, y[:10])
    with pytest.raises(ValueError, match="'score_func' parameter"):
        SlidingRidgeClassifier(score_func="r2").fit(X, y > 0)
    with pytest.raises(ValueError, match="at least 2 classes"):
        SlidingRidgeClassifier().fit(X, np.zeros(len(y)))
    with pytest.raises(ValueError, match="'n_permutations' parameter"):
        time_permutation_test(SlidingRidge(), X, y, n_permutations=0)
    with pytest.raises(ValueError, match="'estimator' argument"):
        time_permutation_test(Ridge(), X, y)
    model = SlidingRidge(alphas=[1.0]).fit(X, y)
    with pytest.raises(ValueError, match="fitted with 8 and 12"):
        model.predict(X[:, :5])
