"""All alphas in one GEMM: the same scores as one solve per alpha, a memory model that counts the alpha axis."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.model_selection import KFold

from neurodec.ridge import solve_kernel_ridge_cv, solve_ridge_cv
from neurodec.ridge._dual import DualPlan
from neurodec.ridge._primal import PrimalPlan, alpha_groups

from float32_tolerance import float32_atol
from .conftest import make_encoding_data
from .test_solvers import reference_cv_scores

ALPHAS = np.logspace(-2, 5, 8)


def _atol(scores: np.ndarray, n_terms: int) -> float:
    # A score is 1 - sse / sst (or a correlation): the rounding of sums of n_terms products,
    # relative to sse / sst = 1 - score, which can exceed 1 for a poor alpha.
    return float32_atol(n_terms, scale=1.0 + float(np.abs(1.0 - scores).max()))


@pytest.mark.parametrize(
    ("method", "p", "splits"),
    [("primal", 24, "kfold"), ("dual", 60, "kfold"), ("primal", 24, "loo"), ("dual", 60, "loo")],
)
@pytest.mark.parametrize("score", ["r2", "pearson"])
def test_all_alphas_at_once_equal_one_alpha_at_a_time(rng, method, p, splits, score):
    X, Y, _ = make_encoding_data(rng, 150, p, 12)
    folds = splits if splits == "loo" else list(KFold(5).split(X))
    Xt = torch.from_numpy(X).float()
    kwargs = dict(device="cpu", dtype=torch.float32, method=method, score=score, return_weights=False)
    batched = solve_ridge_cv(Xt, Y.astype(np.float32), ALPHAS, folds, **kwargs).cv_scores.numpy()
    loop = np.stack(
        [solve_ridge_cv(Xt, Y.astype(np.float32), [a], folds, **kwargs).cv_scores.numpy()[0] for a in ALPHAS]
    )
    n_rows = len(X) if splits == "loo" else len(folds[0][1])
    np.testing.assert_allclose(batched, loop, rtol=0, atol=_atol(loop, p + n_rows))


@pytest.mark.parametrize("score", ["r2", "pearson"])
def test_moment_route_float32_matches_float64_reference(rng, score):
    # p = 4 < n_val = 30: scores come from moments, all alphas through one p x (n_alphas t) GEMM.
    X, Y, _ = make_encoding_data(rng, 150, 4, 12)
    splits = list(KFold(5).split(X))
    res = solve_ridge_cv(torch.from_numpy(X).float(), Y.astype(np.float32), ALPHAS, splits, device="cpu", score=score)
    ref = reference_cv_scores(X, Y, ALPHAS, splits, score)
    # float32 rounding of the inputs dominates: terms of the size of the uncentred data (offsets 3 and 5).
    scale = float(np.abs(Y).max() / Y.std(0).min()) ** 2
    np.testing.assert_allclose(res.cv_scores.numpy(), ref, rtol=0, atol=float32_atol(4 + 30, scale=scale))


def test_kernel_solver_all_alphas_equal_one_at_a_time(rng):
    X, Y, _ = make_encoding_data(rng, 120, 40, 10)
    K = torch.from_numpy(X @ X.T)
    splits = list(KFold(4).split(X))
    kwargs = dict(device="cpu", dtype=torch.float32, return_weights=False)
    batched = solve_kernel_ridge_cv(K, Y, ALPHAS, splits, **kwargs).cv_scores.numpy()
    loop = np.stack([solve_kernel_ridge_cv(K, Y, [a], splits, **kwargs).cv_scores.numpy()[0] for a in ALPHAS])
    np.testing.assert_allclose(batched, loop, rtol=0, atol=_atol(loop, 120 + 30))


def test_alpha_groups_cover_the_alphas_within_the_cpu_cap():
    from neurodec.ridge._primal import _CPU_GROUP_BYTES

    for bytes_per_alpha in (1, 5 * 2**20, 7 * 2**20, 40 * 2**20):
        groups = alpha_groups(10, bytes_per_alpha, torch.device("cpu"))
        assert [i for g in groups for i in range(10)[g]] == list(range(10))
        assert all(len(range(10)[g]) == 1 or len(range(10)[g]) * bytes_per_alpha <= _CPU_GROUP_BYTES for g in groups)
    assert len(alpha_groups(10, 5 * 2**20, torch.device("cpu"))) == 4  # 3 + 3 + 3 + 1 under 16 MiB
    # a CUDA device takes all alphas in one GEMM whatever their size (no GPU needed to plan it)
    assert alpha_groups(10, 40 * 2**20, torch.device("cuda")) == [slice(0, 10)]


def test_memory_model_counts_the_alpha_axis(rng):
    X, _, _ = make_encoding_data(rng, 200, 50, 1)
    Xt = torch.from_numpy(X).float()
    splits = list(KFold(5).split(X))
    n_val, p, itemsize = 40, 50, 4
    # predictions route (p > n_val): per target, at least one alpha group's shrunk coefficients,
    # predictions and residuals, and one score per alpha
    primal = PrimalPlan(Xt, splits, n_alphas=10, fit_intercept=True, dtype=torch.float32)
    assert primal.bytes_per_target(10) >= itemsize * (2 * p + 2 * n_val + 10)
    assert primal.bytes_per_target(11) > primal.bytes_per_target(10)
    dual = DualPlan(
        torch.from_numpy(X @ X.T), splits, alphas=torch.ones(10), fit_intercept=True, dtype=torch.float32
    )
    assert dual.bytes_per_target(10) >= itemsize * (2 * 200 + 2 * n_val + 10)


@pytest.mark.parametrize(
    ("method", "p", "splits"), [("primal", 4, "kfold"), ("primal", 24, "kfold"), ("dual", 60, "loo")]
)
def test_alpha_groups_equal_one_group(rng, monkeypatch, method, p, splits):
    import neurodec.ridge._primal as primal_module

    X, Y, _ = make_encoding_data(rng, 150, p, 12)
    folds = splits if splits == "loo" else list(KFold(5).split(X))
    Xt, Yt = torch.from_numpy(X).float(), Y.astype(np.float32)
    kwargs = dict(device="cpu", method=method, return_weights=False)
    one = solve_ridge_cv(Xt, Yt, ALPHAS, folds, **kwargs).cv_scores.numpy()
    # a cap of 3 alphas' products: groups of 3, 3 and 2
    rows = {"primal": 30 if p > 4 else p, "dual": 150}[method] if splits != "loo" else 150
    monkeypatch.setattr(primal_module, "_CPU_GROUP_BYTES", 3 * rows * 12 * 4)
    assert len(primal_module.alpha_groups(8, rows * 12 * 4, torch.device("cpu"))) == 3
    grouped = solve_ridge_cv(Xt, Yt, ALPHAS, folds, **kwargs).cv_scores.numpy()
    n_rows = 150 if splits == "loo" else 30
    np.testing.assert_allclose(grouped, one, rtol=0, atol=_atol(one, p + n_rows))


@pytest.mark.parametrize("score", ["r2", "pearson"])
def test_cpu_target_blocks_equal_one_block(rng, monkeypatch, score):
    import neurodec.ridge._dual as dual_module

    X, Y, _ = make_encoding_data(rng, 120, 60, 40)
    folds = list(KFold(4).split(X))
    Xt, Yt = torch.from_numpy(X).float(), Y.astype(np.float32)
    kwargs = dict(device="cpu", method="dual", score=score, return_weights=False)
    one = solve_ridge_cv(Xt, Yt, ALPHAS, folds, **kwargs).cv_scores.numpy()
    # blocks of 7 targets: 40 = 5 x 7 + 5, each scored separately
    monkeypatch.setattr(dual_module, "_CPU_CHUNK_BYTES", 1)
    monkeypatch.setattr(dual_module, "_MIN_CHUNK", 7)
    plan = DualPlan(torch.from_numpy(X @ X.T), folds, alphas=torch.as_tensor(ALPHAS), fit_intercept=True,
                    dtype=torch.float32)
    assert len(plan._column_chunks(40, 4, torch.device("cpu"))) == 6
    blocked = solve_ridge_cv(Xt, Yt, ALPHAS, folds, **kwargs).cv_scores.numpy()
    np.testing.assert_allclose(blocked, one, rtol=0, atol=_atol(one, 60 + 30))
