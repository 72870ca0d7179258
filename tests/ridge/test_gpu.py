"""CUDA runs give the CPU results (float tolerance); CUDA tensors come back on CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.model_selection import KFold

from neurodec.ridge import KernelRidgeCV, RidgeCV, solve_ridge_cv

from .conftest import make_encoding_data

pytestmark = pytest.mark.gpu
ALPHAS = np.logspace(-2, 5, 8)


@pytest.mark.parametrize("method", ["primal", "dual"])
@pytest.mark.parametrize("cv", [5, "loo"])
def test_cuda_matches_cpu(rng, method, cv):
    X, Y, _ = make_encoding_data(rng, 300, 40, 500)
    cpu = RidgeCV(ALPHAS, cv=cv, method=method, device="cpu", warn_alpha_edge=False).fit(X, Y)
    gpu = RidgeCV(ALPHAS, cv=cv, method=method, device="cuda", warn_alpha_edge=False).fit(X, Y)
    assert np.isclose(gpu.best_alphas_, cpu.best_alphas_).mean() >= 0.999
    np.testing.assert_allclose(gpu.cv_scores_, cpu.cv_scores_, atol=1e-5)
    np.testing.assert_allclose(gpu.predict(X), cpu.predict(X), atol=1e-4 * Y.std())


@pytest.mark.parametrize("method", ["primal", "dual"])
def test_cuda_fit_without_search_matches_cpu(rng, method):
    # splits=None: one alpha, no cross-validation; results gathered on the host from the device.
    X, Y, _ = make_encoding_data(rng, 300, 40, 500)
    cpu = solve_ridge_cv(torch.from_numpy(X), Y, [30.0], None, device="cpu", method=method)
    gpu = solve_ridge_cv(torch.from_numpy(X), Y, [30.0], None, device="cuda", method=method)
    assert gpu.cv_scores is None and torch.all(gpu.best_alphas == 30.0)
    np.testing.assert_allclose(gpu.coef.numpy(), cpu.coef.numpy(), atol=1e-4 * np.abs(cpu.coef.numpy()).max())


def test_cuda_tensors_in_cuda_tensors_out(rng):
    X, Y, _ = make_encoding_data(rng, 200, 10, 20)
    Xc, Yc = torch.from_numpy(X).cuda(), torch.from_numpy(Y).float().cuda()
    model = RidgeCV(ALPHAS, warn_alpha_edge=False).fit(Xc, Yc)
    assert model.coef_.is_cuda and model.predict(Xc).is_cuda and model.score_targets(Xc, Yc).is_cuda
    kernel = KernelRidgeCV(ALPHAS, kernel="rbf", warn_alpha_edge=False).fit(Xc, Yc)
    assert kernel.predict(Xc).is_cuda


def test_tf32_opt_in_stays_close(rng):
    X, Y, _ = make_encoding_data(rng, 400, 64, 256)
    splits = list(KFold(5).split(X))
    ref = solve_ridge_cv(torch.from_numpy(X), Y, ALPHAS, splits, device="cuda")
    tf32 = solve_ridge_cv(torch.from_numpy(X), Y, ALPHAS, splits, device="cuda", allow_tf32=True)
    assert torch.backends.cuda.matmul.allow_tf32 is False  # restored after the call
    assert (tf32.best_alphas == ref.best_alphas).float().mean() >= 0.95
    np.testing.assert_allclose(tf32.cv_scores.numpy(), ref.cv_scores.numpy(), atol=5e-3)


def test_cuda_host_targets_staged_match_device_resident(rng, tmp_path):
    from float32_tolerance import float32_atol

    X, Y, _ = make_encoding_data(rng, 200, 30, 300)
    Y32 = Y.astype(np.float32)
    np.save(tmp_path / "Y.npy", Y32)
    splits = list(KFold(5).split(X))
    Xt = torch.from_numpy(X)
    ref = solve_ridge_cv(Xt.cuda(), torch.from_numpy(Y32).cuda(), ALPHAS, splits, device="cuda", n_targets_batch=64)
    assert ref.coef.is_cuda and ref.cv_scores.is_cuda  # results stay where X is
    for source in (Y32, np.load(tmp_path / "Y.npy", mmap_mode="r"), torch.from_numpy(Y32)):
        res = solve_ridge_cv(Xt, source, ALPHAS, splits, device="cuda", n_targets_batch=64)
        assert res.coef.device.type == "cpu" and res.coef.is_pinned()  # one pinned copy back
        np.testing.assert_array_equal(res.best_alphas.numpy(), ref.best_alphas.cpu().numpy())
        atol = float32_atol(len(X), float(ref.coef.abs().max()))
        np.testing.assert_allclose(res.coef.numpy(), ref.coef.cpu().numpy(), rtol=0, atol=atol)


def test_cuda_stager_pinned_side_stream_blocks(rng):
    from neurodec.ridge._batching import TargetStager

    Y = rng.standard_normal((50, 37))
    stager = TargetStager(Y, device=torch.device("cuda"), dtype=torch.float32)
    assert stager.cuda_staging and stager.prefetch
    for start in range(0, 37, 8):
        stop = min(37, start + 8)
        block = stager.get(start, stop)
        stager.stage_next(start, stop)
        assert block.is_cuda
        np.testing.assert_array_equal(block.cpu().numpy(), Y[:, start:stop].astype(np.float32))
    assert stager.n_staged_hits == 4
