"""LSNet (Wang et al., CVPR 2025, "LSNet: See Large, Focus Small") in plain torch.

Module and parameter names follow the authors' release (THU-MIG/lsnet,
``model/lsnet.py``) so their checkpoints load with ``load_state_dict``. The
small-kernel aggregation, a Triton kernel there, is
:func:`~neurodec.backbones.archs._dynamic_conv.small_kernel_aggregate` here.

Shapes: a ``224 x 224`` image gives stage maps at strides 8, 16, 32 and 64
(``28, 14, 7, 4`` pixels). Stages 1-3 alternate a RepVGG depthwise block (+SE)
with an LS convolution; stage 4 replaces the LS convolution with attention
whose relative position biases are tied to the stage's resolution, so the
model is built for one input size (``img_size``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from ._dynamic_conv import small_kernel_aggregate
from ._layers import timm_layers

__all__ = ["LSNet"]


class Conv2d_BN(nn.Sequential):  # noqa: N801 (the release's class name fixes the "c"/"bn" keys)
    """Convolution without bias followed by batch norm (keys ``c``, ``bn``)."""

    def __init__(self, a: int, b: int, ks: int = 1, stride: int = 1, pad: int = 0, groups: int = 1,
                 *, bn_weight_init: float = 1.0) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(a, b, ks, stride, pad, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(b))
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)


class BN_Linear(nn.Sequential):  # noqa: N801
    """Batch norm then linear classifier (keys ``bn``, ``l``)."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__()
        self.add_module("bn", nn.BatchNorm1d(a))
        self.add_module("l", nn.Linear(a, b))
        nn.init.trunc_normal_(self.l.weight, std=0.02)
        nn.init.zeros_(self.l.bias)


class Residual(nn.Module):
    """``x + m(x)`` (key ``m``)."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.m(x)


class FFN(nn.Module):
    """Pointwise expansion, ReLU, pointwise projection."""

    def __init__(self, ed: int, h: int) -> None:
        super().__init__()
        self.pw1 = Conv2d_BN(ed, h)
        self.act = nn.ReLU()
        self.pw2 = Conv2d_BN(h, ed, bn_weight_init=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw2(self.act(self.pw1(x)))


class RepVGGDW(nn.Module):
    """3x3 and 1x1 depthwise convolutions plus identity (re-parameterizable)."""

    def __init__(self, ed: int) -> None:
        super().__init__()
        self.conv = Conv2d_BN(ed, ed, 3, 1, 1, groups=ed)
        self.conv1 = Conv2d_BN(ed, ed, 1, 1, 0, groups=ed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.conv1(x) + x


class Attention(nn.Module):
    """Multi-head self-attention with a depthwise-convolved query and learned 2-D position biases."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float, resolution: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = key_dim**-0.5
        self.nh_kd = key_dim * num_heads
        self.dh = int(attn_ratio * key_dim) * num_heads
        self.resolution = resolution
        self.qkv = Conv2d_BN(dim, self.dh + 2 * self.nh_kd)
        self.proj = nn.Sequential(nn.ReLU(), Conv2d_BN(self.dh, dim, bn_weight_init=0.0))
        self.dw = Conv2d_BN(self.nh_kd, self.nh_kd, 3, 1, 1, groups=self.nh_kd)
        # One bias per head and absolute (|dy|, |dx|) offset between two pixels.
        points = list(itertools.product(range(resolution), range(resolution)))
        offsets: dict[tuple[int, int], int] = {}
        idxs = []
        for p1 in points:
            for p2 in points:
                idxs.append(offsets.setdefault((abs(p1[0] - p2[0]), abs(p1[1] - p2[1])), len(offsets)))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, len(offsets)))
        self.register_buffer("attention_bias_idxs", torch.tensor(idxs, dtype=torch.long).view(len(points), -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        if (h, w) != (self.resolution, self.resolution):
            raise ValueError(
                f"LSNet's last-stage attention was built for {self.resolution}x{self.resolution} maps "
                f"(the img_size the model was built with). Got {h}x{w}; rebuild with the matching img_size."
            )
        q, k, v = self.qkv(x).split([self.nh_kd, self.nh_kd, self.dh], dim=1)
        q = self.dw(q).view(b, self.num_heads, -1, h * w)
        k = k.reshape(b, self.num_heads, -1, h * w)
        v = v.reshape(b, self.num_heads, -1, h * w)
        attn = q.transpose(-2, -1) @ k * self.scale + self.attention_biases[:, self.attention_bias_idxs]
        x = (v @ attn.softmax(dim=-1).transpose(-2, -1)).reshape(b, -1, h, w)
        return self.proj(x)


class LKP(nn.Module):
    """Large-kernel perception: predicts a ``sks x sks`` kernel per pixel and channel group."""

    def __init__(self, dim: int, lks: int, sks: int, groups: int) -> None:
        super().__init__()
        self.cv1 = Conv2d_BN(dim, dim // 2)
        self.act = nn.ReLU()
        self.cv2 = Conv2d_BN(dim // 2, dim // 2, ks=lks, pad=(lks - 1) // 2, groups=dim // 2)
        self.cv3 = Conv2d_BN(dim // 2, dim // 2)
        self.cv4 = nn.Conv2d(dim // 2, sks**2 * dim // groups, kernel_size=1)
        self.norm = nn.GroupNorm(num_groups=dim // groups, num_channels=sks**2 * dim // groups)
        self.sks = sks
        self.n_kernels = dim // groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.cv3(self.cv2(self.act(self.cv1(x)))))
        w = self.norm(self.cv4(x))
        b, _, h, width = w.shape
        return w.view(b, self.n_kernels, self.sks**2, h, width)


class LSConv(nn.Module):
    """LS convolution: large-kernel perception, small-kernel aggregation, residual."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.lkp = LKP(dim, lks=7, sks=3, groups=8)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(small_kernel_aggregate(x, self.lkp(x))) + x


class Block(nn.Module):
    """Token mixer (RepVGG-DW + SE on even depths, LS conv or attention on odd) then FFN."""

    def __init__(self, ed: int, kd: int, nh: int, ar: float, resolution: int, *, stage: int, depth: int) -> None:
        super().__init__()
        self.se: nn.Module
        if depth % 2 == 0:
            self.mixer: nn.Module = RepVGGDW(ed)
            self.se = timm_layers().SqueezeExcite(ed, 0.25)
        else:
            self.se = nn.Identity()
            self.mixer = Residual(Attention(ed, kd, nh, ar, resolution)) if stage == 3 else LSConv(ed)
        self.ffn = Residual(FFN(ed, int(ed * 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.se(self.mixer(x)))


class LSNet(nn.Module):
    """LSNet backbone and classifier.

    Parameters
    ----------
    embed_dim, depth, num_heads : sequence of int
        Width, number of blocks and attention heads of the four stages.
    img_size : int
        Input resolution; fixes the last stage's attention-bias table.
    key_dim : int
        Query/key width per head.
    num_classes : int
        Classifier outputs (0: no classifier).
    distillation : bool
        Add the second (distillation) head of the ``*_distill`` releases;
        at evaluation the two heads are averaged.

    Attributes
    ----------
    blocks1, blocks2, blocks3, blocks4 : torch.nn.Sequential
        The stages; each outputs a map of shape (n_samples, embed_dim[i], h_i, w_i)
        at stride ``8 * 2**i``.
    """

    def __init__(self, *, embed_dim: Sequence[int], depth: Sequence[int], num_heads: Sequence[int],
                 img_size: int = 224, key_dim: int = 16, num_classes: int = 1000, distillation: bool = False,
                 in_chans: int = 3) -> None:
        super().__init__()
        e0 = embed_dim[0]
        self.patch_embed = nn.Sequential(
            Conv2d_BN(in_chans, e0 // 4, 3, 2, 1), nn.ReLU(),
            Conv2d_BN(e0 // 4, e0 // 2, 3, 2, 1), nn.ReLU(),
            Conv2d_BN(e0 // 2, e0, 3, 2, 1),
        )  # fmt: skip
        resolution = -(-img_size // 8)
        stages = [nn.Sequential() for _ in range(4)]
        for i, (ed, dpth, nh) in enumerate(zip(embed_dim, depth, num_heads)):
            for d in range(dpth):
                stages[i].append(Block(ed, key_dim, nh, ed / (key_dim * nh), resolution, stage=i, depth=d))
            if i < 3:  # the next stage starts by halving the resolution
                stages[i + 1].append(Conv2d_BN(ed, ed, ks=3, stride=2, pad=1, groups=ed))
                stages[i + 1].append(Conv2d_BN(ed, embed_dim[i + 1]))
                resolution = (resolution - 1) // 2 + 1
        self.blocks1, self.blocks2, self.blocks3, self.blocks4 = stages
        self.num_features = embed_dim[-1]
        self.distillation = distillation
        self.head = BN_Linear(embed_dim[-1], num_classes) if num_classes > 0 else nn.Identity()
        if distillation:
            self.head_dist = BN_Linear(embed_dim[-1], num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map of shape (n_samples, embed_dim[-1], h / 64, w / 64) before pooling."""
        x = self.patch_embed(x)
        return self.blocks4(self.blocks3(self.blocks2(self.blocks1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = self.forward_features(x).mean((2, 3))
        if not self.distillation:
            return self.head(x)
        logits, logits_dist = self.head(x), self.head_dist(x)
        return (logits, logits_dist) if self.training else (logits + logits_dist) / 2
