"""HorNet (Rao et al., NeurIPS 2022) in plain torch: high-order spatial interactions.

Rao et al., "HorNet: Efficient High-Order Spatial Interactions with Recursive
Gated Convolutions", NeurIPS 2022 (arXiv:2207.14284).

A ConvNeXt-style hierarchy (4x4 patchify stem, 2x2 strided downsampling, four
stages at strides 4, 8, 16, 32) whose token mixer is the recursive gated
convolution g^n Conv: a 1x1 projection is split into a starting feature and n
gates computed by one depth-wise filter (a 7x7 convolution, or a global filter
in the frequency domain for the "GF" variants in stages 3 and 4); the feature
is multiplied by the gates one after another, each time projected to twice as
many channels, so stage i performs interactions of order n = i + 2.

Parameter names follow the authors' release (github.com/raoyongming/HorNet),
so their checkpoints load as they are; the backbone loader takes the weights
out of their ``{"model": ...}`` container
(:func:`neurodec.backbones.checkpoints.unwrap_state_dict`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._layers import drop_path, init_weights_, layer_norm_2d

__all__ = ["GlobalLocalFilter", "GnConv", "HorBlock", "HorNet"]

_DEPTHS = (2, 3, 18, 2)
_ORDERS = (2, 3, 4, 5)
_GATE_SCALE = 1.0 / 3.0


class GlobalLocalFilter(nn.Module):
    """Depth-wise 3x3 convolution on half the channels, a learned global filter on the other half.

    The global half is multiplied in the 2-D Fourier domain by a complex filter
    of shape ``(channels / 2, h, w)``; at other input sizes the filter is
    resampled bilinearly to the spectrum's size, as in the authors' code.

    Parameters
    ----------
    dim : int
        Number of input and output channels (even).
    h, w : int
        Spectral size of the learned filter (``w`` is the rfft width).
    """

    def __init__(self, dim: int, *, h: int = 14, w: int = 8) -> None:
        super().__init__()
        half = dim // 2
        self.dw = nn.Conv2d(half, half, kernel_size=3, padding=1, bias=False, groups=half)
        self.complex_weight = nn.Parameter(torch.empty(half, h, w, 2))
        nn.init.trunc_normal_(self.complex_weight, std=0.02)
        self.pre_norm = layer_norm_2d(dim)
        self.post_norm = layer_norm_2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre_norm(x)
        local, glob = torch.chunk(x, 2, dim=1)
        local = self.dw(local)
        height, width = glob.shape[-2:]
        # The FFT runs in float32 even under mixed precision, as the authors do.
        spectrum = torch.fft.rfft2(glob.float(), dim=(2, 3), norm="ortho")
        weight = self.complex_weight
        if weight.shape[1:3] != spectrum.shape[2:4]:
            weight = F.interpolate(
                weight.permute(3, 0, 1, 2), size=spectrum.shape[2:4], mode="bilinear", align_corners=True
            ).permute(1, 2, 3, 0)
        spectrum = spectrum * torch.view_as_complex(weight.contiguous())
        glob = torch.fft.irfft2(spectrum, s=(height, width), dim=(2, 3), norm="ortho").to(local.dtype)
        # Channels are interleaved (local_0, global_0, local_1, ...), not concatenated.
        return self.post_norm(torch.stack([local, glob], dim=2).flatten(1, 2))


class GnConv(nn.Module):
    """Recursive gated convolution g^n Conv of order ``order``.

    Parameters
    ----------
    dim : int
        Number of input and output channels.
    order : int
        Interaction order n: the channels of the recursion double n - 1 times,
        from ``dim / 2 ** (n - 1)`` up to ``dim``.
    scale : float
        Factor applied to the depth-wise gates (1/3 in all released models).
    filter_size : tuple of int, optional
        ``(h, w)`` of a :class:`GlobalLocalFilter` computing the gates; a 7x7
        depth-wise convolution when None.
    """

    def __init__(
        self, dim: int, *, order: int = 5, scale: float = 1.0, filter_size: tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        self.order = order
        self.dims = [dim // 2**i for i in range(order)][::-1]
        self.scale = scale
        n_gates = sum(self.dims)
        self.proj_in = nn.Conv2d(dim, 2 * dim, kernel_size=1)
        if filter_size is None:
            self.dwconv: nn.Module = nn.Conv2d(n_gates, n_gates, kernel_size=7, padding=3, groups=n_gates)
        else:
            self.dwconv = GlobalLocalFilter(n_gates, h=filter_size[0], w=filter_size[1])
        self.proj_out = nn.Conv2d(dim, dim, kernel_size=1)
        self.pws = nn.ModuleList(nn.Conv2d(self.dims[i], self.dims[i + 1], kernel_size=1) for i in range(order - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start, gate_input = torch.split(self.proj_in(x), (self.dims[0], sum(self.dims)), dim=1)
        gates = torch.split(self.dwconv(gate_input) * self.scale, self.dims, dim=1)
        x = start * gates[0]
        for pw, gate in zip(self.pws, gates[1:]):
            x = pw(x) * gate
        return self.proj_out(x)


class HorBlock(nn.Module):
    """HorNet block: g^n Conv token mixer and a 4x MLP, both residual with layer scale.

    Parameters
    ----------
    dim : int
        Number of channels.
    order, scale, filter_size
        Passed to :class:`GnConv`.
    drop_path_rate : float
        Stochastic depth probability of both residual branches.
    layer_scale_init_value : float
        Initial value of the per-channel scales ``gamma1`` and ``gamma2``.
    """

    def __init__(
        self,
        dim: int,
        *,
        order: int,
        scale: float = _GATE_SCALE,
        filter_size: tuple[int, int] | None = None,
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = layer_norm_2d(dim)
        self.gnconv = GnConv(dim, order=order, scale=scale, filter_size=filter_size)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma1 = nn.Parameter(torch.full((dim,), layer_scale_init_value))
        self.gamma2 = nn.Parameter(torch.full((dim,), layer_scale_init_value))
        self.drop_path = drop_path(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.gamma1[:, None, None] * self.gnconv(self.norm1(x)))
        y = self.pwconv2(self.act(self.pwconv1(self.norm2(x.permute(0, 2, 3, 1)))))
        return x + self.drop_path((self.gamma2 * y).permute(0, 3, 1, 2))


class HorNet(nn.Module):
    """HorNet backbone and classifier.

    ``stages.0`` .. ``stages.3`` output feature maps of shape
    ``(n_samples, dims[i], H / 2 ** (i + 2), W / 2 ** (i + 2))``; the
    downsampling layers sit before each stage in ``downsample_layers``.

    Parameters
    ----------
    depths : sequence of int
        Number of blocks per stage.
    base_dim : int
        Channels of stage 1; stage i has ``base_dim * 2 ** i``.
    orders : sequence of int
        Interaction order of the g^n Conv in each stage.
    filter_sizes : sequence of (tuple of int or None)
        Per stage, the spectral size of a global filter, or None for a 7x7 convolution.
    scale : float
        Gate scale of every g^n Conv.
    in_chans, num_classes : int
        Input channels and classifier outputs (0 for no classifier).
    drop_path_rate : float
        Stochastic depth of the last block, increasing linearly from 0.
    layer_scale_init_value, head_init_scale : float
        Initial layer scale and multiplier of the initial classifier weights.
    """

    def __init__(
        self,
        depths: Sequence[int] = _DEPTHS,
        base_dim: int = 64,
        *,
        orders: Sequence[int] = _ORDERS,
        filter_sizes: Sequence[tuple[int, int] | None] = (None, None, None, None),
        scale: float = _GATE_SCALE,
        in_chans: int = 3,
        num_classes: int = 1000,
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        head_init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.dims = [base_dim * 2**i for i in range(4)]
        self.num_features = self.dims[-1]
        stem = nn.Sequential(nn.Conv2d(in_chans, self.dims[0], kernel_size=4, stride=4), layer_norm_2d(self.dims[0]))
        self.downsample_layers = nn.ModuleList([stem])
        for i in range(3):
            self.downsample_layers.append(
                nn.Sequential(
                    layer_norm_2d(self.dims[i]), nn.Conv2d(self.dims[i], self.dims[i + 1], kernel_size=2, stride=2)
                )
            )
        n_blocks = sum(depths)
        rates = [drop_path_rate * k / max(n_blocks - 1, 1) for k in range(n_blocks)]
        self.stages = nn.ModuleList()
        for i, depth in enumerate(depths):
            first = sum(depths[:i])
            blocks = [
                HorBlock(
                    self.dims[i],
                    order=orders[i],
                    scale=scale,
                    filter_size=filter_sizes[i],
                    drop_path_rate=rates[first + j],
                    layer_scale_init_value=layer_scale_init_value,
                )
                for j in range(depth)
            ]
            self.stages.append(nn.Sequential(*blocks))
        self.norm = nn.LayerNorm(self.num_features, eps=1e-6)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        init_weights_(self, truncated=True)
        if isinstance(self.head, nn.Linear):
            self.head.weight.data.mul_(head_init_scale)
            self.head.bias.data.mul_(head_init_scale)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Last stage's map, tensor of shape ``(n_samples, num_features, H / 32, W / 32)``."""
        for downsample, stage in zip(self.downsample_layers, self.stages):
            x = stage(downsample(x))
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Global average pool, final LayerNorm and classifier."""
        return self.head(self.norm(x.mean(dim=(-2, -1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
