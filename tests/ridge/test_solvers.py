"""The pure solvers against scikit-learn/himalaya references and float64 closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.linear_model import RidgeCV as SkRidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import GroupKFold, KFold

from neurodec.ridge import BlockedKFold, solve_kernel_ridge_cv, solve_ridge_cv
from neurodec.ridge.solvers import _check_tf32

from .conftest import make_encoding_data

ALPHAS = np.logspace(-2, 5, 8)


def _pearson(a, b):
    a, b = a - a.mean(0), b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    return np.where(den > 0, (a * b).sum(0) / np.where(den > 0, den, 1), 0.0)


def reference_cv_scores(X, Y, alphas, splits, score="r2"):
    """scikit-learn Ridge fitted on each training fold (float64), scored on its validation fold."""
    out = np.zeros((len(alphas), Y.shape[1]))
    for i, alpha in enumerate(alphas):
        for train, val in splits:
            pred = Ridge(alpha=alpha).fit(X[train], Y[train]).predict(X[val])
            s = r2_score(Y[val], pred, multioutput="raw_values") if score == "r2" else _pearson(Y[val], pred)
            out[i] += s / len(splits)
    return out


def reference_fit(X, Y, best_alphas):
    """Float64 closed-form ridge with each target's alpha: coef (p, t), intercept (t,)."""
    coef, intercept = np.zeros((X.shape[1], Y.shape[1])), np.zeros(Y.shape[1])
    for alpha in np.unique(best_alphas):
        cols = np.flatnonzero(best_alphas == alpha)
        model = Ridge(alpha=alpha).fit(X, Y[:, cols])
        coef[:, cols], intercept[cols] = model.coef_.reshape(len(cols), -1).T, model.intercept_
    return coef, intercept


@pytest.mark.parametrize("method", ["primal", "dual"])
@pytest.mark.parametrize("score", ["r2", "pearson"])
@pytest.mark.parametrize("p", [4, 24, 60])  # moments route (p < n_val), predictions route, p > n_train
def test_kfold_scores_match_sklearn_per_fold(rng, method, score, p):
    X, Y, _ = make_encoding_data(rng, 150, p, 12)
    splits = list(KFold(5).split(X))
    res = solve_ridge_cv(torch.from_numpy(X), Y, ALPHAS, splits, device="cpu", dtype=torch.float64, method=method, score=score)
    ref = reference_cv_scores(X, Y, ALPHAS, splits, score)
    np.testing.assert_allclose(res.cv_scores.numpy(), ref, atol=1e-9)
    np.testing.assert_array_equal(res.best_alphas.numpy(), ALPHAS[ref.argmax(0)])
    coef, intercept = reference_fit(X, Y, res.best_alphas.numpy())
    np.testing.assert_allclose(res.coef.numpy(), coef, rtol=1e-7, atol=1e-9 * np.abs(coef).max())
    np.testing.assert_allclose(res.intercept.numpy(), intercept, rtol=1e-7)
    assert res.method == method


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_kfold_matches_himalaya(rng, backend):
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV as HimalayaRidgeCV
    from himalaya.scoring import r2_score as himalaya_r2

    backend_to_numpy = set_backend(backend).to_numpy
    try:
        X, Y, _ = make_encoding_data(rng, 300, 30, 400)
        X, Y = X.astype(np.float32), Y.astype(np.float32)
        alphas = np.logspace(-1, 6, 8).astype(np.float32)
        ref = HimalayaRidgeCV(alphas=alphas, cv=KFold(5), fit_intercept=True, solver_params={"score_func": himalaya_r2})
        ref.fit(X, Y)
        ref_alphas, ref_scores, ref_coef = (np.asarray(backend_to_numpy(a)) for a in (ref.best_alphas_, ref.cv_scores_, ref.coef_))
        res = solve_ridge_cv(torch.from_numpy(X), Y, alphas, list(KFold(5).split(X)), device="cpu")
    finally:
        set_backend("numpy")
    same = np.isclose(res.best_alphas.numpy(), ref_alphas, rtol=1e-4)
    assert same.mean() >= 0.999
    np.testing.assert_allclose(res.cv_scores.numpy().max(0), ref_scores, atol=2e-5)
    np.testing.assert_allclose(res.coef.numpy(), ref_coef, atol=2e-4 * np.abs(ref_coef).max())


def test_float32_predictions_and_correlations_match_float64_reference(rng):
    X, Y, _ = make_encoding_data(rng, 400, 40, 200)
    X_test, Y_test, _ = make_encoding_data(np.random.default_rng(1), 100, 40, 200)
    res = solve_ridge_cv(torch.from_numpy(X), Y, ALPHAS, list(KFold(5).split(X)), device="cpu")
    ref64 = solve_ridge_cv(torch.from_numpy(X), Y, ALPHAS, list(KFold(5).split(X)), device="cpu", dtype=torch.float64)
    assert np.mean(res.best_alphas.numpy() == ref64.best_alphas.numpy()) >= 0.999
    coef, intercept = reference_fit(X, Y, res.best_alphas.numpy())
    pred = X_test @ res.coef.numpy().astype(np.float64) + res.intercept.numpy()
    ref = X_test @ coef + intercept
    assert np.all(np.abs(pred - ref).max(0) <= 1e-4 * Y_test.std(0))
    np.testing.assert_allclose(_pearson(pred, Y_test), _pearson(ref, Y_test), atol=1e-4)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("method", ["primal", "dual"])
def test_loo_matches_sklearn_gcv(rng, method, fit_intercept):
    X, Y, _ = make_encoding_data(rng, 120, 20 if method == "primal" else 200, 30)
    ref = SkRidgeCV(alphas=ALPHAS, alpha_per_target=True, fit_intercept=fit_intercept).fit(X, Y)
    res = solve_ridge_cv(torch.from_numpy(X), Y, ALPHAS, "loo", device="cpu", dtype=torch.float64, method=method,
                         fit_intercept=fit_intercept)
    np.testing.assert_array_equal(res.best_alphas.numpy(), ref.alpha_)
    np.testing.assert_allclose(res.coef.numpy(), ref.coef_.T, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res.intercept.numpy(), ref.intercept_, rtol=1e-6)
    # The LOO score is exact: compare with explicit leave-one-out refits for one alpha.
    loo_pred = np.array([Ridge(alpha=ALPHAS[3], fit_intercept=fit_intercept).fit(np.delete(X, i, 0), np.delete(Y, i, 0)).predict(X[i : i + 1])[0]
                         for i in range(len(X))])
    np.testing.assert_allclose(res.cv_scores.numpy()[3], r2_score(Y, loo_pred, multioutput="raw_values"), atol=1e-8)


def test_auto_picks_dual_when_features_outnumber_samples(rng):
    X, Y, _ = make_encoding_data(rng, 60, 200, 10)
    splits = list(KFold(4).split(X))
    auto = solve_ridge_cv(torch.from_numpy(X), Y, ALPHAS, splits, device="cpu", dtype=torch.float64)
    primal = solve_ridge_cv(torch.from_numpy(X), Y, ALPHAS, splits, device="cpu", dtype=torch.float64, method="primal")
    assert auto.method == "dual"
    np.testing.assert_allclose(auto.cv_scores.numpy(), primal.cv_scores.numpy(), atol=1e-8)
    np.testing.assert_allclose(auto.coef.numpy(), primal.coef.numpy(), rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("cv", [BlockedKFold(4, gap=7), GroupKFold(3)])
def test_non_complementary_and_grouped_splits(rng, cv):
    X, Y, _ = make_encoding_data(rng, 120, 10, 8)
    groups = np.repeat(np.arange(12), 10)
    splits = list(cv.split(X, Y, groups))
    res = solve_ridge_cv(torch.from_numpy(X), Y, ALPHAS, splits, device="cpu", dtype=torch.float64)
    np.testing.assert_allclose(res.cv_scores.numpy(), reference_cv_scores(X, Y, ALPHAS, splits), atol=1e-9)


def test_rank_deficient_features(rng):
    X, Y, _ = make_encoding_data(rng, 100, 8, 5)
    X = np.hstack([X, X[:, :3], X[:, :1] * 2])  # 12 columns, rank 8
    res = solve_ridge_cv(torch.from_numpy(X), Y, ALPHAS, list(KFold(5).split(X)), device="cpu", dtype=torch.float64)
    coef, intercept = reference_fit(X, Y, res.best_alphas.numpy())
    np.testing.assert_allclose(X @ res.coef.numpy() + res.intercept.numpy(), X @ coef + intercept, rtol=1e-6,
                               atol=1e-9 * np.abs(Y).max())


def test_batched_equals_unbatched_and_oom_halves(rng):
    X, Y, _ = make_encoding_data(rng, 100, 10, 50)
    splits = list(KFold(5).split(X))
    full = solve_ridge_cv(torch.from_numpy(X), Y, ALPHAS, splits, device="cpu", n_targets_batch=50)
    sizes = []

    def fake_oom(size):
        sizes.append(size)
        if size > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    small = solve_ridge_cv(torch.from_numpy(X), Y, ALPHAS, splits, device="cpu", n_targets_batch=50, batch_hook=fake_oom)
    assert sizes[:4] == [50, 25, 12, 6] and small.n_targets_batch == 6
    for a, b in [(full.cv_scores, small.cv_scores), (full.coef, small.coef), (full.intercept, small.intercept)]:
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(full.best_alphas.numpy(), small.best_alphas.numpy())

    def other_error(size):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        solve_ridge_cv(torch.from_numpy(X), Y, ALPHAS, splits, device="cpu", batch_hook=other_error)


def test_streamed_targets_equal_in_memory(rng, tmp_path):
    import h5py

    X, Y, _ = make_encoding_data(rng, 80, 6, 30)
    Y = Y.astype(np.float32)
    np.save(tmp_path / "Y.npy", Y)
    with h5py.File(tmp_path / "Y.h5", "w") as f:
        f["Y"] = Y
    splits = list(KFold(4).split(X))
    ref = solve_ridge_cv(torch.from_numpy(X), torch.from_numpy(Y), ALPHAS, splits, device="cpu", n_targets_batch=7)
    memmap = np.load(tmp_path / "Y.npy", mmap_mode="r")
    with h5py.File(tmp_path / "Y.h5", "r") as f:
        for source in (memmap, f["Y"]):
            res = solve_ridge_cv(torch.from_numpy(X), source, ALPHAS, splits, device="cpu", n_targets_batch=7)
            np.testing.assert_array_equal(res.coef.numpy(), ref.coef.numpy())
            np.testing.assert_array_equal(res.cv_scores.numpy(), ref.cv_scores.numpy())


def test_kernel_solver_matches_sklearn_kernel_ridge(rng):
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.metrics.pairwise import rbf_kernel

    X, Y, _ = make_encoding_data(rng, 90, 5, 6, offset=0.0)
    K = rbf_kernel(X, gamma=0.3)
    res = solve_kernel_ridge_cv(torch.from_numpy(K), Y, ALPHAS, list(KFold(3).split(X)), device="cpu",
                                dtype=torch.float64, fit_intercept=False)
    for j, alpha in enumerate(res.best_alphas.numpy()):
        ref = KernelRidge(alpha=alpha, kernel="rbf", gamma=0.3).fit(X, Y[:, j])
        np.testing.assert_allclose(res.dual_coef.numpy()[:, j], ref.dual_coef_, rtol=1e-6, atol=1e-9)
    assert np.all(res.intercept.numpy() == 0)


@pytest.mark.parametrize("method", ["primal", "dual"])
def test_no_search_refits_the_one_alpha(rng, method):
    # splits=None: no cross-validation, every target takes the one alpha; float64 equals scikit-learn's Ridge.
    X, Y, _ = make_encoding_data(rng, 80, 30, 7)
    res = solve_ridge_cv(torch.from_numpy(X), Y, [20.0], None, device="cpu", dtype=torch.float64, method=method)
    assert res.cv_scores is None and res.method == method and np.all(res.best_alphas.numpy() == 20.0)
    coef, intercept = reference_fit(X, Y, np.full(Y.shape[1], 20.0))
    np.testing.assert_allclose(res.coef.numpy(), coef, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(res.intercept.numpy(), intercept, rtol=1e-8, atol=1e-10)
    K = torch.from_numpy(X - X.mean(0)) @ torch.from_numpy(X - X.mean(0)).T
    kernel = solve_kernel_ridge_cv(K, Y, [20.0], None, device="cpu", dtype=torch.float64)
    assert kernel.cv_scores is None
    np.testing.assert_allclose(kernel.dual_coef.numpy().T @ (X - X.mean(0)), coef.T, rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match=r"splits=None.*give one alpha\. Got 2"):
        solve_ridge_cv(torch.from_numpy(X), Y, [1.0, 2.0], None, device="cpu")


def test_tf32_check_warns_when_results_move(rng):
    Yb = torch.from_numpy(rng.standard_normal((10, 5)))
    scores, w = torch.zeros(3, 5, dtype=torch.float64), torch.ones(4, 5, dtype=torch.float64)

    def solve_batch(Y):  # what a float32 re-solve returns: scores moved by 1e-2
        return torch.full((3, Y.shape[1]), 1e-2, dtype=torch.float64), torch.ones(4, Y.shape[1]), None

    with pytest.warns(UserWarning, match="TF32 changed the ridge results"):
        _check_tf32(solve_batch, Yb, scores, w)


def test_batch_size_follows_memory_budget():
    from neurodec.ridge._batching import choose_n_targets_batch

    cpu = torch.device("cpu")
    assert choose_n_targets_batch(1000, 1, device=cpu) == 1000
    assert choose_n_targets_batch(1000, 2**40, device=cpu) == 1
    assert 1 < choose_n_targets_batch(10**6, 2**20, device=cpu) <= 2**30 // 2**20 * 2
