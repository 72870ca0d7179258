"""RidgeCV and KernelRidgeCV: reference agreement, input kinds, shapes and errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

from neurodec.ridge import BlockedKFold, KernelRidgeCV, RidgeCV

from .conftest import make_encoding_data

ALPHAS = np.logspace(-2, 5, 8)


def test_ridgecv_matches_himalaya_torch_and_predicts_like_ridge(rng):
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV as HimalayaRidgeCV
    from himalaya.scoring import r2_score as himalaya_r2

    X, Y, _ = make_encoding_data(rng, 300, 20, 300)
    X_test, Y_test, _ = make_encoding_data(np.random.default_rng(1), 80, 20, 300)
    backend = set_backend("torch")
    try:
        ref = HimalayaRidgeCV(alphas=ALPHAS, cv=5, fit_intercept=True, solver_params={"score_func": himalaya_r2})
        ref.fit(X.astype(np.float32), Y.astype(np.float32))
        ref_alphas = backend.to_numpy(ref.best_alphas_)
    finally:
        set_backend("numpy")
    model = RidgeCV(ALPHAS, cv=5, warn_alpha_edge=False).fit(X, Y)
    assert np.isclose(model.best_alphas_, ref_alphas, rtol=1e-4).mean() >= 0.999
    assert model.coef_.shape == (20, 300) and model.cv_scores_.shape == (8, 300) and model.n_features_in_ == 20
    pred = model.predict(X_test)
    for alpha in np.unique(model.best_alphas_):
        cols = model.best_alphas_ == alpha
        ref_pred = Ridge(alpha=alpha).fit(X, Y[:, cols]).predict(X_test).reshape(len(X_test), -1)
        assert np.all(np.abs(pred[:, cols] - ref_pred).max(0) <= 1e-4 * Y_test[:, cols].std(0))
    np.testing.assert_allclose(model.score(X_test, Y_test), r2_score(Y_test, pred), rtol=1e-10)
    r = model.score_targets(X_test, Y_test, metric="pearson")
    np.testing.assert_allclose(r[:3], [np.corrcoef(pred[:, j], Y_test[:, j])[0, 1] for j in range(3)], atol=1e-10)


@pytest.mark.parametrize(
    ("kernel", "params"),
    [("linear", None), ("rbf", {"gamma": 0.2}), ("poly", {"degree": 2}), ("cosine", None)],
)
def test_kernel_ridgecv_matches_sklearn_kernel_ridge(rng, kernel, params):
    X, Y, _ = make_encoding_data(rng, 80, 6, 4, offset=0.5)
    X_test = X[:10] + 0.1
    model = KernelRidgeCV(ALPHAS, kernel=kernel, kernel_params=params, cv=4, fit_intercept=False,
                          dtype="float64", warn_alpha_edge=False).fit(X, Y)
    for j, alpha in enumerate(model.best_alphas_):
        ref = KernelRidge(alpha=alpha, kernel=kernel, **(params or {})).fit(X, Y[:, j])
        np.testing.assert_allclose(model.dual_coef_[:, j], ref.dual_coef_, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(model.predict(X_test)[:, j], ref.predict(X_test), rtol=1e-6, atol=1e-8)


def test_kernel_ridgecv_linear_with_intercept_equals_ridgecv(rng):
    X, Y, _ = make_encoding_data(rng, 60, 5, 7)
    kr = KernelRidgeCV(ALPHAS, cv=3, dtype="float64", warn_alpha_edge=False).fit(X, Y)
    rc = RidgeCV(ALPHAS, cv=3, dtype="float64", warn_alpha_edge=False).fit(X, Y)
    np.testing.assert_array_equal(kr.best_alphas_, rc.best_alphas_)
    np.testing.assert_allclose(kr.predict(X + 1), rc.predict(X + 1), rtol=1e-8)

    def my_linear(A, B):
        return A @ B.T

    custom = KernelRidgeCV(ALPHAS, kernel=my_linear, cv=3, dtype="float64", warn_alpha_edge=False).fit(X, Y)
    np.testing.assert_allclose(custom.predict(X), kr.predict(X), rtol=1e-10)


def test_one_target_returns_sklearn_shapes(rng):
    X, Y, _ = make_encoding_data(rng, 50, 4, 1)
    model = RidgeCV(ALPHAS, warn_alpha_edge=False).fit(X, Y[:, 0])
    assert model.coef_.shape == (4,) and isinstance(model.intercept_, float) and isinstance(model.best_alphas_, float)
    assert model.cv_scores_.shape == (8,) and model.predict(X).shape == (50,)
    ref = Ridge(alpha=model.best_alphas_).fit(X, Y[:, 0])
    np.testing.assert_allclose(model.predict(X), ref.predict(X), rtol=1e-4, atol=1e-4 * np.abs(Y).max())


def test_torch_input_returns_torch(rng):
    X, Y, _ = make_encoding_data(rng, 50, 4, 3)
    model = RidgeCV(ALPHAS, warn_alpha_edge=False).fit(torch.from_numpy(X), torch.from_numpy(Y))
    ref = RidgeCV(ALPHAS, warn_alpha_edge=False).fit(X, Y)
    assert isinstance(model.coef_, torch.Tensor) and isinstance(model.predict(torch.from_numpy(X)), torch.Tensor)
    np.testing.assert_allclose(model.coef_.numpy(), ref.coef_)
    assert isinstance(model.score_targets(torch.from_numpy(X), torch.from_numpy(Y)), torch.Tensor)


def test_float16_input_is_upcast(rng):
    X, Y, _ = make_encoding_data(rng, 60, 4, 3)
    X16, Y16 = X.astype(np.float16), Y.astype(np.float16)
    model = RidgeCV(ALPHAS, warn_alpha_edge=False).fit(X16, Y16)
    ref = RidgeCV(ALPHAS, warn_alpha_edge=False).fit(X16.astype(np.float64), Y16.astype(np.float64))
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=1e-5, atol=1e-5 * np.abs(ref.coef_).max())
    torch_model = RidgeCV(ALPHAS, warn_alpha_edge=False).fit(torch.from_numpy(X16), torch.from_numpy(Y16))
    np.testing.assert_allclose(torch_model.coef_.numpy(), ref.coef_, rtol=1e-4, atol=1e-6)


def test_constant_targets_score_zero_in_the_search_and_nan_when_reported(rng):
    from neurodec.encoding import pearson_r, r2_score as encoding_r2

    X, Y, _ = make_encoding_data(rng, 50, 4, 3)
    Y[:, 1] = 7.0
    model = RidgeCV(ALPHAS, warn_alpha_edge=False).fit(X, Y)
    assert np.all(model.cv_scores_[:, 1] == 0) and np.all(model.cv_scores_[:, [0, 2]] != 0)
    np.testing.assert_allclose(model.predict(X)[:, 1], 7.0, rtol=1e-6)
    # One convention for reported scores across the library: undefined is NaN.
    for metric, reference in (("r2", encoding_r2), ("pearson", pearson_r)):
        reported = model.score_targets(X, Y, metric=metric)
        np.testing.assert_allclose(reported, reference(Y, model.predict(X)), rtol=1e-12, atol=1e-12, equal_nan=True)
        assert np.isnan(reported[1]) and np.isfinite(reported[[0, 2]]).all()
    assert model.score(X, Y) == pytest.approx(np.mean(model.score_targets(X, Y)[[0, 2]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # constant targets never trigger the alpha-edge warning
        RidgeCV(ALPHAS).fit(X, np.full((50, 2), 3.0))


def test_nan_inputs_raise_with_count(rng):
    X, Y, _ = make_encoding_data(rng, 30, 3, 2)
    X[0, 0], X[3, 1] = np.nan, np.inf
    with pytest.raises(ValueError, match="X contains 2 NaN or infinite"):
        RidgeCV().fit(X, Y)
    X[0, 0] = X[3, 1] = 0
    Y[5, 1] = np.nan
    with pytest.raises(ValueError, match="Y contains 1 NaN or infinite"):
        RidgeCV().fit(X, Y)
    with pytest.raises(ValueError, match="Y contains 1 NaN or infinite"):
        RidgeCV().fit(torch.from_numpy(X), torch.from_numpy(Y))


def test_bad_inputs_raise_clear_errors(rng):
    X, Y, _ = make_encoding_data(rng, 30, 3, 2)
    with pytest.raises(ValueError, match="same number of rows.*30 and 29"):
        RidgeCV().fit(X, Y[:29])
    with pytest.raises(ValueError, match="Cannot do 5-fold cross-validation with 4 sample"):
        RidgeCV().fit(X[:4], Y[:4])
    for bad in ([], [1.0, -1.0], [np.nan]):
        with pytest.raises(ValueError, match="'alphas' parameter must be"):
            RidgeCV(alphas=bad).fit(X, Y)
    with pytest.raises(ValueError, match="'cv' parameter"):
        RidgeCV(cv="kfold").fit(X, Y)
    with pytest.raises(ValueError, match="'score_func' parameter"):
        RidgeCV(score_func="mse").fit(X, Y)
    with pytest.raises(ValueError, match="X has 2 features, but RidgeCV is expecting 3"):
        RidgeCV(warn_alpha_edge=False).fit(X, Y).predict(X[:, :2])


@pytest.mark.parametrize("estimator", ["RidgeCV", "BandedRidgeCV"])
def test_alpha_edge_warning_counts_predicted_targets(rng, estimator):
    from neurodec.ridge import BandedRidgeCV

    X, Y, _ = make_encoding_data(rng, 100, 5, 6)
    Y[:, :2] = rng.standard_normal((100, 2))  # pure noise: the largest alpha wins, and is not counted
    make = {
        "RidgeCV": lambda **kw: RidgeCV(np.logspace(-2, 1, 4), **kw),
        "BandedRidgeCV": lambda **kw: BandedRidgeCV([slice(0, 2), slice(2, 5)], alphas=np.logspace(-2, 1, 4),
                                                    n_iter=3, random_state=0, **kw),
    }[estimator]
    with pytest.warns(UserWarning, match=rf"{estimator}.fit: (\d+) of the (\d+) targets with a positive") as record:
        model = make().fit(X, Y)
    assert len(record) == 1 and record[0].filename == __file__  # points at the caller's line
    predicted = np.max(model.cv_scores_, axis=0) > 0
    edge = predicted & (np.isclose(model.best_alphas_, 0.01) | np.isclose(model.best_alphas_, 10.0))
    assert edge.sum() > 0
    message = str(record[0].message)
    assert f"{edge.sum()} of the {predicted.sum()} targets" in message and "np.logspace" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make(warn_alpha_edge=False).fit(X, Y)


@pytest.mark.parametrize("cv", [GroupKFold(3), LeaveOneGroupOut(), BlockedKFold(3, gap=5), "loo"])
def test_cv_options_run_and_match_explicit_splits(rng, cv):
    X, Y, _ = make_encoding_data(rng, 60, 4, 3)
    groups = np.repeat(np.arange(4), 15)
    model = RidgeCV(ALPHAS, cv=cv, dtype="float64", warn_alpha_edge=False).fit(X, Y, groups=groups)
    if cv != "loo":
        explicit = list(cv.split(X, Y, groups))
        ref = RidgeCV(ALPHAS, cv=explicit, dtype="float64", warn_alpha_edge=False).fit(X, Y)
        np.testing.assert_array_equal(model.cv_scores_, ref.cv_scores_)
    assert model.cv_scores_.shape == (8, 3)


def test_streamed_targets_memmap_and_hdf5(rng, tmp_path):
    import h5py

    X, Y, _ = make_encoding_data(rng, 60, 4, 20)
    np.save(tmp_path / "Y.npy", Y)
    with h5py.File(tmp_path / "Y.h5", "w") as f:
        f["Y"] = Y
    ref = RidgeCV(ALPHAS, n_targets_batch=6, warn_alpha_edge=False).fit(X, Y)
    with h5py.File(tmp_path / "Y.h5", "r") as f:
        for source in (np.load(tmp_path / "Y.npy", mmap_mode="r"), f["Y"]):
            model = RidgeCV(ALPHAS, n_targets_batch=6, warn_alpha_edge=False).fit(X, source)
            np.testing.assert_array_equal(model.coef_, ref.coef_)
    Y[10, 13] = np.nan
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["Y"] = Y
    with h5py.File(tmp_path / "bad.h5", "r") as f, pytest.raises(ValueError, match="Y contains 1 NaN.*targets 12:18"):
        RidgeCV(ALPHAS, n_targets_batch=6).fit(X, f["Y"])


class _ZarrLike:
    """A lazily sliced array with only ``shape``, ``dtype`` and ``__getitem__`` (like zarr.Array)."""

    def __init__(self, data):
        self._data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, []

    def __getitem__(self, key):
        self.reads.append(key)
        return self._data[key].copy()


def test_duck_typed_targets_are_streamed_in_batches(rng):
    X, Y, _ = make_encoding_data(rng, 60, 4, 20)
    lazy = _ZarrLike(Y)
    model = RidgeCV(ALPHAS, n_targets_batch=8, warn_alpha_edge=False).fit(X, lazy)
    assert [key[1] for key in lazy.reads] == [slice(0, 8), slice(8, 16), slice(16, 20)]
    np.testing.assert_array_equal(model.coef_, RidgeCV(ALPHAS, n_targets_batch=8, warn_alpha_edge=False).fit(X, Y).coef_)
