"""Moments of a lagged (FIR) design without building it: Toeplitz Grams, cross products, sums.

A temporal receptive field regresses ``y(t)`` on ``x_f(t - d)`` for every
feature ``f`` and delay ``d`` in ``[dmin, dmax]`` (``L = dmax - dmin + 1``
delays, ``p = F * L`` columns, feature-major like
:class:`neurodec.ridge.Delayer`). Samples shifted in from outside a segment
(an epoch or a run) are zeros, so delays never cross segments.

Notes
-----
For the rows ``t in [a, b)`` of one segment, every entry lies in the window
``z = x[a - dmax : b - dmin]`` (``m = (b - a) + L - 1`` samples, zeros
outside the segment). Row ``i`` of the design is ``z[i + L - 1 - k]`` for
delay index ``k``. The Gram of the *full* convolution design of ``z`` (every
row in which some delay touches ``z``) is block Toeplitz,
``T[(f, k1), (g, k2)] = c_fg(k1 - k2)`` with the cross-correlations
``c_fg(tau) = sum_s z_f(s) z_g(s + tau)`` for ``|tau| < L``: ``L`` products
of ``F x m x F`` instead of the ``p x n x p`` product of the materialized
design. The wanted Gram is ``T`` minus the Gram of the ``2 (L - 1)`` extra
rows at both ends (MNE's ``edge_correction``), built densely since they are
few. Short pieces (fewer rows than about ``2 L``) are cheaper done directly.

Cross products ``X^T Y`` and predictions are ``L`` products of shifted views
of ``z``; no ``n x p`` matrix is ever held.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as nnf

__all__ = ["Lags", "lagged_cross", "lagged_design", "lagged_gram", "lagged_predict", "lagged_sums"]


@dataclass(frozen=True)
class Lags:
    """Delays ``dmin .. dmax`` (samples) and the zero padding a segment needs for them."""

    dmin: int
    dmax: int

    @property
    def n_delays(self) -> int:
        return self.dmax - self.dmin + 1

    @property
    def front(self) -> int:
        return max(self.dmax, 0)

    @property
    def back(self) -> int:
        return max(-self.dmin, 0)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad segments ``x`` of shape (R, T, F) along time: (R, front + T + back, F)."""
        return nnf.pad(x, (0, 0, self.front, self.back))

    def window(self, xp: torch.Tensor, a: int, b: int) -> torch.Tensor:
        """Window ``z`` of shape (R, b - a + L - 1, F) behind the rows ``[a, b)`` of padded segments ``xp``."""
        return xp[:, a - self.dmax + self.front : b - self.dmin + self.front]


def _concat(z: torch.Tensor, L: int) -> torch.Tensor:
    """Windows (R, m, F) laid end to end with ``L - 1`` zeros after each: (R * (m + L - 1), F), contiguous.

    Products of samples at most ``L - 1`` apart then never pair two windows,
    so sums over the concatenation are sums over windows, each one GEMM on
    contiguous rows.
    """
    R, m, F = z.shape
    return nnf.pad(z, (0, 0, 0, L - 1)).reshape(R * (m + L - 1), F)


def _rows_concat(y: torch.Tensor, L: int, m: int) -> torch.Tensor:
    """Row values (R, r, C) in the layout of :func:`_concat` (zeros after each window's rows)."""
    R, r, C = y.shape
    return nnf.pad(y, (0, 0, 0, m + L - 1 - r)).reshape(-1, C)


def _unfold_rows(z: torch.Tensor, L: int) -> torch.Tensor:
    """Design rows of ``z`` (R, m, F): row ``i`` holds ``z[i + L - 1 - k]``; shape (R, m - L + 1, F * L)."""
    R, m, F = z.shape
    rows = z.unfold(1, L, 1).flip(-1)  # (R, m - L + 1, F, L): element l = L-1-k of window i is z[i+L-1-k]
    return rows.reshape(R, m - L + 1, F * L)


def lagged_design(z: torch.Tensor, L: int) -> torch.Tensor:
    """The lagged design of the rows behind window ``z``: (R * r, F * L), ``r = m - L + 1``."""
    rows = _unfold_rows(z, L)
    return rows.reshape(-1, rows.shape[-1])


def lagged_gram(z: torch.Tensor, L: int) -> torch.Tensor:
    """Gram ``D^T D`` (p x p) of the design rows behind windows ``z`` of shape (R, m, F), summed over R."""
    R, m, F = z.shape
    r = m - L + 1
    p = F * L
    if r <= 2 * L + (m * F * F * L) // max(p * p, 1):  # direct is cheaper (and the edges would overlap)
        D = lagged_design(z, L)
        return D.T @ D
    C = torch.empty(2 * L - 1, F, F, dtype=z.dtype, device=z.device)
    zcat = _concat(z, L)
    N = zcat.shape[0]
    for tau in range(L):  # contiguous slices: no copies; the zero gaps keep epochs apart
        c = zcat[: N - tau].T @ zcat[tau:]
        C[L - 1 + tau] = c
        C[L - 1 - tau] = c.T
    k = torch.arange(L, device=z.device)
    T = C[k[:, None] - k[None, :] + L - 1]  # (L, L, F, F): T[k1, k2] = c(k1 - k2)
    T = T.permute(2, 0, 3, 1).reshape(p, p)
    zero = z.new_zeros(R, L - 1, F)
    head = lagged_design(torch.cat([zero, z[:, : L - 1]], 1), L)  # rows before the wanted ones
    tail = lagged_design(torch.cat([z[:, m - L + 1 :], zero], 1), L)  # rows after them
    return T - head.T @ head - tail.T @ tail


def lagged_cross(z: torch.Tensor, y: torch.Tensor, L: int) -> torch.Tensor:
    """Cross products ``D^T Y`` of shape (F * L, C) for windows ``z`` (R, m, F) and targets ``y`` (R, r, C)."""
    R, m, F = z.shape
    ycat = _rows_concat(y, L, m)
    zcat = nnf.pad(_concat(z.to(y.dtype), L), (0, 0, 0, L - 1))
    N = ycat.shape[0]
    out = torch.empty(F, L, ycat.shape[1], dtype=y.dtype, device=y.device)
    for k in range(L):  # row q of the design at delay k is zcat[q + L - 1 - k]; zero rows of ycat drop the gaps
        start = L - 1 - k
        out[:, k] = zcat[start : start + N].T @ ycat
    return out.reshape(F * L, -1)


def lagged_sums(z: torch.Tensor, L: int) -> torch.Tensor:
    """Column sums of the design rows behind ``z`` (R, m, F): shape (F * L,)."""
    R, m, F = z.shape
    r = m - L + 1
    cum = torch.cat([z.new_zeros(R, 1, F), z.cumsum(1)], 1).sum(0)  # (m + 1, F)
    starts = L - 1 - torch.arange(L, device=z.device)
    return (cum[starts + r] - cum[starts]).T.reshape(-1)


def lagged_predict(z: torch.Tensor, W: torch.Tensor, L: int) -> torch.Tensor:
    """Predictions ``D W`` of shape (R, r, C) for windows ``z`` (R, m, F) and weights ``W`` (F * L, C)."""
    R, m, F = z.shape
    r = m - L + 1
    W3 = W.reshape(F, L, -1)
    zcat = nnf.pad(_concat(z.to(W.dtype), L), (0, 0, 0, L - 1))
    N = R * (m + L - 1)
    out = torch.zeros(N, W3.shape[-1], dtype=W.dtype, device=W.device)
    for k in range(L):
        start = L - 1 - k
        out += zcat[start : start + N] @ W3[:, k]
    return out.reshape(R, m + L - 1, -1)[:, :r]
