"""Long CPU loops of the ridge solvers through numpy's BLAS, on views of the tensors.

torch's CPU wheels link MKL, numpy's link OpenBLAS. On the AMD EPYC machine
the project is developed and tested on (2 cores, AVX2, 156 GFLOP/s float32
peak), the dual solver's product ``(1400 x 800) @ (800 x c)`` in float32,
``c`` = 256 to 4096 targets, ran at 121-131 GFLOP/s through numpy and 64-103
through ``torch.mm``. MKL may be the faster of the two on Intel CPUs; the
choice does not depend on the CPU, so that a result does not depend on which
CPU picked which library.

The two libraries keep separate thread pools whose idle threads spin for a
while after each call (OpenBLAS's for ~0.1 s). Alternating torch operations
with numpy GEMMs therefore costs: a loop doing so ran 2-3x slower than either
alone, and a small decoder fit (200 trials, 1,024 targets) that handed the
cores from one pool to the other a few times took 0.10-0.15 s instead of
0.06 s. So a CPU loop goes to numpy only when its products are large
(:func:`use_host_blas`), and then wholly: every array operation of the loop
runs in numpy, on ``tensor.numpy()`` views (no copies), with the thread
count torch is set to (:func:`blas_threads`).

Everything else, and every CUDA tensor, stays in torch: :func:`host_view`
returns tensors unchanged when asked to, so the same loop code serves both,
with the module of the arrays at hand given by :func:`namespace`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from types import ModuleType
from typing import Any

import numpy as np
import torch

__all__ = ["MIN_HOST_FLOPS", "blas_threads", "host_view", "namespace", "use_host_blas", "viewer"]

#: Products (FLOPs) of one call below which a CPU loop stays in torch: the gain
#: (~30% of the GEMM time) then no longer pays for the thread handover (~0.05-0.1 s).
MIN_HOST_FLOPS = 2e10


def host_view(t: torch.Tensor) -> Any:
    """``t.numpy()`` (a view) for a CPU tensor; the tensor itself on any other device."""
    return t.numpy() if t.device.type == "cpu" else t


def _same(t: torch.Tensor) -> torch.Tensor:
    return t


def use_host_blas(device: torch.device, flops: float) -> bool:
    """Whether a loop of ``flops`` floating-point operations on ``device`` should run in numpy."""
    return device.type == "cpu" and flops >= MIN_HOST_FLOPS


def viewer(device: torch.device, flops: float) -> Callable[[torch.Tensor], Any]:
    """:func:`host_view` when :func:`use_host_blas`, else the identity (the loop stays in torch)."""
    return host_view if use_host_blas(device, flops) else _same


def namespace(a: Any) -> ModuleType:
    """``numpy`` for arrays, ``torch`` for tensors: the module whose ``matmul`` applies."""
    return np if isinstance(a, np.ndarray) else torch


def blas_threads(device: torch.device) -> AbstractContextManager:
    """Within it, numpy's BLAS uses ``torch.get_num_threads()`` threads (a no-op off CPU)."""
    if device.type != "cpu":
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=torch.get_num_threads(), user_api="blas")
