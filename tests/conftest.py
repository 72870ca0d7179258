"""Shared fixtures: a seeded ``rng``, a temporary data folder, no network.

Tests never reach the internet: sockets may only connect to loopback (Dask's
local cluster uses it) and Hugging Face hubs are forced offline.
"""

from __future__ import annotations

import ipaddress
import os
import socket

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

_real_connect = socket.socket.connect


def _is_local(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # unix socket path
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: object) -> object:
    if not _is_local(address):
        raise RuntimeError(f"Tests must not use the network (tried to connect to {address!r}).")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator: every test is reproducible."""
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """The demo, run once per session: the simulated NSD subject (``demo.root / "nsd"``) and its study."""
    from demo_size import DEMO_SIZE
    from neurodec.pipelines.demo import run_demo

    return run_demo(tmp_path_factory.mktemp("demo") / "neurodec_demo", verbose=False, **DEMO_SIZE)


@pytest.fixture
def data_dir(tmp_path):
    """An empty temporary folder for datasets written by a test."""
    path = tmp_path / "data"
    path.mkdir()
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a dependency
        has_cuda = False
    if has_cuda:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
