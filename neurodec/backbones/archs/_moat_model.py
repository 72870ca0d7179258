"""MOAT (Yang et al., ICLR 2023) in plain torch: alternating mobile convolution and attention.

Yang et al., "MOAT: Alternating Mobile Convolution and Attention Brings Strong
Vision Models", ICLR 2023 (arXiv:2210.01820).

A convolutional stem (stride 2), two stages of MBConv blocks (inverted
residuals with squeeze-and-excitation) and two stages of MOAT blocks (an MBConv
without SE, then multi-head self-attention with a 2-D relative position bias),
each stage halving the resolution in its first block: strides 4, 8, 16, 32.

The authors' implementation and checkpoints are TensorFlow (google-research/deeplab2).
This module reproduces their computation in PyTorch, including TensorFlow's
"same" padding (extra row/column at the bottom/right for stride 2), average
pooling that excludes padding, BatchNorm epsilon 1e-3 and the sign convention
of the relative position bias. Their checkpoints are TensorFlow checkpoints:
read them with ``tf.train.load_checkpoint`` into a ``{variable name: array}``
dict (e.g. saved with ``torch.save``);
:func:`~neurodec.backbones.archs._moat_tf.convert_tf_checkpoint` maps such a
dict onto this model.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._layers import drop_path, init_weights_, timm_layers

__all__ = ["MBConvBlock", "MOAT", "MOATBlock", "RelativeAttention"]

_BN_EPS = 1e-3  # Keras BatchNormalization's default epsilon
_LN_EPS = 1e-5
_POSITION_EMBEDDING_SIZES = (None, None, 14, 7)  # relative position tables are learned for these windows


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS)


def _conv_same(in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, **kwargs: Any) -> nn.Module:
    """Convolution with TensorFlow's "same" padding (asymmetric when strided)."""
    return timm_layers().create_conv2d(in_channels, out_channels, kernel_size, stride=stride, padding="same", **kwargs)


def _avg_pool_same(x: torch.Tensor, pool_size: int, stride: int) -> torch.Tensor:
    """Average pooling with TensorFlow's "same" padding, padded positions excluded from the mean."""
    pad = timm_layers().pad_same
    ones = torch.ones_like(x[:1, :1])
    size, step = [pool_size, pool_size], [stride, stride]
    total = F.avg_pool2d(pad(x, size, step), pool_size, stride)
    return total / F.avg_pool2d(pad(ones, size, step), pool_size, stride)


class _SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, se_filters: int) -> None:
        super().__init__()
        self.reduce_conv2d = nn.Conv2d(channels, se_filters, kernel_size=1)
        self.expand_conv2d = nn.Conv2d(se_filters, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Keras' default activation here is swish (SiLU), not the blocks' GELU.
        gate = self.expand_conv2d(F.silu(self.reduce_conv2d(x.mean(dim=(2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class MBConvBlock(nn.Module):
    """Pre-norm inverted residual: BN, 1x1 expand, 3x3 depth-wise (strided), optional SE, 1x1 shrink.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out; a 1x1 ``shortcut_conv`` maps the shortcut when they differ.
    stride : int
        Stride of the depth-wise convolution and of the shortcut's average pooling.
    expansion_rate : int
        Inner channels are ``out_channels * expansion_rate``.
    se_ratio : float, optional
        Squeeze-and-excitation width relative to ``out_channels``; None for no SE.
    pool_size : int
        Kernel of the shortcut's average pooling.
    drop_path_rate : float
        Stochastic depth of the residual branch.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        expansion_rate: int = 4,
        se_ratio: float | None = 0.25,
        pool_size: int = 3,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        inner = out_channels * expansion_rate
        self.stride, self.pool_size = stride, pool_size
        self.shortcut_conv = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        self.pre_norm = _batch_norm(in_channels)
        self.expand_conv = nn.Conv2d(in_channels, inner, kernel_size=1, bias=False)
        self.expand_norm = _batch_norm(inner)
        self.depthwise_conv = _conv_same(inner, inner, 3, stride=stride, groups=inner, bias=False)
        self.depthwise_norm = _batch_norm(inner)
        self.se = _SqueezeExcitation(inner, max(1, int(out_channels * se_ratio))) if se_ratio else None
        self.shrink_conv = nn.Conv2d(inner, out_channels, kernel_size=1)
        self.drop_path = drop_path(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = _avg_pool_same(x, self.pool_size, self.stride) if self.stride > 1 else x
        if self.shortcut_conv is not None:
            shortcut = self.shortcut_conv(shortcut)
        x = F.gelu(self.expand_norm(self.expand_conv(self.pre_norm(x))))
        x = F.gelu(self.depthwise_norm(self.depthwise_conv(x)))
        if self.se is not None:
            x = self.se(x)
        return shortcut + self.drop_path(self.shrink_conv(x))


class RelativeAttention(nn.Module):
    """Multi-head self-attention over ``(n, h, w, channels)`` windows with a 2-D relative position bias.

    The bias of query ``(i, j)`` and key ``(x, y)`` is
    ``relative_position_embedding[head, x - i + h - 1, y - j + w - 1]``; the
    table is learned for ``position_embedding_size`` windows and resized
    bilinearly for others.

    Parameters
    ----------
    dim : int
        Channels in and out.
    head_size : int
        Channels per head; there are ``dim // head_size`` heads.
    position_embedding_size : int, optional
        Window side the relative position table is learned for; None for no bias.
    """

    def __init__(self, dim: int, *, head_size: int = 32, position_embedding_size: int | None = None) -> None:
        super().__init__()
        self.num_heads, self.head_size = dim // head_size, head_size
        inner = self.num_heads * head_size
        self.q, self.k, self.v = nn.Linear(dim, inner), nn.Linear(dim, inner), nn.Linear(dim, inner)
        self.o = nn.Linear(inner, dim)
        self.relative_position_embedding = None
        if position_embedding_size:
            side = 2 * position_embedding_size - 1
            self.relative_position_embedding = nn.Parameter(torch.empty(self.num_heads, side, side))
            nn.init.normal_(self.relative_position_embedding, std=0.02)

    def _position_bias(self, height: int, width: int) -> torch.Tensor:
        table = self.relative_position_embedding
        if table.shape[-2:] != (2 * height - 1, 2 * width - 1):
            # bilinear with half-pixel centers, as tf.image.resize
            table = F.interpolate(table[None], size=(2 * height - 1, 2 * width - 1), mode="bilinear")[0]
        rows = torch.arange(height, device=table.device)
        cols = torch.arange(width, device=table.device)
        dy = rows[None, :] - rows[:, None] + height - 1  # [query row, key row]
        dx = cols[None, :] - cols[:, None] + width - 1
        bias = table[:, dy[:, None, :, None], dx[None, :, None, :]]  # (heads, i, j, x, y)
        return bias.reshape(self.num_heads, height * width, height * width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, height, width, channels = x.shape
        x = x.reshape(n, height * width, channels)
        q, k, v = (
            proj(x).reshape(n, -1, self.num_heads, self.head_size).transpose(1, 2) for proj in (self.q, self.k, self.v)
        )
        bias = None
        if self.relative_position_embedding is not None:
            bias = self._position_bias(height, width).to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.o(out.transpose(1, 2).reshape(n, height * width, -1)).reshape(n, height, width, channels)


class MOATBlock(MBConvBlock):
    """MBConv (without SE) followed by residual self-attention, global or in windows.

    Parameters
    ----------
    in_channels, out_channels, stride, expansion_rate, pool_size, drop_path_rate
        As for :class:`MBConvBlock`.
    head_size, position_embedding_size
        As for :class:`RelativeAttention`.
    window_size : tuple of int, optional
        ``(height, width)`` of attention windows; None attends over the whole map.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        head_size: int = 32,
        position_embedding_size: int | None = None,
        window_size: tuple[int, int] | None = None,
        **mbconv_kwargs: Any,
    ) -> None:
        super().__init__(in_channels, out_channels, se_ratio=None, **mbconv_kwargs)
        self.window_size = window_size
        self.attention_norm = nn.LayerNorm(out_channels, eps=_LN_EPS)
        self.attention = RelativeAttention(
            out_channels, head_size=head_size, position_embedding_size=position_embedding_size
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x).permute(0, 2, 3, 1)  # channels last for LayerNorm and attention
        n, height, width, channels = x.shape
        wh, ww = self.window_size or (height, width)
        if height % wh or width % ww:
            raise ValueError(
                f"MOATBlock's attention windows {(wh, ww)} must tile its feature map; got {(height, width)}."
            )
        y = self.attention_norm(x).reshape(n, height // wh, wh, width // ww, ww, channels)
        y = y.transpose(2, 3).reshape(-1, wh, ww, channels)
        y = self.attention(y).reshape(n, height // wh, width // ww, wh, ww, channels).transpose(2, 3)
        x = x + self.drop_path(y.reshape(n, height, width, channels))
        return x.permute(0, 3, 1, 2)


class MOAT(nn.Module):
    """MOAT backbone and classifier.

    ``stages.0`` .. ``stages.3`` output feature maps of shape
    ``(n_samples, hidden_sizes[i], H / 2 ** (i + 2), W / 2 ** (i + 2))``
    (stages 1-2 MBConv, stages 3-4 MOAT blocks); ``stem`` outputs stride 2.

    Parameters
    ----------
    stem_sizes : sequence of int
        Output channels of the stem's 3x3 convolutions (the first has stride 2).
    num_blocks, hidden_sizes : sequence of int
        Depth and width of the four stages.
    position_embedding : bool
        Learn relative position biases in the attention (the "w/ PE" checkpoints).
    window_sizes : sequence of (tuple of int or None)
        Attention windows of stages 3 and 4 (the first two entries are unused);
        None (the released classifiers) attends globally.
    pool_size : int
        Kernel of the shortcut average pooling of downsampling blocks (3 in the
        authors' ``get_model``).
    expansion_rate, se_ratio, head_size
        Block hyper-parameters (4, 0.25, 32 in all released models).
    in_chans, num_classes : int
        Input channels and classifier outputs (0 for no classifier).
    drop_path_rate : float
        Stochastic depth, growing linearly with the block index from 0.
    """

    def __init__(
        self,
        stem_sizes: Sequence[int] = (64, 64),
        num_blocks: Sequence[int] = (2, 3, 7, 2),
        hidden_sizes: Sequence[int] = (96, 192, 384, 768),
        *,
        position_embedding: bool = True,
        window_sizes: Sequence[tuple[int, int] | None] = (None, None, None, None),
        pool_size: int = 3,
        expansion_rate: int = 4,
        se_ratio: float = 0.25,
        head_size: int = 32,
        in_chans: int = 3,
        num_classes: int = 1000,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        stem: OrderedDict[str, nn.Module] = OrderedDict()
        channels = in_chans
        for i, size in enumerate(stem_sizes):
            stem[f"conv_{i}"] = _conv_same(channels, size, 3, stride=2 if i == 0 else 1, bias=True)
            if i < len(stem_sizes) - 1:
                stem[f"norm_{i}"] = _batch_norm(size)
                stem[f"act_{i}"] = nn.GELU()
            channels = size
        self.stem = nn.Sequential(stem)
        self.hidden_sizes = list(hidden_sizes)
        self.num_features = hidden_sizes[-1]
        total, index = sum(num_blocks), 0
        self.stages = nn.ModuleList()
        for stage, (depth, width) in enumerate(zip(num_blocks, hidden_sizes)):
            blocks = []
            for j in range(depth):
                common = dict(
                    stride=2 if j == 0 else 1,
                    expansion_rate=expansion_rate,
                    pool_size=pool_size,
                    drop_path_rate=drop_path_rate * index / total,
                )
                if stage < 2:
                    blocks.append(MBConvBlock(channels, width, se_ratio=se_ratio, **common))
                else:
                    pe_size = _POSITION_EMBEDDING_SIZES[stage] if position_embedding else None
                    blocks.append(
                        MOATBlock(
                            channels,
                            width,
                            head_size=head_size,
                            position_embedding_size=pe_size,
                            window_size=window_sizes[stage],
                            **common,
                        )
                    )
                channels, index = width, index + 1
            self.stages.append(nn.Sequential(*blocks))
        self.final_layer_norm = nn.LayerNorm(self.num_features, eps=_LN_EPS)
        self.logits_head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        init_weights_(self, truncated=False)  # deeplab2 draws kernels from an untruncated N(0, 0.02)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Last stage's map, tensor of shape ``(n_samples, num_features, H / 32, W / 32)``."""
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Global average pool, final LayerNorm and classifier."""
        return self.logits_head(self.final_layer_norm(x.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
