"""CPU dense products of the ridge solvers through numpy's BLAS and LAPACK, on views of the tensors.

torch's CPU wheels link MKL, numpy's link OpenBLAS. On the AMD EPYC machine
the project is developed and tested on (2 cores, AVX2, 156 GFLOP/s float32
peak), the products of the dual solver ran markedly faster through numpy:

- ``(1400 x 800) @ (800 x c)`` float32, ``c`` = 256 to 4096 targets:
  121-131 GFLOP/s through numpy, 64-103 through ``torch.mm``;
- the float64 linear kernel of 1,000 x 15,000 features: 0.30 s vs 0.68 s;
- ``eigh`` of a 1,000 x 1,000 float64 matrix: 0.17 s vs 0.27 s.

MKL may be the faster of the two on Intel CPUs; numpy is used everywhere so
that a result does not depend on which CPU chose which library. The two
libraries also keep separate thread pools whose idle threads spin: a loop
alternating ``torch`` elementwise operations with numpy GEMMs ran 2-3x slower
than either alone, so a hot CPU loop runs wholly in numpy (on
``tensor.numpy()`` views, no copies) and :func:`blas_threads` gives numpy's
BLAS the thread count torch is set to.

CUDA tensors are left to torch: :func:`host_view` returns them unchanged, so
the same code serves both devices with ``matmul``/``einsum`` taken from
:func:`namespace`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from types import ModuleType
from typing import Any

import numpy as np
import torch

__all__ = ["blas_threads", "eigh", "host_view", "matmul", "namespace"]


def host_view(t: torch.Tensor) -> Any:
    """``t.numpy()`` (a view) for a CPU tensor; the tensor itself on any other device."""
    return t.numpy() if t.device.type == "cpu" else t


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` as a tensor, through numpy's BLAS when both are on the CPU."""
    return torch.from_numpy(np.matmul(host_view(a), host_view(b))) if a.device.type == "cpu" else a @ b


def namespace(a: Any) -> ModuleType:
    """``numpy`` for arrays, ``torch`` for tensors: the module whose ``matmul``/``einsum``/``where`` apply."""
    return np if isinstance(a, np.ndarray) else torch


def blas_threads(device: torch.device) -> AbstractContextManager:
    """Within it, numpy's BLAS uses ``torch.get_num_threads()`` threads (a no-op off CPU)."""
    if device.type != "cpu":
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=torch.get_num_threads(), user_api="blas")


def eigh(G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.linalg.eigh``, through numpy's LAPACK for CPU tensors (ascending eigenvalues)."""
    if G.device.type != "cpu":
        return torch.linalg.eigh(G)
    s, V = np.linalg.eigh(G.numpy())
    return torch.from_numpy(s), torch.from_numpy(V)
