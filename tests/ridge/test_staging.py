"""Target staging (the double-buffered batch iterator) and where ridge results land, on CPU.

The CUDA path differs only by pinned buffers, a side stream and an event
wait; the block bookkeeping tested here is the same code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from float32_tolerance import float32_atol
from sklearn.model_selection import KFold

from neurodec.ridge import RidgeCV, solve_ridge_cv
from neurodec.ridge._batching import TargetStager

from .conftest import make_encoding_data

ALPHAS = np.logspace(-2, 5, 8)


def _sources(Y: np.ndarray, tmp_path):
    h5py = pytest.importorskip("h5py")
    np.save(tmp_path / "Y.npy", Y)
    f = h5py.File(tmp_path / "Y.h5", "w")
    f.create_dataset("Y", data=Y)
    return {"numpy": Y, "memmap": np.load(tmp_path / "Y.npy", mmap_mode="r"), "h5py": f["Y"],
            "tensor": torch.from_numpy(Y)}


def test_stager_serves_staged_blocks_and_recovers_from_a_size_change(rng, tmp_path):
    Y = rng.standard_normal((30, 23))
    for name, source in _sources(Y, tmp_path).items():
        stager = TargetStager(source, device=torch.device("cpu"), dtype=torch.float32)
        # 5-wide blocks, then a back-off to 2 (as after an out-of-memory error) mid-way.
        bounds = [(0, 5), (5, 10), (10, 12), (12, 14), (14, 16), (16, 18), (18, 20), (20, 22), (22, 23)]
        for start, stop in bounds:
            block = stager.get(start, stop)
            stager.stage_next(start, stop)
            assert block.dtype == torch.float32 and block.shape == (30, stop - start), name
            np.testing.assert_array_equal(block.numpy(), Y[:, start:stop].astype(np.float32), err_msg=name)
        # (5, 10) was staged after (0, 5); (10, 12) was not (10-15 was); every later one was.
        # A CPU tensor already lives on the compute device: sliced, never staged.
        assert stager.n_staged_hits == (0 if name == "tensor" else len(bounds) - 2), name


def test_stager_slices_targets_already_on_the_device(rng):
    Y = torch.from_numpy(rng.standard_normal((10, 8)).astype(np.float32))
    stager = TargetStager(Y, device=torch.device("cpu"), dtype=torch.float32)
    assert not stager.prefetch
    assert stager.get(2, 5).data_ptr() == Y[:, 2:5].data_ptr()  # a view: no copy, nothing staged


@pytest.mark.parametrize("method", ["primal", "dual"])
def test_batched_staged_fit_matches_one_batch_for_every_source(rng, tmp_path, method):
    X, Y, _ = make_encoding_data(rng, 120, 16 if method == "primal" else 150, 41)
    splits = list(KFold(4).split(X))
    Xt = torch.from_numpy(X)
    whole = solve_ridge_cv(Xt, Y, ALPHAS, splits, device="cpu", method=method, n_targets_batch=41)
    sizes = []

    def oom_once(size):  # the first 16-wide batch "runs out of memory": 8-wide from then on
        sizes.append(size)
        if size == 16 and len(sizes) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    for name, source in _sources(Y, tmp_path).items():
        sizes.clear()
        res = solve_ridge_cv(Xt, source, ALPHAS, splits, device="cpu", method=method, n_targets_batch=16,
                             batch_hook=oom_once)
        assert res.n_targets_batch == 8 and sizes[:3] == [16, 8, 8], name
        np.testing.assert_array_equal(res.best_alphas.numpy(), whole.best_alphas.numpy(), err_msg=name)
        # Column blocks of another width may change BLAS summation order: float32 error over n terms.
        atol = float32_atol(len(X), np.abs(whole.coef.numpy()).max())
        np.testing.assert_allclose(res.coef.numpy(), whole.coef.numpy(), rtol=0, atol=atol, err_msg=name)
        np.testing.assert_allclose(res.cv_scores.numpy(), whole.cv_scores.numpy(), rtol=0,
                                   atol=float32_atol(len(X)), err_msg=name)


def test_results_follow_the_input_type(rng):
    X, Y, _ = make_encoding_data(rng, 90, 12, 7)
    res = solve_ridge_cv(torch.from_numpy(X), Y, ALPHAS, list(KFold(3).split(X)), device="cpu")
    assert all(t.device.type == "cpu" for t in (res.coef, res.intercept, res.cv_scores, res.best_alphas))
    as_numpy = RidgeCV(ALPHAS, cv=3, device="cpu", warn_alpha_edge=False).fit(X, Y)
    as_torch = RidgeCV(ALPHAS, cv=3, device="cpu", warn_alpha_edge=False).fit(torch.from_numpy(X), torch.from_numpy(Y))
    for attr in ("coef_", "intercept_", "best_alphas_", "cv_scores_"):
        a, t = getattr(as_numpy, attr), getattr(as_torch, attr)
        assert isinstance(a, np.ndarray) and isinstance(t, torch.Tensor), attr
        np.testing.assert_array_equal(t.numpy(), a, err_msg=attr)
    assert isinstance(as_torch.predict(torch.from_numpy(X)), torch.Tensor)
    assert isinstance(as_numpy.predict(X), np.ndarray)
    with pytest.raises(ValueError, match="'device' parameter"):
        solve_ridge_cv(torch.from_numpy(X), Y, ALPHAS, "loo", device="cpu", output_device="gpu0")
