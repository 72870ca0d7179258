"""LinearDecoder: the reference ridge on train-z-scored voxels, no test leakage, re-standardization,
token targets, recovery of planted embeddings on a simulated subject, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from float32_tolerance import float32_atol
from scipy.stats import binom
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

from neurodec.decoding import LinearDecoder, restandardize
from neurodec.metrics import retrieval_top_k


def _data(rng, n=120, p=60, d=12, noise=1.0):
    embeddings = rng.standard_normal((n, d))
    X = 3.0 + 2.0 * (embeddings @ rng.standard_normal((d, p)) + noise * rng.standard_normal((n, p)))
    return X, embeddings


def _zscore_train(X_train, X):
    return (X - X_train.mean(0)) / X_train.std(0, ddof=1)


@pytest.mark.parametrize("method", ["primal", "dual"])
def test_fixed_alpha_matches_sklearn_ridge_on_train_zscored_voxels(rng, method):
    X, Y = _data(rng)
    Y = 5.0 + 3.0 * Y  # targets off zero and off unit scale: the intercept and scale must be right
    train, test = slice(0, 90), slice(90, None)
    decoder = LinearDecoder(alphas=[30.0], method=method, device="cpu").fit(X[train], Y[train])
    assert decoder.method_ == method and decoder.cv_scores_ is None  # one alpha: no cross-validation
    ref = Ridge(alpha=30.0).fit(_zscore_train(X[train], X[train]), Y[train])
    pred_ref = ref.predict(_zscore_train(X[train], X[test]))
    # float32 products over at most n_train + n_voxels terms, on the targets' scale.
    atol = float32_atol(90 + X.shape[1], Y[train].std(0))
    assert np.all(np.abs(decoder.predict(X[test]) - pred_ref).max(0) <= atol)
    np.testing.assert_allclose(decoder.coef_, ref.coef_.T, rtol=0, atol=float32_atol(90 + X.shape[1]) * np.abs(ref.coef_).max())


def test_cv_alphas_match_himalaya(rng):
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV as HimalayaRidgeCV
    from himalaya.scoring import r2_score

    X, Y = _data(rng, n=150, p=40, d=20, noise=3.0)
    alphas = np.logspace(0, 4, 9)
    splits = list(KFold(5).split(X[:120]))
    decoder = LinearDecoder(alphas=alphas, cv=splits, device="cpu").fit(X[:120], Y[:120])
    set_backend("numpy", on_error="raise")
    ref = HimalayaRidgeCV(alphas=alphas, cv=splits, fit_intercept=True, solver_params={"score_func": r2_score})
    ref.fit(_zscore_train(X[:120], X[:120]), Y[:120])
    np.testing.assert_allclose(decoder.best_alphas_, ref.best_alphas_, rtol=1e-12)  # same grid point
    pred_ref = ref.predict(_zscore_train(X[:120], X[120:]))
    assert np.all(np.abs(decoder.predict(X[120:]) - pred_ref).max(0) <= float32_atol(120 + 40, Y.std(0)))


def test_voxels_are_zscored_with_training_statistics_only(rng):
    X, Y = _data(rng)
    decoder = LinearDecoder(alphas=[10.0], device="cpu").fit(X[:90], Y[:90])
    np.testing.assert_allclose(decoder.x_mean_, X[:90].mean(0), rtol=1e-12)
    np.testing.assert_allclose(decoder.x_scale_, X[:90].std(0, ddof=1), rtol=1e-12)
    test = X[90:]
    pred = decoder.predict(test)
    # Test-set statistics would undo a shift of every test voxel; train statistics carry it through.
    shifted = decoder.predict(test + 1.0)
    expected_shift = (1.0 / decoder.x_scale_) @ decoder.coef_
    atol = float32_atol(X.shape[1], np.abs(decoder.coef_).sum(0) * np.abs(_zscore_train(X[:90], test)).max())
    assert np.all(np.abs(shifted - pred - expected_shift).max(0) <= atol)
    # One sample predicted alone equals its row of the batch prediction.
    assert np.all(np.abs(decoder.predict(test[:1]) - pred[:1]) <= atol)


def test_fit_is_equivariant_to_per_target_affine_maps(rng):
    """The reference z-scores the targets with training statistics; that fit is the raw fit mapped back."""
    X, Y = _data(rng, noise=2.0)
    alphas = np.logspace(0, 4, 9)
    raw = LinearDecoder(alphas=alphas, device="cpu").fit(X[:90], Y[:90])
    mean, std = Y[:90].mean(0), Y[:90].std(0)
    z = LinearDecoder(alphas=alphas, device="cpu").fit(X[:90], (Y[:90] - mean) / std)
    np.testing.assert_array_equal(raw.best_alphas_, z.best_alphas_)
    np.testing.assert_allclose(raw.y_mean_, mean, rtol=1e-12)
    np.testing.assert_allclose(raw.y_std_, std, rtol=1e-12)
    back = z.predict(X[90:]) * std + mean
    assert np.all(np.abs(raw.predict(X[90:]) - back).max(0) <= float32_atol(90 + X.shape[1], std))


def test_restandardization_matches_the_brain_diffuser_formula(rng):
    X, Y = _data(rng)
    Y = 2.0 + 4.0 * Y
    plain = LinearDecoder(alphas=[1e3], device="cpu").fit(X[:90], Y[:90])
    restd = LinearDecoder(alphas=[1e3], restandardize=True, device="cpu").fit(X[:90], Y[:90])
    pred = plain.predict(X[90:])
    # Brain-Diffuser: (p - mean(p)) / std(p) * std(train) + mean(train), np.std with ddof 0.
    expected = (pred - pred.mean(0)) / pred.std(0) * Y[:90].std(0) + Y[:90].mean(0)
    out = restd.predict(X[90:])
    # Both fits run the same deterministic float32 computation; what remains is float64 rounding.
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10 * np.abs(Y).max())
    np.testing.assert_allclose(out.mean(0), Y[:90].mean(0), atol=1e-9 * np.abs(Y).max())
    np.testing.assert_allclose(out.std(0), Y[:90].std(0), rtol=1e-9)
    # Hand-computable case, and a feature predicted constant goes to the training mean.
    hand = restandardize(np.array([[1.0, 5.0], [3.0, 5.0]]), mean=np.array([10.0, -1.0]), std=np.array([2.0, 3.0]))
    np.testing.assert_array_equal(hand, [[8.0, -1.0], [12.0, -1.0]])


def test_token_targets_are_flattened_and_reshaped(rng):
    X, _ = _data(rng, p=30)
    tokens = rng.standard_normal((X.shape[0], 3, 8))
    tokens[:, 1] += X[:, :8]  # the second token is decodable
    decoder = LinearDecoder(alphas=np.logspace(0, 3, 4), device="cpu").fit(X[:90], tokens[:90])
    assert decoder.target_shape_ == (3, 8) and decoder.best_alphas_.shape == (24,)
    flat = LinearDecoder(alphas=np.logspace(0, 3, 4), device="cpu").fit(X[:90], tokens[:90].reshape(90, 24))
    pred = decoder.predict(X[90:])
    assert pred.shape == (30, 3, 8)
    np.testing.assert_array_equal(pred.reshape(30, 24), flat.predict(X[90:]))
    vector = LinearDecoder(alphas=[1.0], device="cpu").fit(X[:90], tokens[:90, 1, 0])
    assert vector.predict(X[90:]).shape == (30,)


def test_streamed_targets_give_the_in_memory_fit(rng, tmp_path):
    X, Y = _data(rng)
    stored = np.lib.format.open_memmap(tmp_path / "y.npy", mode="w+", dtype=np.float32, shape=Y.shape)
    stored[:] = Y
    in_memory = LinearDecoder(alphas=[10.0, 100.0], device="cpu").fit(X, Y.astype(np.float32))
    streamed = LinearDecoder(alphas=[10.0, 100.0], device="cpu", n_targets_batch=5).fit(X, stored)
    np.testing.assert_array_equal(in_memory.best_alphas_, streamed.best_alphas_)
    np.testing.assert_allclose(in_memory.predict(X), streamed.predict(X), rtol=0,
                               atol=float(float32_atol(len(X) + X.shape[1], Y.std(0)).max()))


def test_planted_embeddings_are_retrieved_far_above_chance():
    """A simulated subject (neurodec.data.simulation) whose voxels encode known embeddings."""
    from neurodec.data.simulation import simulate_subject, simulate_trials

    rng = np.random.default_rng(4)
    n_images, dim = 500, 64
    embeddings = rng.standard_normal((n_images, dim))
    categories = np.array(["face", "place", "body", "word", "food"])[rng.integers(0, 5, n_images)]
    subject = simulate_subject({"early": embeddings, "late": embeddings}, categories, early_layer="early",
                               late_layer="late", grid=2, random_state=0)
    responses = simulate_trials(subject, np.arange(n_images), random_state=1)
    train, test = np.arange(400), np.arange(400, 500)
    decoder = LinearDecoder(restandardize=True, device="cpu").fit(responses[train], embeddings[train])
    decoded = decoder.predict(responses[test])
    n_way = 100
    result = retrieval_top_k(decoded, embeddings[test], n_way=n_way, n_draws=1, random_state=0)
    # Under chance each of the n_way samples is a hit with probability 1/n_way; this many hits has
    # probability below 1e-9 under chance.
    bound = binom.isf(1e-9, n_way, 1 / n_way) / n_way
    assert result.image_retrieval > bound and result.brain_retrieval > bound
    assert result.image_retrieval > 0.5


def test_bad_input_is_named(rng):
    X, Y = _data(rng)
    with pytest.raises(ValueError, match="'y' parameter of LinearDecoder.fit.*n_samples = 120"):
        LinearDecoder(device="cpu").fit(X, Y[:-1])
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LinearDecoder(device="cpu").fit(bad, Y)
    with pytest.raises(ValueError, match="alphas"):
        LinearDecoder(alphas=[-1.0], device="cpu").fit(X, Y)
    decoder = LinearDecoder(alphas=[1.0], restandardize=True, device="cpu").fit(X, Y)
    with pytest.raises(ValueError, match="features"):
        decoder.predict(X[:, :-1])
    with pytest.raises(ValueError, match="n_samples >= 2"):
        decoder.predict(X[:1])


def test_scikit_learn_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator

    failed = check_estimator(LinearDecoder(device="cpu"), on_fail=None)
    assert not [r for r in failed if r["status"] == "failed"], [r["check_name"] for r in failed if r["status"] == "failed"]
