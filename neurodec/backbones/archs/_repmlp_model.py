"""RepMLPNet (Ding et al., CVPR 2022) in plain torch: a hierarchical vision MLP.

Ding et al., "RepMLPNet: Hierarchical Vision MLP with Re-parameterized
Locality", CVPR 2022 (arXiv:2112.11081).

Each stage cuts its feature map into non-overlapping ``h x w`` partitions and
mixes the positions of every partition with one fully connected layer
(``fc3``, shared by the channels of a "share set"), gated by a global
perceptron. During training, depth-wise 1x1 and 3x3 convolution branches with
BatchNorm run beside the FC to inject locality; for inference they are merged
into the FC ("Locality Injection", :meth:`RepMLPNet.locality_injection`), which
gives the same outputs at the plain MLP's cost.

Parameter names follow the authors' release (github.com/DingXiaoH/RepMLP).
Their checkpoints hold training-time weights (build with ``deploy=False``, the
default), possibly nested under ``"model"``, which the backbone loader unwraps
(:func:`neurodec.backbones.checkpoints.unwrap_state_dict`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FFNBlock", "GlobalPerceptron", "RepMLPBlock", "RepMLPNet", "RepMLPNetUnit"]


def _conv_bn(
    in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, groups: int = 1, relu: bool = False
) -> nn.Sequential:
    """Bias-free convolution + BatchNorm (+ ReLU), named ``conv``, ``bn``, ``relu`` as in the release."""
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv=nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2 if stride == 1 else 0,
            groups=groups,
            bias=False,
        ),
        bn=nn.BatchNorm2d(out_channels),
    )
    if relu:
        layers["relu"] = nn.ReLU()
    return nn.Sequential(layers)


def _fuse_bn(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm into the bias-free layer before it.

    ``weight`` has one row per output unit; when there are more rows than BN
    channels, consecutive blocks of rows share a channel (the FC's outputs of
    one share set).
    """
    std = (bn.running_var + bn.eps).sqrt()
    scale = bn.weight / std
    bias = bn.bias - bn.running_mean * scale
    repeats = weight.shape[0] // scale.numel()
    scale, bias = scale.repeat_interleave(repeats), bias.repeat_interleave(repeats)
    return weight * scale.reshape(-1, *([1] * (weight.dim() - 1))), bias


class GlobalPerceptron(nn.Module):
    """Channel gate from the globally pooled input (squeeze-and-excitation style)."""

    def __init__(self, input_channels: int, internal_neurons: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(input_channels, internal_neurons, kernel_size=1)
        self.fc2 = nn.Conv2d(internal_neurons, input_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


class RepMLPBlock(nn.Module):
    """Partition-wise FC token mixer with re-parameterizable convolution branches.

    Parameters
    ----------
    channels : int
        Input and output channels.
    h, w : int
        Partition size; feature maps must have sides that are multiples of it.
    reparam_conv_k : sequence of int
        Kernel sizes of the training-time depth-wise convolution branches.
    globalperceptron_reduce : int
        Channel reduction of the global perceptron.
    num_sharesets : int
        Number of share sets S: channel ``c`` uses the FC of share set ``c % S``.
    deploy : bool
        Build the inference-time structure (``fc3`` with bias, no BN, no branches).
    """

    def __init__(
        self,
        channels: int,
        *,
        h: int,
        w: int,
        reparam_conv_k: Sequence[int] = (1, 3),
        globalperceptron_reduce: int = 4,
        num_sharesets: int = 1,
        deploy: bool = False,
    ) -> None:
        super().__init__()
        if channels % num_sharesets:
            raise ValueError(f"num_sharesets ({num_sharesets}) must divide channels ({channels}).")
        self.C, self.S, self.h, self.w = channels, num_sharesets, h, w
        self.deploy = deploy
        self.reparam_conv_k = tuple(reparam_conv_k)
        self.gp = GlobalPerceptron(channels, channels // globalperceptron_reduce)
        n_units = num_sharesets * h * w
        self.fc3 = nn.Conv2d(n_units, n_units, kernel_size=1, groups=num_sharesets, bias=deploy)
        self.fc3_bn: nn.Module = nn.Identity() if deploy else nn.BatchNorm2d(num_sharesets)
        if not deploy:
            for k in self.reparam_conv_k:
                self.add_module(f"repconv{k}", _conv_bn(num_sharesets, num_sharesets, k, groups=num_sharesets))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, height, width = x.shape
        if height % self.h or width % self.w:
            raise ValueError(
                f"RepMLPBlock needs feature maps whose sides are multiples of its partition size "
                f"({self.h}, {self.w}); got ({height}, {width}). Feed inputs of the size the model was built for."
            )
        h_parts, w_parts = height // self.h, width // self.w
        gate = self.gp(x)
        parts = x.reshape(n, c, h_parts, self.h, w_parts, self.w).permute(0, 2, 4, 1, 3, 5)
        out = self.fc3_bn(self._fc3(parts.reshape(-1, self.S, self.h * self.w)).reshape(-1, self.S, self.h, self.w))
        if not self.deploy:
            conv_in = parts.reshape(-1, self.S, self.h, self.w)
            for k in self.reparam_conv_k:
                out = out + getattr(self, f"repconv{k}")(conv_in)
        # The same reshapes as the authors' code, so that their trained weights see the
        # same arrangement (for C > S this is not the exact inverse of the partition).
        out = out.reshape(-1, h_parts, w_parts, self.S, self.h, self.w).permute(0, 3, 1, 4, 2, 5)
        return out.reshape(n, c, height, width) * gate

    def _fc3(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ``fc3`` to ``x`` of shape (n_partitions, S, h * w).

        ``fc3`` keeps the authors' grouped 1x1 Conv2d parameters but is applied as
        a batched matrix product: the same arithmetic, 10-30x faster on CPU than a
        grouped convolution over 1x1 maps with thousands of channels.
        """
        hw = self.h * self.w
        out = torch.einsum("nsi,soi->nso", x, self.fc3.weight.view(self.S, hw, hw))
        return out if self.fc3.bias is None else out + self.fc3.bias.view(self.S, hw)

    def get_equivalent_fc3(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight and bias of one FC equal to ``fc3`` + BN + all convolution branches (eval mode)."""
        weight, bias = _fuse_bn(self.fc3.weight, self.fc3_bn)
        if not self.reparam_conv_k:
            return weight, bias
        largest = max(self.reparam_conv_k)
        kernel = torch.zeros(self.S, 1, largest, largest, dtype=weight.dtype, device=weight.device)
        kernel_bias = torch.zeros(self.S, dtype=weight.dtype, device=weight.device)
        for k in self.reparam_conv_k:
            branch = getattr(self, f"repconv{k}")
            k_weight, k_bias = _fuse_bn(branch.conv.weight, branch.bn)
            kernel = kernel + F.pad(k_weight, [(largest - k) // 2] * 4)
            kernel_bias = kernel_bias + k_bias
        # A depth-wise convolution is linear in its input: its FC matrix is its response to
        # each one-hot input position (column p = conv(e_p)), computed for all S sets at once.
        hw = self.h * self.w
        basis = torch.eye(hw, dtype=weight.dtype, device=weight.device).reshape(hw, 1, self.h, self.w)
        response = F.conv2d(basis.expand(hw, self.S, self.h, self.w), kernel, padding=largest // 2, groups=self.S)
        conv_fc = response.reshape(hw, self.S * hw).t().reshape_as(weight)
        return weight + conv_fc, bias + kernel_bias.repeat_interleave(hw)

    @torch.no_grad()
    def local_inject(self) -> None:
        """Merge BN and the convolution branches into ``fc3`` (Locality Injection), in place."""
        if self.deploy:
            return
        weight, bias = self.get_equivalent_fc3()
        fc3 = nn.Conv2d(self.fc3.in_channels, self.fc3.out_channels, kernel_size=1, groups=self.S, bias=True)
        fc3.to(device=weight.device, dtype=weight.dtype)
        fc3.weight.copy_(weight)
        fc3.bias.copy_(bias)
        self.fc3, self.fc3_bn = fc3, nn.Identity()
        for k in self.reparam_conv_k:
            delattr(self, f"repconv{k}")
        self.deploy = True


class FFNBlock(nn.Module):
    """Position-wise MLP as two 1x1 conv + BN layers with a GELU between."""

    def __init__(self, channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.ffn_fc1 = _conv_bn(channels, hidden_channels, 1)
        self.ffn_fc2 = _conv_bn(hidden_channels, channels, 1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn_fc2(self.act(self.ffn_fc1(x)))


class RepMLPNetUnit(nn.Module):
    """Pre-BN residual RepMLP block followed by a pre-BN residual 4x FFN."""

    def __init__(self, channels: int, *, ffn_expand: int = 4, **block_kwargs: Any) -> None:
        super().__init__()
        self.repmlp_block = RepMLPBlock(channels, **block_kwargs)
        self.ffn_block = FFNBlock(channels, channels * ffn_expand)
        self.prebn1 = nn.BatchNorm2d(channels)
        self.prebn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.repmlp_block(self.prebn1(x))
        return x + self.ffn_block(self.prebn2(x))


class RepMLPNet(nn.Module):
    """RepMLPNet backbone and classifier.

    ``stages.0`` .. ``stages.3`` output feature maps of shape
    ``(n_samples, channels[i], H / 2 ** (i + 2), W / 2 ** (i + 2))``. The model
    only accepts inputs whose stage maps are multiples of the partition sizes
    ``hs``/``ws`` (e.g. 224 x k pixels for the "224" variants).

    Parameters
    ----------
    num_blocks, channels, hs, ws, sharesets_nums : sequence of int
        Per stage: depth, width, partition height and width, number of share sets.
    reparam_conv_k : sequence of int
        Kernel sizes of the training-time convolution branches.
    globalperceptron_reduce : int
        Channel reduction of the global perceptrons.
    in_channels, num_classes : int
        Input channels and classifier outputs (0 for no classifier).
    patch_size : int
        Side of the stem's non-overlapping patches.
    deploy : bool
        Build the inference-time structure directly (for converted weights).
    """

    def __init__(
        self,
        num_blocks: Sequence[int] = (2, 2, 6, 2),
        channels: Sequence[int] = (64, 128, 256, 512),
        *,
        hs: Sequence[int] = (56, 28, 14, 7),
        ws: Sequence[int] = (56, 28, 14, 7),
        sharesets_nums: Sequence[int] = (1, 4, 16, 128),
        reparam_conv_k: Sequence[int] = (1, 3),
        globalperceptron_reduce: int = 4,
        in_channels: int = 3,
        num_classes: int = 1000,
        patch_size: int = 4,
        deploy: bool = False,
    ) -> None:
        super().__init__()
        lengths = {len(num_blocks), len(channels), len(hs), len(ws), len(sharesets_nums)}
        if len(lengths) != 1:
            raise ValueError("num_blocks, channels, hs, ws and sharesets_nums must have one entry per stage.")
        self.channels = list(channels)
        self.num_features = channels[-1]
        self.conv_embedding = _conv_bn(in_channels, channels[0], patch_size, stride=patch_size, relu=True)
        self.stages = nn.ModuleList()
        self.embeds = nn.ModuleList()
        for i, depth in enumerate(num_blocks):
            units = [
                RepMLPNetUnit(
                    channels[i],
                    h=hs[i],
                    w=ws[i],
                    reparam_conv_k=reparam_conv_k,
                    globalperceptron_reduce=globalperceptron_reduce,
                    num_sharesets=sharesets_nums[i],
                    deploy=deploy,
                )
                for _ in range(depth)
            ]
            self.stages.append(nn.Sequential(*units))
            if i < len(num_blocks) - 1:
                self.embeds.append(_conv_bn(channels[i], channels[i + 1], 2, stride=2, relu=True))
        self.head_norm = nn.BatchNorm2d(channels[-1])
        self.head = nn.Linear(channels[-1], num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Last stage's map, tensor of shape ``(n_samples, num_features, H / 32, W / 32)``."""
        x = self.conv_embedding(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < len(self.embeds):
                x = self.embeds[i](x)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """BatchNorm, global average pool and classifier."""
        return self.head(F.adaptive_avg_pool2d(self.head_norm(x), 1).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def locality_injection(self) -> RepMLPNet:
        """Merge every block's convolution branches into its FC (inference form); returns ``self``.

        The merged model gives the same outputs as the training-time model in
        eval mode (BatchNorm statistics are folded in), so call it after
        loading the trained weights and before extracting features.
        """
        for module in self.modules():
            if isinstance(module, RepMLPBlock):
                module.local_inject()
        return self
