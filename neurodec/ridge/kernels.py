"""Kernels for :class:`neurodec.ridge.KernelRidgeCV`, computed in torch.

Defaults follow ``sklearn.metrics.pairwise.pairwise_kernels``: ``gamma``
defaults to ``1 / n_features``; ``poly`` has ``degree=3`` and ``coef0=1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["KERNELS", "compute_kernel"]


def _linear(X: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
    return X @ Z.T


def _rbf(X: torch.Tensor, Z: torch.Tensor, gamma: float | None = None) -> torch.Tensor:
    gamma = 1.0 / X.shape[1] if gamma is None else gamma
    sq = (X * X).sum(1)[:, None] + (Z * Z).sum(1)[None, :] - 2 * X @ Z.T
    return torch.exp(-gamma * sq.clamp_min(0))


def _poly(X: torch.Tensor, Z: torch.Tensor, degree: float = 3, gamma: float | None = None, coef0: float = 1) -> torch.Tensor:
    gamma = 1.0 / X.shape[1] if gamma is None else gamma
    return (gamma * X @ Z.T + coef0) ** degree


def _cosine(X: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
    # Zero rows stay zero (as in scikit-learn's normalize).
    Xn = X / X.norm(dim=1, keepdim=True).clamp_min(torch.finfo(X.dtype).tiny)
    Zn = Z / Z.norm(dim=1, keepdim=True).clamp_min(torch.finfo(Z.dtype).tiny)
    return Xn @ Zn.T


KERNELS: dict[str, Callable[..., torch.Tensor]] = {
    "linear": _linear,
    "rbf": _rbf,
    "poly": _poly,
    "cosine": _cosine,
}


def compute_kernel(
    X: torch.Tensor, Z: torch.Tensor, kernel: str | Callable[..., torch.Tensor] = "linear", **kernel_params: Any
) -> torch.Tensor:
    """Kernel matrix between the rows of ``X`` and of ``Z``.

    Parameters
    ----------
    X : tensor of shape (n_samples_x, n_features)
    Z : tensor of shape (n_samples_z, n_features)
    kernel : {"linear", "rbf", "poly", "cosine"} or callable
        A callable takes ``(X, Z, **kernel_params)`` (2-D tensors) and
        returns a tensor of shape (n_samples_x, n_samples_z).
    **kernel_params
        ``gamma`` (rbf, poly), ``degree`` and ``coef0`` (poly), or anything
        the callable takes.

    Returns
    -------
    K : tensor of shape (n_samples_x, n_samples_z)
    """
    if callable(kernel):
        return torch.as_tensor(kernel(X, Z, **kernel_params), dtype=X.dtype, device=X.device)
    if kernel not in KERNELS:
        raise ValueError(f"The 'kernel' parameter must be one of {sorted(KERNELS)} or a callable. Got {kernel!r} instead.")
    return KERNELS[kernel](X, Z, **kernel_params)
