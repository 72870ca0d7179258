"""BandedRidgeCV against himalaya (same candidates, folds, alphas), planted band weights, split scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import KFold

from neurodec.ridge._banded_solver import generate_band_weights
from neurodec.ridge.banded import BandedRidgeCV, r2_score_split

ALPHAS = np.logspace(-2, 4, 7)


def _two_band_data(rng, n_samples=240, sizes=(12, 20), n_targets=60, noise=2.0):
    """Targets mixing two bands with per-target band strengths (a well-posed search)."""
    Xs = [rng.standard_normal((n_samples, p)) for p in sizes]
    strengths = rng.uniform(0, 1, (len(sizes), n_targets)) ** 2
    Y = sum(X @ rng.standard_normal((X.shape[1], n_targets)) * s for X, s in zip(Xs, strengths))
    Y = Y + noise * rng.standard_normal(Y.shape) + 3.0
    return Xs, Y


def _himalaya_banded(Xs, Y, gammas, fit_intercept):
    from himalaya.backend import set_backend
    from himalaya.ridge import BandedRidgeCV as HimalayaBandedRidgeCV
    from himalaya.scoring import r2_score

    set_backend("numpy", on_error="raise")
    model = HimalayaBandedRidgeCV(
        groups="input",
        solver_params=dict(n_iter=gammas, alphas=ALPHAS, score_func=r2_score, progress_bar=False),
        cv=KFold(5),
        fit_intercept=fit_intercept,
    )
    return model.fit([X.copy() for X in Xs], Y)


def test_candidates_equal_himalaya_dirichlet_samples():
    from himalaya.kernel_ridge import generate_dirichlet_samples

    ours = generate_band_weights(17, 3, concentration=[0.1, 1.0, np.inf], random_state=3)
    theirs = generate_dirichlet_samples(17, 3, concentration=[0.1, 1.0, np.inf], random_state=3)
    theirs[0] = 1 / 3  # himalaya's random search starts from the uniform weighting
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=0)
    np.testing.assert_allclose(ours.sum(1), 1.0)


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_matches_himalaya_banded_ridge(rng, fit_intercept):
    Xs, Y = _two_band_data(rng)
    if not fit_intercept:
        Y = Y - Y.mean(0)
        Xs = [X - X.mean(0) for X in Xs]
    gammas = generate_band_weights(12, 2, random_state=0)
    ref = _himalaya_banded(Xs, Y, gammas, fit_intercept)
    ours = BandedRidgeCV(
        alphas=ALPHAS, n_iter=gammas, cv=KFold(5), dtype="float64", device="cpu",
        fit_intercept=fit_intercept,
    ).fit(Xs, Y)
    same = np.all(np.isclose(ours.deltas_, ref.deltas_, rtol=1e-9, atol=1e-12), axis=0)
    assert same.mean() >= 0.99
    # himalaya adds 1e-10 * log(alpha) to break ties toward large alphas
    np.testing.assert_allclose(ours.cv_scores_, ref.cv_scores_, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.best_alphas_, ref.best_alphas_, rtol=1e-9)
    X_test = [rng.standard_normal((30, X.shape[1])) for X in Xs]
    np.testing.assert_allclose(ours.predict(X_test), ref.predict(X_test), rtol=1e-7, atol=1e-8)


def test_float32_default_selects_like_himalaya(rng):
    Xs, Y = _two_band_data(rng)
    gammas = generate_band_weights(12, 2, random_state=1)
    ref = _himalaya_banded(Xs, Y, gammas, fit_intercept=True)
    ours = BandedRidgeCV(alphas=ALPHAS, n_iter=gammas, cv=KFold(5), device="cpu").fit(Xs, Y)
    assert ours.coef_.dtype == np.float32
    same = np.all(np.isclose(ours.deltas_, ref.deltas_, rtol=1e-5), axis=0)
    assert same.mean() >= 0.95
    pred, ref_pred = ours.predict(Xs), ref.predict(Xs)
    assert np.corrcoef(pred.ravel(), ref_pred.ravel())[0, 1] > 0.9999


def test_split_scores_equal_himalaya_r2_score_split(rng):
    from himalaya.scoring import r2_score_split as himalaya_r2_score_split

    Xs, Y = _two_band_data(rng)
    Xs = [X - X.mean(0) for X in Xs]
    Y = Y - Y.mean(0)
    gammas = generate_band_weights(8, 2, random_state=0)
    train, test = slice(0, 180), slice(180, None)
    ref = _himalaya_banded([X[train] for X in Xs], Y[train], gammas, fit_intercept=False)
    ours = BandedRidgeCV(alphas=ALPHAS, n_iter=gammas, dtype="float64", device="cpu", fit_intercept=False)
    ours.fit([X[train] for X in Xs], Y[train])
    X_test, Y_test = [X[test] for X in Xs], Y[test] - Y[test].mean(0)
    split = ours.predict(X_test, split=True)
    np.testing.assert_allclose(split, ref.predict(X_test, split=True), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(split.sum(0), ours.predict(X_test), rtol=1e-10, atol=1e-12)
    scores = ours.score(X_test, Y_test, split=True)
    np.testing.assert_allclose(scores, himalaya_r2_score_split(Y_test, split), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(scores, ref.score(X_test, Y_test, split=True), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(scores.sum(0), ours.score(X_test, Y_test), rtol=1e-8, atol=1e-10)
    partial = r2_score_split(Y_test, split, include_correlation=False)
    np.testing.assert_allclose(partial, himalaya_r2_score_split(Y_test, split, include_correlation=False), atol=1e-12)


def test_split_with_intercept_sums_to_prediction(rng):
    Xs, Y = _two_band_data(rng, n_targets=10)
    model = BandedRidgeCV(alphas=ALPHAS, n_iter=6, random_state=0, device="cpu", dtype="float64").fit(Xs, Y)
    split = model.predict(Xs, split=True)
    assert split.shape == (2, 240, 10)
    np.testing.assert_allclose(split.sum(0), model.predict(Xs), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(model.y_offset_, Y.mean(0), rtol=1e-10)
    shares = model.score(Xs, Y, split=True)
    np.testing.assert_allclose(shares.sum(0), model.score(Xs, Y), rtol=1e-8, atol=1e-10)


def test_planted_band_gets_the_weight(rng):
    n = 300
    XA, XB = rng.standard_normal((n, 10)), rng.standard_normal((n, 30))
    y_a = XA @ rng.standard_normal((10, 5)) + 0.5 * rng.standard_normal((n, 5))  # driven by A only
    y_b = XB @ rng.standard_normal((30, 5)) + 0.5 * rng.standard_normal((n, 5))  # driven by B only
    model = BandedRidgeCV(alphas=np.logspace(-3, 5, 9), n_iter=30, random_state=0, device="cpu")
    model.fit([XA, XB], np.hstack([y_a, y_b]))
    assert np.all(model.best_gammas_[0, :5] > 10 * model.best_gammas_[1, :5])
    assert np.all(model.best_gammas_[1, 5:] > 10 * model.best_gammas_[0, 5:])
    assert np.all(model.deltas_[0, :5] > model.deltas_[1, :5] + 2)


def test_dual_form_matches_primal_and_himalaya_multiple_kernel_ridge(rng):
    """Fewer samples than features: per-band kernels combined per candidate give the same model."""
    from himalaya.backend import set_backend
    from himalaya.kernel_ridge import MultipleKernelRidgeCV
    from himalaya.scoring import r2_score

    Xs, Y = _two_band_data(rng, n_samples=60, sizes=(40, 50), n_targets=30, noise=1.0)
    gammas = generate_band_weights(8, 2, random_state=2)
    kwargs = dict(alphas=ALPHAS, n_iter=gammas, device="cpu", dtype="float64")
    dual = BandedRidgeCV(method="dual", **kwargs).fit(Xs, Y)
    primal = BandedRidgeCV(method="primal", **kwargs).fit(Xs, Y)
    assert dual.method_ == "dual" and BandedRidgeCV(**kwargs).fit(Xs, Y).method_ == "dual"
    np.testing.assert_allclose(dual.cv_scores_, primal.cv_scores_, atol=1e-9)
    np.testing.assert_array_equal(dual.deltas_, primal.deltas_)
    np.testing.assert_allclose(dual.coef_, primal.coef_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(dual.intercept_, primal.intercept_, rtol=1e-6, atol=1e-9)

    set_backend("numpy", on_error="raise")
    Xc = [X - X.mean(0) for X in Xs]
    ref = MultipleKernelRidgeCV(
        kernels="precomputed",
        solver_params=dict(n_iter=gammas, alphas=ALPHAS, score_func=r2_score, progress_bar=False),
        cv=KFold(5),
        fit_intercept=True,
    ).fit(np.stack([X @ X.T for X in Xc]), Y)
    same = np.all(np.isclose(dual.deltas_, ref.deltas_, rtol=1e-6), axis=0)
    assert same.mean() >= 0.99


def test_leave_one_out_and_delayed_bands_in_a_pipeline(rng):
    from sklearn.pipeline import make_pipeline

    from neurodec.ridge.delays import Delayer

    n = 400
    X = rng.standard_normal((n, 4))
    delays = [0, 1, 2]
    Xd = Delayer(delays=delays).fit_transform(X)
    # targets follow the first two features' receptive field only: band 0 = features 0-1 (6 delayed columns)
    Y = Xd[:, :6] @ rng.standard_normal((6, 4)) + 0.3 * rng.standard_normal((n, 4))
    pipe = make_pipeline(
        Delayer(delays=delays),
        BandedRidgeCV(groups=[slice(0, 6), slice(6, 12)], alphas=np.logspace(-2, 4, 7), n_iter=20,
                      random_state=0, cv="loo", device="cpu"),
    ).fit(X, Y)
    model = pipe[-1]
    assert np.all(model.best_gammas_[0] > 10 * model.best_gammas_[1])
    assert np.all(model.score(Xd, Y) > 0.9)


def test_group_forms_agree(rng):
    Xs, Y = _two_band_data(rng, n_targets=8)
    kwargs = dict(alphas=ALPHAS, n_iter=5, random_state=0, device="cpu", dtype="float64")
    listed = BandedRidgeCV(**kwargs).fit(Xs, Y)
    X = np.hstack(Xs)
    by_slice = BandedRidgeCV(groups=[slice(0, 12), slice(12, 32)], **kwargs).fit(X, Y)
    np.testing.assert_allclose(by_slice.coef_, listed.coef_, rtol=1e-10, atol=1e-12)
    # interleaved columns: labels per column and index arrays give the same model, in X's column order
    perm = rng.permutation(32)
    labels = np.r_[np.zeros(12, int), np.ones(20, int)][perm]
    by_label = BandedRidgeCV(groups=labels.tolist(), **kwargs).fit(X[:, perm], Y)
    np.testing.assert_allclose(by_label.coef_, listed.coef_[perm], rtol=1e-10, atol=1e-12)
    by_index = BandedRidgeCV(groups=[np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)], **kwargs)
    np.testing.assert_allclose(by_index.fit(X[:, perm], Y).coef_, listed.coef_[perm], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(by_label.predict(X[:, perm]), listed.predict(Xs), rtol=1e-10)


def test_one_band_is_ridge_cv(rng):
    from neurodec.ridge import RidgeCV

    X, Y = np.hstack(_two_band_data(rng, n_targets=10)[0]), _two_band_data(rng, n_targets=10)[1]
    banded = BandedRidgeCV(alphas=ALPHAS, n_iter=3, device="cpu", dtype="float64").fit(X, Y)
    ridge = RidgeCV(alphas=ALPHAS, device="cpu", dtype="float64", warn_alpha_edge=False).fit(X, Y)
    np.testing.assert_allclose(banded.cv_scores_, np.broadcast_to(ridge.cv_scores_.max(0), (3, 10)), atol=1e-12)
    np.testing.assert_array_equal(banded.best_alphas_, ridge.best_alphas_)
    np.testing.assert_allclose(banded.coef_, ridge.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(banded.intercept_, ridge.intercept_, rtol=1e-9)


def test_scikit_learn_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(BandedRidgeCV(n_iter=2, cv=2, device="cpu"), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:300]) for r in results if r["status"] == "failed"]
    assert failed == []


def test_streamed_targets_in_batches(rng, tmp_path):
    Xs, Y = _two_band_data(rng, n_targets=25)
    mm = np.lib.format.open_memmap(tmp_path / "y.npy", mode="w+", dtype=np.float64, shape=Y.shape)
    mm[:] = Y
    mm.flush()
    kwargs = dict(alphas=ALPHAS, n_iter=5, random_state=0, device="cpu", dtype="float64")
    streamed = BandedRidgeCV(n_targets_batch=7, **kwargs).fit(Xs, np.load(tmp_path / "y.npy", mmap_mode="r"))
    whole = BandedRidgeCV(**kwargs).fit(Xs, Y)
    np.testing.assert_allclose(streamed.coef_, whole.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(streamed.cv_scores_, whole.cv_scores_, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(streamed.deltas_, whole.deltas_)


def test_single_target_shapes(rng):
    Xs, Y = _two_band_data(rng, n_targets=1)
    model = BandedRidgeCV(alphas=ALPHAS, n_iter=4, random_state=0, device="cpu").fit(Xs, Y[:, 0])
    assert model.coef_.shape == (32,) and model.deltas_.shape == (2,) and np.ndim(model.best_alphas_) == 0
    assert model.predict(Xs).shape == (240,) and model.predict(Xs, split=True).shape == (2, 240)
    assert model.score(Xs, Y[:, 0], split=True).shape == (2,)


def test_bad_input_errors(rng):
    X, Y = rng.standard_normal((20, 5)), rng.standard_normal((20, 2))
    with pytest.raises(ValueError, match="not both"):
        BandedRidgeCV(groups=[slice(0, 2), slice(2, 5)]).fit([X[:, :2], X[:, 2:]], Y)
    with pytest.raises(ValueError, match="exactly one band"):
        BandedRidgeCV(groups=[slice(0, 2), slice(1, 5)]).fit(X, Y)
    with pytest.raises(ValueError, match="one integer band label per column"):
        BandedRidgeCV(groups=[0, 0, 1, 1]).fit(X, Y)
    with pytest.raises(ValueError, match="shape \\(n_candidates, 2\\)"):
        BandedRidgeCV(groups=[slice(0, 2), slice(2, 5)], n_iter=np.ones((3, 3))).fit(X, Y)
    with pytest.raises(ValueError, match="'score_func'"):
        BandedRidgeCV(groups=[slice(0, 2), slice(2, 5)], score_func="l2").fit(X, Y)
    with pytest.raises(ValueError, match="same number of rows"):
        BandedRidgeCV().fit([X, X[:10]], Y)
    model = BandedRidgeCV(groups=[slice(0, 2), slice(2, 5)], n_iter=2, device="cpu").fit(X, Y)
    with pytest.raises(ValueError, match="expecting 5 features"):
        model.predict(X[:, :4])


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["primal", "dual"])
def test_cuda_matches_cpu(rng, method):
    Xs, Y = _two_band_data(rng, n_targets=200)
    kwargs = dict(alphas=ALPHAS, n_iter=8, random_state=0, method=method, dtype="float64")
    cpu = BandedRidgeCV(device="cpu", **kwargs).fit(Xs, Y)
    gpu = BandedRidgeCV(device="cuda", **kwargs).fit(Xs, Y)
    np.testing.assert_allclose(gpu.cv_scores_, cpu.cv_scores_, atol=1e-9)
    assert np.all(np.isclose(gpu.deltas_, cpu.deltas_), axis=0).mean() >= 0.99
    np.testing.assert_allclose(gpu.predict(Xs), cpu.predict(Xs), atol=1e-6 * Y.std())
