"""The dual route keeps float32 accuracy on rank-deficient kernels (p < n_train), as CUDA will compute it.

CPU and CUDA run the same code with the same dtype policy (float64 kernel and
decompositions, numerically null directions dropped, float32 products), so a
float32 CPU fit that matches the float64 reference within float32 error is
what the CUDA fit is held to in tests/ridge/test_gpu.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from float32_tolerance import float32_atol
from sklearn.model_selection import KFold

from neurodec.ridge import solve_kernel_ridge_cv, solve_ridge_cv
from neurodec.ridge._dual import DualPlan

from .conftest import make_encoding_data
from .test_host_blas import force_branch

ALPHAS = np.logspace(-2, 5, 8)


@pytest.mark.parametrize("cv", [5, "loo"])
def test_dual_float32_matches_float64_reference_on_rank_deficient_kernel(rng, cv):
    n, p = 300, 40  # kernel of rank 40 among 240-300 training samples
    X, Y, _ = make_encoding_data(rng, n, p, 60)
    splits = "loo" if cv == "loo" else list(KFold(cv).split(X))
    res = solve_ridge_cv(torch.from_numpy(X), Y, ALPHAS, splits, device="cpu", method="dual")
    primal = solve_ridge_cv(torch.from_numpy(X), Y, ALPHAS, splits, device="cpu", method="primal",
                            dtype=torch.float64)
    np.testing.assert_array_equal(res.best_alphas.numpy(), primal.best_alphas.numpy())
    pred = X @ res.coef.numpy().astype(np.float64) + res.intercept.numpy()
    for alpha in np.unique(res.best_alphas.numpy()):
        cols = res.best_alphas.numpy() == alpha
        ref = Ridge(alpha=alpha).fit(X, Y[:, cols]).predict(X).reshape(n, -1)
        # Products sum over at most n terms of the targets' scale: the float32 bound of the primal route.
        atol = float32_atol(n, Y[:, cols].std(0))
        assert np.all(np.abs(pred[:, cols] - ref).max(0) <= atol)


def test_null_directions_are_dropped_only_when_asked(rng):
    X, _, _ = make_encoding_data(rng, 50, 7, 1)
    Xc = torch.from_numpy(X - X.mean(0))
    K = Xc @ Xc.T
    alphas = torch.as_tensor(ALPHAS)
    truncated = DualPlan(K, "loo", alphas=alphas, fit_intercept=True, dtype=torch.float64, truncate=True)
    full = DualPlan(K, "loo", alphas=alphas, fit_intercept=True, dtype=torch.float64)
    assert truncated.U.shape == (50, 7) and full.U.shape == (50, 50)
    # Same leave-one-out scores either way: the dropped directions carry nothing.
    Y = torch.from_numpy(rng.standard_normal((50, 3)))
    torch.testing.assert_close(truncated.cv_scores(Y, "r2"), full.cv_scores(Y, "r2"))


def test_refit_through_alpha_maps_equals_rotation_and_float64(rng):
    # 200 targets share an alpha: its n x n map is built (200 >= 2 x rank 60); 5 targets go through the rotation.
    n, p, t, alpha = 60, 150, 200, 3.0
    X, _, _ = make_encoding_data(rng, n, p, 1)
    Y = rng.standard_normal((n, t)) * rng.uniform(0.5, 2.0, t)
    K = torch.from_numpy(X @ X.T)
    plan = DualPlan(K, [(np.arange(40), np.arange(40, 60))], alphas=torch.tensor([alpha]), fit_intercept=True,
                    dtype=torch.float32)
    Yt = torch.from_numpy(Y).float()
    via_map, _ = plan.refit(Yt, torch.full((t,), alpha, dtype=torch.float64))
    assert list(plan._refit_maps) == [alpha]
    plan._refit_maps.clear()
    via_rotation, _ = plan.refit(Yt[:, :5], torch.full((5,), alpha, dtype=torch.float64))
    assert not plan._refit_maps
    # float64 reference: the centred kernel ridge solution, projected to zero sum
    Kc = K.numpy() - K.numpy().mean(0) - K.numpy().mean(1)[:, None] + K.numpy().mean()
    ref = np.linalg.solve(Kc + alpha * np.eye(n), Y - Y.mean(0))
    ref -= ref.mean(0)
    # sums of n products of terms up to |y| / alpha, twice (the map, then its product)
    atol = float32_atol(2 * n, float(np.abs(Y).max()) / alpha)
    np.testing.assert_allclose(via_map.numpy(), ref, rtol=0, atol=atol)
    np.testing.assert_allclose(via_rotation.numpy(), ref[:, :5], rtol=0, atol=atol)


def test_refit_maps_stay_within_their_memory_share(rng, monkeypatch):
    # Two alphas chosen by enough targets for a map each; a memory share with room for one map builds the
    # map of the alpha most targets chose, the other alpha's targets go through the rotation: same results.
    import neurodec.ridge._dual as dual

    n, p = 60, 150
    X, _, _ = make_encoding_data(rng, n, p, 1)
    Y = torch.from_numpy(rng.standard_normal((n, 300))).float()
    best = torch.tensor([1.0] * 180 + [10.0] * 120, dtype=torch.float64)[torch.randperm(300)]

    def refit(share_in_maps):
        map_bytes = n * n * 4
        monkeypatch.setattr(dual, "total_bytes", lambda device: int(share_in_maps * map_bytes / dual.REFIT_MAP_MEMORY_FRACTION))
        plan = DualPlan(torch.from_numpy(X @ X.T), [(np.arange(40), np.arange(40, 60))],
                        alphas=torch.tensor([1.0, 10.0]), fit_intercept=True, dtype=torch.float32)
        return plan.refit(Y, best)[0], sorted(plan._refit_maps)

    unlimited, maps = refit(10)
    assert maps == [1.0, 10.0]
    one, maps = refit(1)
    assert maps == [1.0]  # 180 targets chose alpha 1, 120 alpha 10
    none, maps = refit(0.5)
    assert maps == []
    # sums of n products of terms up to |y| / alpha, twice (map or rotation)
    atol = float32_atol(2 * n, float(Y.abs().max()) / 1.0)
    torch.testing.assert_close(one, unlimited, rtol=0, atol=atol)
    torch.testing.assert_close(none, unlimited, rtol=0, atol=atol)


@pytest.mark.parametrize("branch", ["numpy", "torch"])
@pytest.mark.parametrize("score", ["r2", "pearson"])
def test_targets_far_from_zero_lose_nothing_to_float32(rng, monkeypatch, score, branch):
    # Targets whose mean is 1000 standard deviations: the dual solver shifts them by a sample (exact in
    # float32) before taking float32 means, so only rounding at the targets' spread remains. Reference:
    # the same solver in float64 on the same (float32) values. Centred features keep the kernel's own
    # constant part (which float32 dual coefficients cannot resolve) out of the comparison.
    n, p, t = 90, 150, 12
    X, Y, _ = make_encoding_data(rng, n, p, t, offset=0.0)
    Y = ((Y - Y.mean(0)) / Y.std(0) + 1000.0).astype(np.float32)
    folds = list(KFold(3).split(X))
    K = torch.from_numpy(X @ X.T)
    kw = dict(device="cpu", score=score)
    force_branch(monkeypatch, branch)  # large CPU loops run in numpy, small ones and CUDA in torch
    r32 = solve_kernel_ridge_cv(K, torch.from_numpy(Y), ALPHAS, folds, dtype=torch.float32, **kw)
    r64 = solve_kernel_ridge_cv(K, torch.from_numpy(Y).double(), ALPHAS, folds, dtype=torch.float64, **kw)
    # Unit-scale values through sums of up to n products, twice (the maps, then the scores' sums).
    np.testing.assert_allclose(r32.cv_scores.numpy(), r64.cv_scores.numpy(), rtol=0, atol=float32_atol(4 * n))
    pred32 = K.numpy() @ r32.dual_coef.numpy().astype(np.float64) + r32.intercept.numpy()
    pred64 = K.numpy() @ r64.dual_coef.numpy() + r64.intercept.numpy()
    # Fitted values: unit-scale sums of n products, twice (the refit map, then the kernel), and the
    # intercept (about 1000) stored in float32.
    atol = float32_atol(4 * n) + float32_atol(1, 1000.0)
    np.testing.assert_allclose(pred32, pred64, rtol=0, atol=atol)
