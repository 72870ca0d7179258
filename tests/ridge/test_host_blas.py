"""Long CPU loops through numpy's BLAS: when, with which thread count, and the same numbers as the torch branch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_info

import neurodec.ridge._dual as dual_module
from neurodec.ridge._dual import DualPlan
from neurodec.ridge._host_blas import MIN_HOST_FLOPS, blas_threads, host_view, viewer

from float32_tolerance import float32_atol
from .conftest import make_encoding_data

ALPHAS = np.logspace(-2, 5, 8)
CPU = torch.device("cpu")


def test_host_view_shares_memory(rng):
    a = torch.from_numpy(rng.standard_normal((30, 50)).astype(np.float32))
    view = host_view(a)
    assert isinstance(view, np.ndarray) and np.shares_memory(view, a.numpy())


def test_only_large_cpu_loops_go_to_numpy():
    t = torch.zeros(2)
    assert isinstance(viewer(CPU, MIN_HOST_FLOPS)(t), np.ndarray)
    assert viewer(CPU, MIN_HOST_FLOPS / 2)(t) is t  # the thread handover would cost more than it gains
    assert viewer(torch.device("meta"), 10 * MIN_HOST_FLOPS)(torch.zeros(2, device="meta")).device.type == "meta"


def test_numpy_blas_takes_torch_thread_count():
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with blas_threads(CPU):
            blas = [info for info in threadpool_info() if info["user_api"] == "blas"]
            assert blas and all(info["num_threads"] == 1 for info in blas)
    finally:
        torch.set_num_threads(previous)


def force_branch(monkeypatch, branch: str) -> None:
    """Run the dual plan's loops in numpy ("numpy") or in torch ("torch", the CUDA code) whatever their size."""
    monkeypatch.setattr(dual_module, "viewer", lambda device, flops: host_view if branch == "numpy" else (lambda t: t))


@pytest.mark.parametrize("score", ["r2", "pearson"])
def test_accelerator_branch_equals_numpy_branch(rng, monkeypatch, score):
    # On CUDA (and for small CPU loops) the dual loop runs the same code on tensors (torch.matmul,
    # index_select, sums of products) instead of numpy arrays: both branches must give the same results.
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

    force_branch(monkeypatch, "numpy")
    numpy_branch = run()
    force_branch(monkeypatch, "torch")
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
