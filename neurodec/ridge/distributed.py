"""Scale a ridge fit out over a Dask cluster by sharding the targets.

Targets (voxels, channels) are independent given the features, so a fit on
all targets equals the column-wise concatenation of fits on target shards.
:func:`fit_distributed` sends ``X`` to every worker once, lets each worker
fit a clone of the estimator on its shard of ``Y`` (on the worker's GPU when
it has one: ``device="auto"`` is resolved on the worker), and reassembles the
learned attributes in the original target order. With ``gpus=`` it starts one
worker process per GPU, each seeing only its own device
(``CUDA_VISIBLE_DEVICES``), as dask-cuda's ``LocalCUDACluster`` does.

Dask is imported inside the functions: it is an optional dependency
(``pip install neurodec[dask]``).
"""

from __future__ import annotations

import mmap
import os
from typing import Any

import numpy as np

from neurodec._logging import get_logger, progress

__all__ = ["fit_distributed", "gpu_cluster"]

logger = get_logger(__name__)

# Learned attributes with one entry per target, on their last axis; every other
# learned attribute describes the features or the search and is the same on all shards.
PER_TARGET_ATTRIBUTES = (
    "coef_",
    "intercept_",
    "dual_coef_",
    "best_alphas_",
    "cv_scores_",
    "deltas_",
    "best_gammas_",
    "y_offset_",
)


def _target_source(Y: Any) -> tuple[str, Any]:
    """How a worker gets its columns: ``("memmap", layout)``, ``("hdf5", (path, name))`` or ``("array", Y)``.

    Memory maps and HDF5 datasets travel as file locations (a few bytes), so
    each worker reads only its own columns from disk.
    """
    if isinstance(Y, np.memmap):
        base = Y
        while isinstance(base.base, np.ndarray):  # a view: find the array that owns the mapping
            base = base.base
        if isinstance(base.base, mmap.mmap) and isinstance(base, np.memmap) and base.filename:
            offset = int(base.offset) + (Y.__array_interface__["data"][0] - base.__array_interface__["data"][0])
            return "memmap", (os.fspath(base.filename), offset, Y.dtype.str, Y.shape, Y.strides)
    if type(Y).__module__.startswith("h5py") and hasattr(Y, "file"):
        return "hdf5", (os.fspath(Y.file.filename), Y.name)
    return "array", Y


def _read_columns(kind: str, source: Any, columns: slice) -> np.ndarray:
    """Columns ``columns`` of the targets described by ``_target_source``."""
    if kind == "memmap":
        path, offset, dtype, shape, strides = source
        whole = np.memmap(path, dtype=np.uint8, mode="r")
        Y = np.ndarray(shape, dtype=np.dtype(dtype), buffer=whole, offset=offset, strides=strides)
        return np.array(Y[:, columns])
    if kind == "hdf5":
        import h5py

        path, name = source
        with h5py.File(path, "r") as f:
            return f[name][:, columns]
    return np.asarray(source[:, columns])


def _fit_shard(estimator: Any, X: Any, kind: str, source: Any, columns: slice) -> dict[str, Any]:
    """Fit a clone of ``estimator`` on one target shard; return its learned attributes."""
    from sklearn.base import clone

    fitted = clone(estimator).fit(X, _read_columns(kind, source, columns))
    return {k: v for k, v in vars(fitted).items() if k.endswith("_") and not k.startswith("_")}


def _same(a: Any, b: Any) -> bool:
    """Whether two learned attributes of different shards are equal (arrays, lists of arrays, scalars)."""
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and bool(np.all((a == b) | ((a != a) & (b != b))))
    return bool(a == b)


def _merge(shards: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate per-target attributes along their last axis; check the others agree."""
    merged = {}
    for name, first in shards[0].items():
        if name in PER_TARGET_ATTRIBUTES:
            merged[name] = np.concatenate([np.atleast_1d(s[name]) for s in shards], axis=-1)
        elif all(_same(first, other[name]) for other in shards[1:]):
            merged[name] = first
        else:
            raise ValueError(
                f"Learned attribute {name!r} differs between target shards, so the shards cannot be merged; "
                "fit_distributed merges only estimators whose other attributes do not depend on the targets."
            )
    return merged


def _check_gpus(gpus: Any) -> list[int]:
    """GPU indices from ``gpus`` (an int n means 0..n-1)."""
    if isinstance(gpus, (int, np.integer)) and not isinstance(gpus, bool):
        devices = list(range(int(gpus)))
    elif isinstance(gpus, (list, tuple)) and all(isinstance(g, (int, np.integer)) for g in gpus):
        devices = [int(g) for g in gpus]
    else:
        raise ValueError(f"The 'gpus' parameter must be an int or a list of GPU indices. Got {gpus!r} instead.")
    if not devices or min(devices) < 0 or len(set(devices)) != len(devices):
        raise ValueError(f"The 'gpus' parameter must name at least one distinct non-negative GPU index. Got {gpus!r}.")
    return devices


def gpu_cluster(gpus: Any, *, threads_per_worker: int | None = None) -> Any:
    """A local Dask cluster with one worker process per GPU.

    Worker ``gpu-<i>`` sees only GPU ``i`` (``CUDA_VISIBLE_DEVICES=i``, set
    before the process starts, so CUDA in that process numbers it 0) and runs
    one task at a time, so a ``device="auto"`` fit there uses that GPU alone.

    Parameters
    ----------
    gpus : int or list of int
        GPU indices; an int n means GPUs 0 to n-1.
    threads_per_worker : int or None
        BLAS/torch CPU threads of each worker (``OMP_NUM_THREADS``); None
        shares the machine's cores among the workers.

    Returns
    -------
    cluster : distributed.SpecCluster
        Close it (or use it as a context manager) when done.
    """
    from distributed import Nanny, Scheduler, SpecCluster

    devices = _check_gpus(gpus)
    threads = str(threads_per_worker or max(1, (os.cpu_count() or 1) // len(devices)))
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    workers = {
        f"gpu-{d}": {"cls": Nanny, "options": {"nthreads": 1, "host": "127.0.0.1",
                                                "env": {**env, "CUDA_VISIBLE_DEVICES": str(d)}}}
        for d in devices
    }
    # Loopback, as LocalCluster: the workers are on this machine.
    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": ":0"}}
    return SpecCluster(workers=workers, scheduler=scheduler)


def _connect(client: Any, cluster_kwargs: dict[str, Any] | None, gpus: Any = None) -> tuple[Any, Any]:
    """The client to use and what to close afterwards (None when the caller owns it)."""
    from distributed import Client, LocalCluster

    if gpus is not None:
        if client is not None or cluster_kwargs:
            raise ValueError("The 'gpus' parameter starts its own cluster: pass it without client or cluster_kwargs.")
        cluster = gpu_cluster(gpus)
        own = Client(cluster)
        return own, (own, cluster)
    if client is None:
        n_cpus = os.cpu_count() or 1
        threads = min(4, n_cpus)
        options: dict[str, Any] = dict(
            n_workers=max(1, n_cpus // threads), threads_per_worker=threads, processes=True, dashboard_address=":0"
        )
        options.update(cluster_kwargs or {})
        if options["processes"]:
            # BLAS and torch inside a worker process use that worker's cores only
            n = str(options["threads_per_worker"])
            options["env"] = {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, **options.get("env", {})}
        cluster = LocalCluster(**options)
        own = Client(cluster)
        return own, (own, cluster)
    if isinstance(client, str):
        own = Client(client)
        return own, (own,)
    return client, ()


def fit_distributed(
    estimator: Any,
    X: Any,
    Y: Any,
    *,
    client: Any = None,
    n_shards: int | None = None,
    cluster_kwargs: dict[str, Any] | None = None,
    gpus: int | list[int] | None = None,
    verbose: bool | int = False,
) -> Any:
    """Fit ``estimator`` on all targets by fitting target shards on a Dask cluster.

    Parameters
    ----------
    estimator : scikit-learn estimator
        A neurodec ridge estimator (``RidgeCV``, ``KernelRidgeCV``,
        ``BandedRidgeCV``) or any estimator whose target-dependent learned
        attributes are among ``PER_TARGET_ATTRIBUTES``. It is fitted in place
        (its parameters are sent to every worker) and returned.
    X : array of shape (n_samples, n_features), or list of band arrays
        Features; sent to every worker once.
    Y : array, numpy memmap or h5py.Dataset of shape (n_samples, n_targets)
        Targets. A memmap or an HDF5 dataset is passed to the workers as its
        file path and each worker reads only its own columns.
    client : distributed.Client, str or None
        A client, the address of a running scheduler (``"tcp://host:8786"``),
        or None to start a ``LocalCluster`` for this call (closed at the end).
    n_shards : int or None
        Number of target shards; None means two per worker thread pool (for
        load balance), at most ``n_targets``.
    cluster_kwargs : dict or None
        Options of the ``LocalCluster`` started when ``client`` is None
        (default: one process per 4 cores, BLAS threads limited accordingly).
    gpus : int, list of int or None
        Start a local cluster with one worker process per GPU instead (see
        :func:`gpu_cluster`; an int n means GPUs 0 to n-1): targets are
        sharded over the GPUs, each fitted by an estimator whose
        ``device="auto"`` resolves to that worker's GPU. Not with ``client``.
    verbose : bool or int
        Progress bar over finished shards.

    Returns
    -------
    estimator
        The same object, with its learned attributes equal (up to float
        round-off) to those of ``estimator.fit(X, Y)`` in a single process.

    Examples
    --------
    >>> from neurodec.ridge import RidgeCV, fit_distributed
    >>> Y = np.load("betas.npy", mmap_mode="r")  # doctest: +SKIP
    >>> model = fit_distributed(RidgeCV(), X, Y, client="tcp://scheduler:8786")  # doctest: +SKIP
    """
    if len(getattr(Y, "shape", ())) != 2:
        raise ValueError(
            f"fit_distributed needs Y of shape (n_samples, n_targets). Got shape {getattr(Y, 'shape', None)}."
        )
    n_targets = int(Y.shape[1])
    from distributed import as_completed

    client, to_close = _connect(client, cluster_kwargs, gpus)
    try:
        if n_shards is None:
            n_shards = 2 * max(1, len(client.scheduler_info().get("workers", {})))
        n_shards = int(n_shards)
        if not 1 <= n_shards <= n_targets:
            raise ValueError(f"n_shards must be between 1 and n_targets={n_targets}. Got {n_shards}.")
        edges = np.linspace(0, n_targets, n_shards + 1).round().astype(int)
        kind, source = _target_source(Y)
        X_remote = client.scatter(X, broadcast=True)
        futures = []
        for a, b in zip(edges[:-1], edges[1:]):
            shard_source = client.scatter(np.asarray(Y[:, a:b])) if kind == "array" else source
            columns = slice(0, b - a) if kind == "array" else slice(int(a), int(b))
            futures.append(client.submit(_fit_shard, estimator, X_remote, kind, shard_source, columns, pure=False))
        position = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * n_shards
        for future in progress(as_completed(futures), verbose=verbose, desc="target shards", total=n_shards):
            results[position[future.key]] = future.result()
        logger.info("Fitted %d targets in %d shards on %s.", n_targets, n_shards, client)
    finally:
        for resource in to_close:
            resource.close()
    for name, value in _merge(results).items():
        setattr(estimator, name, value)
    return estimator
