"""Plain-torch versions of the per-pixel dynamic convolutions used by LSNet and OverLoCK.

The authors run these operations with custom GPU kernels (a Triton kernel for
LSNet's small-kernel aggregation, NATTEN's ``na2d_av`` for OverLoCK's ContMix).
The functions here compute the same sums with tensor indexing, so the models
run on any device torch supports, CPU included, and are differentiable by autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["neighborhood_aggregate", "neighborhood_rpb_index", "small_kernel_aggregate"]


def small_kernel_aggregate(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """LSNet's small-kernel aggregation (SKA): a zero-padded per-pixel depthwise convolution.

    ``out[n, c, h, w] = sum_{i, j} x[n, c, h + i - p, w + j - p] * weight[n, c % G, i * k + j, h, w]``
    with ``p = (k - 1) // 2`` and zeros outside the image. Channel ``c`` uses the
    kernel of group ``c % G`` (groups interleave, they are not contiguous blocks).

    Parameters
    ----------
    x : tensor of shape (n_samples, n_channels, height, width)
        Input feature map.
    weight : tensor of shape (n_samples, n_groups, k * k, height, width)
        One ``k x k`` kernel per sample, group and pixel; ``n_channels`` must be a
        multiple of ``n_groups``.

    Returns
    -------
    tensor of shape (n_samples, n_channels, height, width)
    """
    n, c, h, w = x.shape
    groups, kk = weight.shape[1], weight.shape[2]
    k = int(round(kk**0.5))
    if k * k != kk or c % groups:
        raise ValueError(
            f"small_kernel_aggregate expects weight of shape (n, G, k*k, h, w) with n_channels "
            f"a multiple of G. Got x {tuple(x.shape)} and weight {tuple(weight.shape)}."
        )
    pad = (k - 1) // 2
    xp = F.pad(x, (pad, k - 1 - pad, pad, k - 1 - pad)).view(n, c // groups, groups, h + k - 1, w + k - 1)
    out = x.new_zeros(n, c // groups, groups, h, w)
    # k*k shifted views accumulated in place: no k*k-fold copy of x as F.unfold would make.
    for i in range(k):
        for j in range(k):
            out.addcmul_(xp[..., i : i + h, j : j + w], weight[:, None, :, i * k + j])
    return out.view(n, c, h, w)


def _window_starts(length: int, kernel_size: int, device: torch.device) -> torch.Tensor:
    """First index of each position's neighbourhood, shifted inwards at the borders."""
    return (torch.arange(length, device=device) - kernel_size // 2).clamp(0, length - kernel_size)


def neighborhood_aggregate(attn: torch.Tensor, value: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Weighted sum over each pixel's ``k x k`` neighbourhood (NATTEN's ``na2d_av``).

    As in neighbourhood attention, a pixel near the border uses the ``k x k``
    window shifted to lie inside the image (no padding), so every weight
    multiplies a real pixel.

    Parameters
    ----------
    attn : tensor of shape (n_samples, n_heads, height, width, k * k)
        Weights of the neighbours of each pixel, row-major within the window.
    value : tensor of shape (n_samples, n_heads, height, width, n_channels)
        Values to aggregate; ``height`` and ``width`` must be at least ``k``.
    kernel_size : int
        Odd window size ``k``.

    Returns
    -------
    tensor of shape (n_samples, n_heads, height, width, n_channels)
    """
    b, g, h, w, c = value.shape
    k = kernel_size
    if min(h, w) < k or attn.shape[-1] != k * k:
        raise ValueError(
            f"neighborhood_aggregate needs a map at least {k}x{k} and {k * k} weights per pixel. "
            f"Got value {tuple(value.shape)} and attn {tuple(attn.shape)}."
        )
    offsets = torch.arange(k, device=value.device)
    rows = _window_starts(h, k, value.device)[:, None] + offsets  # (h, k)
    cols = _window_starts(w, k, value.device)[:, None] + offsets  # (w, k)
    # Flat index of every pixel's k*k neighbours, row-major: (h * w, k * k).
    neighbours = (rows[:, None, :, None] * w + cols[None, :, None, :]).reshape(h * w, k * k)
    windows = value.reshape(b, g, h * w, c)[:, :, neighbours]  # (b, g, h * w, k * k, c)
    return (attn.reshape(b, g, h * w, 1, k * k) @ windows).reshape(b, g, h, w, c)


def neighborhood_rpb_index(length: int, kernel_size: int, *, device: torch.device | None = None) -> torch.Tensor:
    """Index into a ``2k - 1`` relative-position table for each position and window offset.

    Position ``i`` looking at neighbour ``start(i) + j`` has relative offset
    ``start(i) + j - i``, stored at ``start(i) + j - i + k - 1``.

    Returns
    -------
    tensor of shape (length, kernel_size) of int64
    """
    starts = _window_starts(length, kernel_size, device or torch.device("cpu"))
    offsets = torch.arange(kernel_size, device=starts.device)
    positions = torch.arange(length, device=starts.device)
    return starts[:, None] + offsets - positions[:, None] + kernel_size - 1
