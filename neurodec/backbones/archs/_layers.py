"""Pieces shared by neurodec's own architectures: timm layers, stochastic depth, initialization.

timm is imported on first use (after :func:`neurodec._torchvision.enable_torchvision`),
not when the architecture modules are imported by a registry query, so listing
backbones only costs the import of torch.
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import nn

__all__ = ["drop_path", "init_weights_", "layer_norm_2d", "timm_layers"]


def timm_layers() -> ModuleType:
    """Return ``timm.layers``, importing torchvision safely first."""
    from ..._torchvision import enable_torchvision

    enable_torchvision()
    import timm.layers

    return timm.layers


def drop_path(rate: float) -> nn.Module:
    """Stochastic depth with drop probability ``rate`` (identity when 0)."""
    if rate < 0 or rate >= 1:
        raise ValueError(f"The drop path rate must be in [0, 1). Got {rate!r} instead.")
    return timm_layers().DropPath(rate) if rate > 0 else nn.Identity()


def layer_norm_2d(num_channels: int, *, eps: float = 1e-6) -> nn.Module:
    """LayerNorm over the channels of an ``(N, C, H, W)`` map (params ``weight``, ``bias``)."""
    return timm_layers().LayerNorm2d(num_channels, eps=eps)


def init_weights_(model: nn.Module, *, std: float = 0.02, truncated: bool = True) -> None:
    """Draw every convolution and linear kernel from N(0, std) (truncated at 2 std) and zero the biases."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if truncated:
                nn.init.trunc_normal_(module.weight, std=std)
            else:
                nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
