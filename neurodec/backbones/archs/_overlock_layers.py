"""Convolutional building blocks of OverLoCK (Lou & Yu, CVPR 2025).

Names follow the authors' release (LMMMEng/OverLoCK, ``models/overlock.py``).
The dilated re-parameterizable large-kernel block comes from UniRepLKNet
(Ding et al., CVPR 2024); :meth:`DilatedReparamBlock.reparameterize` merges its
branches into one depthwise kernel, the form of the release's ``*_reparam``
checkpoints.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._layers import drop_path, layer_norm_2d
from ._lou_layers import LayerScale

__all__ = [
    "GRN",
    "DilatedReparamBlock",
    "RepConvBlock",
    "ResDWConv",
    "SEModule",
    "Stage",
    "downsample",
    "resize_to",
    "stem",
]

# Branches (kernel size, dilation) added to each large kernel, as in UniRepLKNet.
_DILATED_BRANCHES = {
    19: ((5, 1), (7, 1), (9, 1), (9, 2), (3, 4), (3, 5), (3, 7)),
    17: ((5, 1), (7, 1), (9, 2), (3, 4), (3, 5), (3, 7)),
    15: ((5, 1), (7, 1), (7, 2), (3, 3), (3, 5), (3, 7)),
    13: ((5, 1), (7, 1), (7, 2), (3, 3), (3, 4), (3, 5)),
    11: ((5, 1), (7, 1), (5, 2), (3, 3), (3, 4), (3, 5)),
    9: ((5, 1), (7, 1), (5, 2), (3, 3), (3, 4)),
    7: ((5, 1), (3, 1), (3, 2), (3, 3)),
    5: ((3, 1), (3, 2)),
}


def stem(in_chans: int, embed_dim: int) -> nn.Sequential:
    """Four 3x3 convolutions (two of stride 2) with batch norm and GELU: stride 4."""
    half = embed_dim // 2
    return nn.Sequential(
        nn.Conv2d(in_chans, half, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(half), nn.GELU(),
        nn.Conv2d(half, half, 3, padding=1, bias=False), nn.BatchNorm2d(half), nn.GELU(),
        nn.Conv2d(half, embed_dim, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(embed_dim), nn.GELU(),
        nn.Conv2d(embed_dim, embed_dim, 3, padding=1, bias=False), nn.BatchNorm2d(embed_dim),
    )  # fmt: skip


def downsample(in_dim: int, out_dim: int) -> nn.Sequential:
    """Stride-2 3x3 convolution with batch norm."""
    return nn.Sequential(nn.Conv2d(in_dim, out_dim, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(out_dim))


class SEModule(nn.Module):
    """Squeeze-and-excitation with a GELU bottleneck of ``max(16, dim // 8)`` channels."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        inner = max(16, dim // 8)
        self.proj = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, inner, 1), nn.GELU(), nn.Conv2d(inner, dim, 1), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.proj(x)


class GRN(nn.Module):
    """Global response normalization (ConvNeXt V2) on ``(N, C, H, W)`` maps."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.norm(x, p=2, dim=(-1, -2), keepdim=True)
        nx = gx / (gx.mean(dim=1, keepdim=True) + 1e-6)
        return (self.gamma * nx + 1) * x + self.beta


class ResDWConv(nn.Conv2d):
    """Depthwise convolution plus identity."""

    def __init__(self, dim: int, kernel_size: int = 3) -> None:
        super().__init__(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + super().forward(x)


def _fuse_bn(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of a bias-free convolution followed by ``bn`` (eval statistics)."""
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()
    return weight * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


class DilatedReparamBlock(nn.Module):
    """Depthwise large kernel plus parallel dilated small kernels, each batch-normed.

    Parameters
    ----------
    channels : int
        Number of channels (depthwise).
    kernel_size : int
        Large kernel size, one of 5, 7, ..., 19.
    deploy : bool
        Build the merged form: one biased large kernel, no branches.
    """

    def __init__(self, channels: int, kernel_size: int, *, deploy: bool = False) -> None:
        super().__init__()
        if kernel_size not in _DILATED_BRANCHES:
            raise ValueError(
                f"DilatedReparamBlock supports kernel sizes {sorted(_DILATED_BRANCHES)}. Got {kernel_size}."
            )
        self.branches = _DILATED_BRANCHES[kernel_size]
        self.lk_origin = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels,
                                   bias=deploy)
        if not deploy:
            self.origin_bn = nn.BatchNorm2d(channels)
            for k, r in self.branches:
                conv = nn.Conv2d(channels, channels, k, padding=(r * (k - 1) + 1) // 2, dilation=r, groups=channels,
                                 bias=False)
                self.add_module(f"dil_conv_k{k}_{r}", conv)
                self.add_module(f"dil_bn_k{k}_{r}", nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not hasattr(self, "origin_bn"):
            return self.lk_origin(x)
        out = self.origin_bn(self.lk_origin(x))
        for k, r in self.branches:
            out = out + getattr(self, f"dil_bn_k{k}_{r}")(getattr(self, f"dil_conv_k{k}_{r}")(x))
        return out

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Merge the branches and batch norms into ``lk_origin`` (eval-mode equivalent)."""
        if not hasattr(self, "origin_bn"):
            return
        kernel, bias = _fuse_bn(self.lk_origin.weight, self.origin_bn)
        big = kernel.shape[-1]
        for k, r in self.branches:
            small, small_bias = _fuse_bn(getattr(self, f"dil_conv_k{k}_{r}").weight, getattr(self, f"dil_bn_k{k}_{r}"))
            span = r * (k - 1) + 1
            start = big // 2 - span // 2
            # A dilated k x k kernel is a sparse span x span kernel; add it centred.
            kernel[..., start : start + span : r, start : start + span : r] += small
            bias = bias + small_bias
            delattr(self, f"dil_conv_k{k}_{r}")
            delattr(self, f"dil_bn_k{k}_{r}")
        del self.origin_bn
        merged = nn.Conv2d(kernel.shape[0], kernel.shape[0], big, padding=big // 2, groups=kernel.shape[0],
                           device=kernel.device, dtype=kernel.dtype)
        merged.weight.copy_(kernel)
        merged.bias.copy_(bias)
        self.lk_origin = merged


class RepConvBlock(nn.Module):
    """Base-Net / Overview-Net block: large-kernel depthwise mixing, SE, GRN feed-forward."""

    def __init__(self, dim: int, *, kernel_size: int, mlp_ratio: float, ls_init_value: float | None,
                 drop_path_rate: float, deploy: bool) -> None:
        super().__init__()
        mlp_dim = int(dim * mlp_ratio)
        self.dwconv = ResDWConv(dim, kernel_size=3)
        self.proj = nn.Sequential(
            layer_norm_2d(dim),
            DilatedReparamBlock(dim, kernel_size, deploy=deploy),
            nn.BatchNorm2d(dim),
            SEModule(dim),
            nn.Conv2d(dim, mlp_dim, 1),
            nn.GELU(),
            ResDWConv(mlp_dim, kernel_size=3),
            GRN(mlp_dim),
            nn.Conv2d(mlp_dim, dim, 1),
            drop_path(drop_path_rate),
        )
        self.ls: nn.Module = LayerScale(dim, ls_init_value) if ls_init_value is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dwconv(x)
        return self.ls(x) + self.proj(x)  # the release's res_scale=True form


class Stage(nn.ModuleList):
    """Blocks (keys ``0, 1, ...``) applied in order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self:
            x = block(x)
        return x


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (align_corners=False), as the release resizes context maps."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
