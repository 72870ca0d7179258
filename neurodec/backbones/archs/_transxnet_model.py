"""TransXNet (Lou et al., IEEE TNNLS 2025) in plain torch.

Module and parameter names follow the authors' release (LMMMEng/TransXNet,
``models/transxnet.py``, which builds its layers with mmcv's ``ConvModule``:
convolution ``conv`` then batch norm ``bn``), so their checkpoints load with
``load_state_dict``; mmcv is not needed.

Each block mixes tokens with the dual dynamic token mixer (D-Mixer): half the
channels go through an input-dependent depthwise convolution (IDConv), the
other half through overlapping spatial-reduction attention (OSRA) with a
learned relative position encoding; a squeezed token enhancer fuses both.
Stages sit at strides 4, 8, 16 and 32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._layers import drop_path, init_weights_
from ._lou_layers import LayerScale, check_drop_path_rate

__all__ = ["TransXNet"]


class ConvModule(nn.Sequential):
    """mmcv's ConvModule as the release uses it: bias-free convolution, batch norm, optional GELU."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int, *, stride: int = 1, padding: int = 0,
                 groups: int = 1, gelu: bool = False) -> None:
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_dim, out_dim, kernel_size, stride, padding, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_dim))
        if gelu:
            self.add_module("activate", nn.GELU())


class PatchEmbed(nn.Module):
    """Strided convolution + batch norm (key ``proj``)."""

    def __init__(self, in_dim: int, out_dim: int, *, patch_size: int, stride: int, padding: int) -> None:
        super().__init__()
        self.proj = ConvModule(in_dim, out_dim, patch_size, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Attention(nn.Module):
    """Overlapping spatial-reduction attention (OSRA)."""

    def __init__(self, dim: int, *, num_heads: int, sr_ratio: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Conv2d(dim, dim, kernel_size=1)
        self.kv = nn.Conv2d(dim, dim * 2, kernel_size=1)
        self.sr: nn.Module = nn.Identity()
        if sr_ratio > 1:  # overlapping (kernel > stride) depthwise reduction of keys/values
            self.sr = nn.Sequential(
                ConvModule(dim, dim, sr_ratio + 3, stride=sr_ratio, padding=(sr_ratio + 3) // 2, groups=dim,
                           gelu=True),
                ConvModule(dim, dim, 1, groups=dim),
            )
        self.local_conv = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor, relative_pos_enc: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.q(x).reshape(b, self.num_heads, c // self.num_heads, -1).transpose(-1, -2)
        kv = self.sr(x)
        kv = self.local_conv(kv) + kv
        k, v = torch.chunk(self.kv(kv), chunks=2, dim=1)
        k = k.reshape(b, self.num_heads, c // self.num_heads, -1)
        v = v.reshape(b, self.num_heads, c // self.num_heads, -1).transpose(-1, -2)
        attn = (q @ k) * self.scale
        if attn.shape[2:] != relative_pos_enc.shape[2:]:  # other input sizes: resize the learned encoding
            relative_pos_enc = F.interpolate(relative_pos_enc, size=attn.shape[2:], mode="bicubic",
                                             align_corners=False)
        attn = torch.softmax(attn + relative_pos_enc, dim=-1)
        return (attn @ v).transpose(-1, -2).reshape(b, c, h, w)


def dynamic_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Depthwise convolution with a different kernel per sample (zero padding, stride 1).

    Parameters
    ----------
    x : tensor of shape (n_samples, n_channels, height, width)
    weight : tensor of shape (n_samples, n_channels, k, k)
    bias : tensor of shape (n_samples, n_channels)
    """
    b, c, h, w = x.shape
    k = weight.shape[-1]
    out = F.conv2d(x.reshape(1, b * c, h, w), weight.reshape(b * c, 1, k, k), bias.reshape(-1),
                   padding=k // 2, groups=b * c)
    return out.reshape(b, c, h, w)


class DynamicConv2d(nn.Module):
    """Input-dependent depthwise convolution (IDConv).

    ``num_groups`` learned kernels (and biases) are mixed per sample and channel
    with softmax attention computed from the pooled input.
    """

    def __init__(self, dim: int, *, kernel_size: int, num_groups: int, reduction_ratio: int = 4) -> None:
        super().__init__()
        self.num_groups = num_groups
        self.K = kernel_size
        self.weight = nn.Parameter(torch.empty(num_groups, dim, kernel_size, kernel_size))
        self.pool = nn.AdaptiveAvgPool2d(output_size=(kernel_size, kernel_size))
        self.proj = nn.Sequential(
            ConvModule(dim, dim // reduction_ratio, 1, gelu=True),
            nn.Conv2d(dim // reduction_ratio, dim * num_groups, kernel_size=1),
        )
        self.bias = nn.Parameter(torch.empty(num_groups, dim))
        nn.init.trunc_normal_(self.weight, std=0.02)
        nn.init.trunc_normal_(self.bias, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        scale = torch.softmax(self.proj(self.pool(x)).reshape(b, self.num_groups, c, self.K, self.K), dim=1)
        weight = (scale * self.weight).sum(dim=1)
        scale = torch.softmax(self.proj(x.mean(dim=(-2, -1), keepdim=True)).reshape(b, self.num_groups, c), dim=1)
        bias = (scale * self.bias).sum(dim=1)
        return dynamic_depthwise_conv(x, weight, bias)


class HybridTokenMixer(nn.Module):
    """D-Mixer: IDConv on one half of the channels, OSRA on the other, then the squeezed token enhancer."""

    def __init__(self, dim: int, *, kernel_size: int, num_groups: int, num_heads: int, sr_ratio: int,
                 reduction_ratio: int = 8) -> None:
        super().__init__()
        self.local_unit = DynamicConv2d(dim // 2, kernel_size=kernel_size, num_groups=num_groups)
        self.global_unit = Attention(dim // 2, num_heads=num_heads, sr_ratio=sr_ratio)
        inner_dim = max(16, dim // reduction_ratio)
        self.proj = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim), nn.GELU(), nn.BatchNorm2d(dim),
            nn.Conv2d(dim, inner_dim, kernel_size=1), nn.GELU(), nn.BatchNorm2d(inner_dim),
            nn.Conv2d(inner_dim, dim, kernel_size=1), nn.BatchNorm2d(dim),
        )  # fmt: skip

    def forward(self, x: torch.Tensor, relative_pos_enc: torch.Tensor) -> torch.Tensor:
        x1, x2 = torch.chunk(x, chunks=2, dim=1)
        x = torch.cat([self.local_unit(x1), self.global_unit(x2, relative_pos_enc)], dim=1)
        return self.proj(x) + x


class MultiScaleDWConv(nn.Module):
    """Depthwise convolutions of sizes 1, 3, 5, 7 on four channel groups."""

    def __init__(self, dim: int, scale: Sequence[int] = (1, 3, 5, 7)) -> None:
        super().__init__()
        rest = dim // len(scale)
        self.channels = [dim - rest * (len(scale) - 1)] + [rest] * (len(scale) - 1)
        self.proj = nn.ModuleList(
            nn.Conv2d(ch, ch, kernel_size=k, padding=k // 2, groups=ch) for ch, k in zip(self.channels, scale)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([conv(part) for conv, part in zip(self.proj, torch.split(x, self.channels, dim=1))], dim=1)


class Mlp(nn.Module):
    """Multi-scale feed-forward network (MS-FFN)."""

    def __init__(self, dim: int, hidden: int, *, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Sequential(nn.Conv2d(dim, hidden, kernel_size=1, bias=False), nn.GELU(), nn.BatchNorm2d(hidden))
        self.dwconv = MultiScaleDWConv(hidden)
        self.act = nn.GELU()
        self.norm = nn.BatchNorm2d(hidden)
        self.fc2 = nn.Sequential(nn.Conv2d(hidden, dim, kernel_size=1, bias=False), nn.BatchNorm2d(dim))
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x)
        x = self.norm(self.act(self.dwconv(x) + x))
        return self.drop(self.fc2(self.drop(x)))


class Block(nn.Module):
    """Positional depthwise conv, D-Mixer and MS-FFN, each residual (layer-scaled)."""

    def __init__(self, dim: int, *, kernel_size: int, num_groups: int, num_heads: int, sr_ratio: int,
                 mlp_ratio: float, drop_path_rate: float, layer_scale_init_value: float = 1e-5) -> None:
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm1 = nn.GroupNorm(1, dim)
        self.token_mixer = HybridTokenMixer(dim, kernel_size=kernel_size, num_groups=num_groups,
                                            num_heads=num_heads, sr_ratio=sr_ratio)
        self.norm2 = nn.GroupNorm(1, dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = drop_path(drop_path_rate)
        self.layer_scale_1 = LayerScale(dim, layer_scale_init_value)
        self.layer_scale_2 = LayerScale(dim, layer_scale_init_value)

    def forward(self, x: torch.Tensor, relative_pos_enc: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        x = x + self.drop_path(self.layer_scale_1(self.token_mixer(self.norm1(x), relative_pos_enc)))
        return x + self.drop_path(self.layer_scale_2(self.mlp(self.norm2(x))))


class Stage(nn.ModuleList):
    """The blocks of one stage (keys ``0, 1, ...``), run in order with the stage's position encoding."""

    def forward(self, x: torch.Tensor, relative_pos_enc: torch.Tensor) -> torch.Tensor:
        for block in self:
            x = block(x, relative_pos_enc)
        return x


class TransXNet(nn.Module):
    """TransXNet backbone and classifier.

    Parameters
    ----------
    layers, embed_dims, num_groups, sr_ratio, num_heads, mlp_ratios : sequence
        Per-stage depth, width, IDConv kernel groups, OSRA reduction ratio,
        attention heads and MLP expansion.
    kernel_size : int
        IDConv kernel size.
    image_size : int
        Resolution the relative position encodings are sized for (other input
        sizes interpolate them, as the release does).
    num_classes : int
        Classifier outputs (0: no classifier).
    drop_path_rate : float
        Stochastic depth rate, rising linearly over blocks (training only).

    Attributes
    ----------
    network : torch.nn.ModuleList
        Stages at indices 0, 2, 4, 6 (each a :class:`Stage` whose output has
        shape (n_samples, embed_dims[i], h / 2**(i+2), w / 2**(i+2))),
        downsampling layers at 1, 3, 5.
    """

    def __init__(self, *, layers: Sequence[int], embed_dims: Sequence[int], num_groups: Sequence[int],
                 sr_ratio: Sequence[int], num_heads: Sequence[int], mlp_ratios: Sequence[float],
                 kernel_size: int = 7, image_size: int = 224, num_classes: int = 1000, drop_path_rate: float = 0.0,
                 in_chans: int = 3) -> None:
        super().__init__()
        check_drop_path_rate(drop_path_rate, "TransXNet")
        self.num_classes = num_classes
        self.patch_embed = PatchEmbed(in_chans, embed_dims[0], patch_size=7, stride=4, padding=3)
        size = math.ceil(image_size / 4)
        encodings = []
        for heads, ratio in zip(num_heads, sr_ratio):
            encodings.append(nn.Parameter(torch.zeros(1, heads, size * size, math.ceil(size / ratio) ** 2)))
            size = math.ceil(size / 2)
        self.relative_pos_enc = nn.ParameterList(encodings)
        rates = [drop_path_rate * i / (sum(layers) - 1) for i in range(sum(layers))]
        network: list[nn.Module] = []
        for i, depth in enumerate(layers):
            network.append(Stage(
                Block(embed_dims[i], kernel_size=kernel_size, num_groups=num_groups[i], num_heads=num_heads[i],
                      sr_ratio=sr_ratio[i], mlp_ratio=mlp_ratios[i], drop_path_rate=rates[sum(layers[:i]) + j])
                for j in range(depth)
            ))  # fmt: skip
            if i < len(layers) - 1:
                network.append(PatchEmbed(embed_dims[i], embed_dims[i + 1], patch_size=3, stride=2, padding=1))
        self.network = nn.ModuleList(network)
        self.num_features = embed_dims[-1]
        self.classifier: nn.Module = nn.Identity()
        if num_classes > 0:
            self.classifier = nn.Sequential(
                nn.GroupNorm(1, embed_dims[-1]), nn.AdaptiveAvgPool2d(1),
                nn.Conv2d(embed_dims[-1], num_classes, kernel_size=1),
            )  # fmt: skip
        init_weights_(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map of shape (n_samples, embed_dims[-1], h / 32, w / 32) before the classifier."""
        x = self.patch_embed(x)
        for index, layer in enumerate(self.network):
            x = layer(x, self.relative_pos_enc[index // 2]) if index % 2 == 0 else layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x)).flatten(1)
