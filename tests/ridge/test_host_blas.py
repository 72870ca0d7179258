"""CPU products through numpy's BLAS: same numbers as torch, torch's thread count, and the torch branch of the dual loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_info

import neurodec.ridge._dual as dual_module
from neurodec.ridge._dual import DualPlan
from neurodec.ridge._host_blas import blas_threads, eigh, host_view, matmul

from float32_tolerance import float32_atol
from .conftest import make_encoding_data

ALPHAS = np.logspace(-2, 5, 8)


def test_host_view_shares_memory_and_matmul_equals_torch(rng):
    a = torch.from_numpy(rng.standard_normal((30, 50)).astype(np.float32))
    b = torch.from_numpy(rng.standard_normal((50, 20)).astype(np.float32))
    view = host_view(a)
    assert isinstance(view, np.ndarray) and np.shares_memory(view, a.numpy())
    out = matmul(a, b)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (30, 20)
    ref = a.double() @ b.double()
    # sums of 50 products of standard normals (|x y| < 25)
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=float32_atol(50, 25.0))


def test_eigh_matches_torch_in_float64(rng):
    A = rng.standard_normal((40, 40))
    G = torch.from_numpy(A @ A.T)
    s, V = eigh(G)
    s_ref, _ = torch.linalg.eigh(G)
    assert s.dtype == V.dtype == torch.float64
    torch.testing.assert_close(s, s_ref, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(V @ torch.diag(s) @ V.T, G, rtol=1e-12, atol=1e-10)


def test_numpy_blas_takes_torch_thread_count():
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with blas_threads(torch.device("cpu")):
            blas = [info for info in threadpool_info() if info["user_api"] == "blas"]
            assert blas and all(info["num_threads"] == 1 for info in blas)
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("score", ["r2", "pearson"])
def test_accelerator_branch_equals_numpy_branch(rng, monkeypatch, score):
    # On CUDA the dual loop runs the same code on tensors (torch.matmul, index_select, sums of products)
    # instead of numpy arrays. Forcing that branch on CPU tensors must give the numpy branch's results.
    X, Y, _ = make_encoding_data(rng, 120, 200, 30, offset=0.0)
    folds = list(KFold(4).split(X))
    Yt = torch.from_numpy(Y.astype(np.float32))
    best = torch.as_tensor(ALPHAS)[torch.arange(30) % 3 * 3]  # three alphas of ten targets each

    def run():
        plan = DualPlan(torch.from_numpy(X @ X.T), folds, alphas=torch.as_tensor(ALPHAS), fit_intercept=True,
                        dtype=torch.float32)
        dual, y_mean = plan.refit(Yt, best)
        # the intercept's terms: y_mean and r @ dual (r the kernel's row means)
        terms = y_mean.abs() + plan.row_mean.abs().float() @ dual.abs()
        return plan.cv_scores(Yt, score), dual, plan.intercept(dual, y_mean), terms

    numpy_branch = run()
    monkeypatch.setattr(dual_module, "host_view", lambda t: t)
    torch_branch = run()
    scores_ref = numpy_branch[0].numpy()
    # sums of up to n products at the scale of 1 - score (see test_alpha_batching._atol)
    atol = float32_atol(2 * 120, 1.0 + float(np.abs(1.0 - scores_ref).max()))
    np.testing.assert_allclose(torch_branch[0].numpy(), scores_ref, rtol=0, atol=atol)
    # dual coefficients: sums of n products (the refit maps); intercepts: sums of n terms of the sizes in `terms`
    dual_atol = float32_atol(2 * 120, float(numpy_branch[1].abs().max()))
    np.testing.assert_allclose(torch_branch[1].numpy(), numpy_branch[1].numpy(), rtol=0, atol=dual_atol)
    intercept_atol = float32_atol(2 * 120, float(numpy_branch[3].max()))
    np.testing.assert_allclose(torch_branch[2].numpy(), numpy_branch[2].numpy(), rtol=0, atol=intercept_atol)
