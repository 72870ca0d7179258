"""fit_distributed: sharded fits equal single-process fits; files are read shard by shard."""

from __future__ import annotations

import numpy as np
import pytest

from neurodec.ridge.banded import BandedRidgeCV
from neurodec.ridge.distributed import _read_columns, _target_source, fit_distributed

import distributed  # noqa: E402

ATTRIBUTES = ("coef_", "intercept_", "cv_scores_", "deltas_", "best_gammas_", "y_offset_")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster, distributed.Client(cluster) as c:
        yield c


def _data(rng, n_samples=120, n_targets=23):
    XA, XB = rng.standard_normal((n_samples, 6)), rng.standard_normal((n_samples, 9))
    Y = XA @ rng.standard_normal((6, n_targets)) + XB @ rng.standard_normal((9, n_targets)) * rng.uniform(
        0, 1, n_targets
    )
    return np.hstack([XA, XB]), Y + rng.standard_normal(Y.shape)


def _banded():
    return BandedRidgeCV(
        groups=[slice(0, 6), slice(6, 15)], alphas=np.logspace(-2, 3, 6), n_iter=6, random_state=0,
        device="cpu", dtype="float64",
    )


def _assert_same_fit(ours, ref):
    for name in ATTRIBUTES:
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(ours.best_alphas_, ref.best_alphas_)
    np.testing.assert_array_equal(ours.gammas_, ref.gammas_)


def test_sharded_banded_fit_equals_single_process(client, rng):
    X, Y = _data(rng)
    ref = _banded().fit(X, Y)
    model = _banded()
    assert fit_distributed(model, X, Y, client=client, n_shards=4, verbose=True) is model
    _assert_same_fit(model, ref)
    np.testing.assert_allclose(model.predict(X), ref.predict(X), rtol=1e-10)


def test_sharded_ridge_cv_fit_equals_single_process(client, rng):
    from neurodec.ridge import RidgeCV

    X, Y = _data(rng, n_targets=30)
    kwargs = dict(alphas=np.logspace(-2, 4, 7), device="cpu", dtype="float64", warn_alpha_edge=False)
    ref = RidgeCV(**kwargs).fit(X, Y)
    model = fit_distributed(RidgeCV(**kwargs), X, Y, client=client, n_shards=3)
    for name in ("coef_", "intercept_", "cv_scores_"):
        np.testing.assert_allclose(getattr(model, name), getattr(ref, name), rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(model.best_alphas_, ref.best_alphas_)
    assert model.method_ == ref.method_ and model.n_features_in_ == 15


def test_scheduler_address_string_connects(client, rng):
    X, Y = _data(rng, n_targets=7)
    bands = [X[:, :6], X[:, 6:]]
    model = fit_distributed(_banded().set_params(groups=None), bands, Y, client=client.scheduler.address, n_shards=3)
    ref = _banded().set_params(groups=None).fit(bands, Y)
    _assert_same_fit(model, ref)


def test_memmap_targets_travel_as_a_file_location(client, rng, tmp_path):
    X, Y = _data(rng)
    path = tmp_path / "y.dat"
    mm = np.memmap(path, dtype=np.float64, mode="w+", shape=(150, 40))
    mm[:] = rng.standard_normal((150, 40))
    mm[:120, 5:28] = Y
    mm.flush()
    view = np.memmap(path, dtype=np.float64, mode="r", shape=(150, 40))[:120, 5:28]  # a view, not the whole file
    kind, source = _target_source(view)
    assert kind == "memmap" and str(path) == source[0]
    np.testing.assert_array_equal(_read_columns(kind, source, slice(3, 9)), Y[:, 3:9])
    model = fit_distributed(_banded(), X, view, client=client, n_shards=3)
    _assert_same_fit(model, _banded().fit(X, Y))


def test_hdf5_targets_travel_as_a_file_location(client, rng, tmp_path):
    import h5py

    X, Y = _data(rng)
    path = tmp_path / "y.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("betas/session1", data=Y)
    with h5py.File(path, "r") as f:
        dataset = f["betas/session1"]
        kind, source = _target_source(dataset)
        assert (kind, source) == ("hdf5", (str(path), "/betas/session1"))
        model = fit_distributed(_banded(), X, dataset, client=client, n_shards=2)
    _assert_same_fit(model, _banded().fit(X, Y))


def test_local_cluster_started_when_no_client(rng):
    X, Y = _data(rng, n_targets=8)
    model = fit_distributed(_banded(), X, Y, cluster_kwargs=dict(n_workers=2, threads_per_worker=1, processes=False))
    _assert_same_fit(model, _banded().fit(X, Y))


@pytest.mark.slow  # two worker processes import torch: ~10 s on idle cores
def test_local_cluster_with_worker_processes(rng):
    X, Y = _data(rng, n_targets=8)
    model = fit_distributed(_banded(), X, Y, cluster_kwargs=dict(n_workers=2, threads_per_worker=1))
    _assert_same_fit(model, _banded().fit(X, Y))


def test_errors(client, rng):
    X, Y = _data(rng, n_targets=3)
    with pytest.raises(ValueError, match="n_shards must be between 1 and n_targets=3"):
        fit_distributed(_banded(), X, Y, client=client, n_shards=4)
    with pytest.raises(ValueError, match=r"shape \(n_samples, n_targets\)"):
        fit_distributed(_banded(), X, Y[:, 0], client=client)


@pytest.mark.slow  # two worker processes import torch: ~15 s on 2 shared cores
def test_one_worker_per_gpu_sees_only_its_device(rng):
    import os

    from neurodec.ridge import RidgeCV, gpu_cluster

    X, Y = _data(rng, n_targets=12)
    kwargs = dict(alphas=np.logspace(-2, 4, 7), dtype="float64", warn_alpha_edge=False)
    with gpu_cluster([0, 1], threads_per_worker=1) as cluster, distributed.Client(cluster) as c:
        seen = c.run(lambda: (os.environ["CUDA_VISIBLE_DEVICES"], os.environ["OMP_NUM_THREADS"]))
        assert sorted(seen.values()) == [("0", "1"), ("1", "1")]
        assert all(spec["options"]["nthreads"] == 1 for spec in cluster.worker_spec.values())
        # device="auto" on each worker: its GPU there, the CPU here; one-device results either way.
        model = fit_distributed(RidgeCV(**kwargs), X, Y, client=c, n_shards=4)
    ref = RidgeCV(**kwargs).fit(X, Y)
    for name in ("coef_", "intercept_", "cv_scores_"):
        np.testing.assert_allclose(getattr(model, name), getattr(ref, name), rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(model.best_alphas_, ref.best_alphas_)


def test_gpus_argument_errors(client, rng):
    X, Y = _data(rng, n_targets=3)
    with pytest.raises(ValueError, match="'gpus' parameter starts its own cluster"):
        fit_distributed(_banded(), X, Y, client=client, gpus=2)
    for bad in (0, [1, 1], [-1], "0,1", True):
        with pytest.raises(ValueError, match="'gpus' parameter must"):
            fit_distributed(_banded(), X, Y, gpus=bad)
