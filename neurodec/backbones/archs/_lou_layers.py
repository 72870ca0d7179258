"""Layers shared by Meng Lou's TransXNet and OverLoCK releases (same names in both)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LayerScale", "check_drop_path_rate"]


def check_drop_path_rate(rate: float, model: str) -> None:
    """Raise if a stochastic depth rate is outside [0, 1)."""
    if not 0 <= rate < 1:
        raise ValueError(f"The 'drop_path_rate' of {model} must be in [0, 1). Got {rate!r} instead.")


class LayerScale(nn.Module):
    """Per-channel affine map ``x * weight + bias`` stored as a depthwise 1x1 convolution.

    Parameters
    ----------
    dim : int
        Number of channels.
    init_value : float
        Initial scale.
    """

    def __init__(self, dim: int, init_value: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((dim, 1, 1, 1), float(init_value)))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, weight=self.weight, bias=self.bias, groups=x.shape[1])
