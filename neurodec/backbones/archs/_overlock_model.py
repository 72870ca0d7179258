"""OverLoCK (Lou & Yu, CVPR 2025): overview first, look closely next, in plain torch.

Three sub-networks: a Base-Net (stages 1-3, strides 4-16), a light
Overview-Net (stage 4 on the Base-Net output, stride 32) whose coarse map is
top-down context, and a Focus-Net (``sub_blocks3`` at stride 16,
``sub_blocks4`` at stride 32) of ContMix blocks: dynamic convolutions whose
per-pixel kernels come from the affinity between each pixel and a 7x7 pooled
summary of the context. The release applies those kernels with NATTEN's
``na2d_av``; here :func:`~._dynamic_conv.neighborhood_aggregate` computes the
same sums. Names follow the release (LMMMEng/OverLoCK, ``models/overlock.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._dynamic_conv import neighborhood_aggregate, neighborhood_rpb_index
from ._layers import drop_path, init_weights_, layer_norm_2d
from ._lou_layers import LayerScale, check_drop_path_rate
from ._overlock_layers import (
    GRN,
    DilatedReparamBlock,
    RepConvBlock,
    ResDWConv,
    SEModule,
    Stage,
    downsample,
    resize_to,
    stem,
)

__all__ = ["OverLoCK"]


class CTXDownsample(nn.Module):
    """Halves the resolution of the focus features and of the context together."""

    def __init__(self, dim: int, h_dim: int) -> None:
        super().__init__()
        self.x_proj = downsample(dim, h_dim)
        self.h_proj = downsample(h_dim // 4, h_dim // 4)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x_proj(x), self.h_proj(ctx)


class DynamicConvBlock(nn.Module):
    """Focus-Net block: context-guided ContMix dynamic convolution, gating, GRN feed-forward.

    Its input is the focus features (``dim`` channels) and the context
    (``ctx_dim // 4`` channels); its output concatenates both, updated.
    """

    def __init__(self, dim: int, ctx_dim: int, *, kernel_size: int, smk_size: int, num_heads: int,
                 mlp_ratio: float, ls_init_value: float, drop_path_rate: float, is_first: bool,
                 deploy: bool) -> None:
        super().__init__()
        ctx_dim = ctx_dim // 4
        out_dim = dim + ctx_dim
        mlp_dim = int(dim * mlp_ratio)
        self.dim, self.ctx_dim = dim, ctx_dim
        self.kernel_size, self.smk_size = kernel_size, smk_size
        self.num_heads = num_heads * 2  # half the heads use the small kernel, half the large one
        self.scale = (dim // self.num_heads) ** -0.5
        if not is_first:  # later blocks re-inject the stage's reference context
            self.x_scale = LayerScale(ctx_dim, init_value=1)
            self.h_scale = LayerScale(ctx_dim, init_value=1)
        self.dwconv1 = ResDWConv(out_dim, kernel_size=3)
        self.norm1 = layer_norm_2d(out_dim)
        self.fusion = nn.Sequential(
            nn.Conv2d(out_dim, out_dim, 3, padding=1, groups=out_dim), nn.BatchNorm2d(out_dim), nn.GELU(),
            nn.Conv2d(out_dim, dim, 1), GRN(dim),
        )  # fmt: skip
        self.weight_query = nn.Sequential(nn.Conv2d(dim, dim // 2, 1, bias=False), nn.BatchNorm2d(dim // 2))
        self.weight_key = nn.Sequential(
            nn.AdaptiveAvgPool2d(7), nn.Conv2d(ctx_dim, dim // 2, 1, bias=False), nn.BatchNorm2d(dim // 2)
        )
        self.weight_proj = nn.Conv2d(49, kernel_size**2 + smk_size**2, 1)
        self.dyconv_proj = nn.Sequential(nn.Conv2d(dim, dim, 1, bias=False), nn.BatchNorm2d(dim))
        self.lepe = nn.Sequential(DilatedReparamBlock(dim, kernel_size, deploy=deploy), nn.BatchNorm2d(dim))
        self.se_layer = SEModule(dim)
        self.gate = nn.Sequential(nn.Conv2d(dim, dim, 1, bias=False), nn.BatchNorm2d(dim), nn.SiLU())
        self.proj = nn.Sequential(nn.BatchNorm2d(dim), nn.Conv2d(dim, out_dim, 1))
        self.dwconv2 = ResDWConv(out_dim, kernel_size=3)
        self.norm2 = layer_norm_2d(out_dim)
        self.mlp = nn.Sequential(
            nn.Conv2d(out_dim, mlp_dim, 1), nn.GELU(), ResDWConv(mlp_dim, kernel_size=3), GRN(mlp_dim),
            nn.Conv2d(mlp_dim, out_dim, 1),
        )  # fmt: skip
        self.ls1 = LayerScale(out_dim, init_value=ls_init_value)
        self.ls2 = LayerScale(out_dim, init_value=ls_init_value)
        self.drop_path = drop_path(drop_path_rate)
        # Relative position biases of the small and the large kernel, per head.
        self.rpb1 = nn.Parameter(torch.zeros(self.num_heads, 2 * smk_size - 1, 2 * smk_size - 1))
        self.rpb2 = nn.Parameter(torch.zeros(self.num_heads, 2 * kernel_size - 1, 2 * kernel_size - 1))

    def _position_bias(self, rpb: torch.Tensor, height: int, width: int, k: int) -> torch.Tensor:
        """Bias of shape (n_heads, height, width, k * k) for each pixel's shifted window."""
        rows = neighborhood_rpb_index(height, k, device=rpb.device)
        cols = neighborhood_rpb_index(width, k, device=rpb.device)
        bias = rpb[:, rows[:, None, :, None], cols[None, :, None, :]]  # (g, h, w, k, k)
        return bias.reshape(self.num_heads, height, width, k * k)

    def _contmix(self, x: torch.Tensor, x_f: torch.Tensor) -> torch.Tensor:
        """Dynamic large/small-kernel convolution of ``x`` with kernels from the fused map ``x_f``."""
        b, c, in_h, in_w = x.shape
        k, s, g = self.kernel_size, self.smk_size, self.num_heads
        h, w = in_h, in_w
        if min(h, w) < k:  # the windows need a map at least k x k: upsample, pool back afterwards
            h, w = (k, int(k / h * w)) if h < w else (int(k / w * h), k)
            x, x_f = resize_to(x, (h, w)), resize_to(x_f, (h, w))
        query, key = torch.split(x_f, [self.dim, self.ctx_dim], dim=1)
        query = (self.weight_query(query) * self.scale).reshape(b, g, -1, h * w)
        key = self.weight_key(key).reshape(b, g, -1, 49)
        affinity = torch.einsum("bgcn,bgcl->blgn", query, key)  # pixels x 49 context regions
        weight = self.weight_proj(affinity).reshape(b, s * s + k * k, g, h, w).permute(0, 2, 3, 4, 1)
        attn_small, attn_large = torch.split(weight, [s * s, k * k], dim=-1)
        attn_small = torch.softmax(attn_small + self._position_bias(self.rpb1, h, w, s), dim=-1)
        attn_large = torch.softmax(attn_large + self._position_bias(self.rpb2, h, w, k), dim=-1)
        value = x.reshape(b, 2, g, c // (2 * g), h, w).permute(1, 0, 2, 4, 5, 3)  # (2, b, g, h, w, c')
        out = torch.cat(
            [neighborhood_aggregate(attn_small, value[0], s), neighborhood_aggregate(attn_large, value[1], k)], dim=1
        )
        out = out.permute(0, 1, 4, 2, 3).reshape(b, c, h, w)
        return F.adaptive_avg_pool2d(out, (in_h, in_w)) if (h, w) != (in_h, in_w) else out

    def forward(self, x: torch.Tensor, h_x: torch.Tensor, h_r: torch.Tensor) -> torch.Tensor:
        """Features ``x``, context ``h_x`` and reference context ``h_r`` -> concatenated update."""
        if hasattr(self, "x_scale"):
            h_x = self.x_scale(h_x) + self.h_scale(h_r)
        x_f = self.dwconv1(torch.cat([x, h_x], dim=1))
        identity = x_f
        x_f = self.norm1(x_f)
        x = self.fusion(x_f)
        gate = self.gate(x)
        lepe = self.lepe(x)
        x = self.dyconv_proj(self._contmix(x, x_f)) + lepe
        x = self.proj(gate * self.se_layer(x))
        x = self.dwconv2(self.ls1(identity) + self.drop_path(x))
        return self.ls2(x) + self.drop_path(self.mlp(self.norm2(x)))


class FocusStage(nn.ModuleList):
    """Focus-Net blocks (keys ``0, 1, ...``); outputs features and context concatenated."""

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, ctx_ref: torch.Tensor) -> torch.Tensor:
        dim = x.shape[1]
        for block in self:
            out = block(x, ctx, ctx_ref)
            x, ctx = out[:, :dim], out[:, dim:]
        return out


class OverLoCK(nn.Module):
    """OverLoCK backbone and classifier.

    Parameters
    ----------
    depth : sequence of 4 int
        Blocks of the Base-Net stages 1-3 and of the Overview-Net (stage 4).
    sub_depth : sequence of 2 int
        Focus-Net blocks at strides 16 and 32.
    embed_dim : sequence of 4 int
        Stage widths.
    kernel_size : sequence of 4 int
        Large-kernel sizes per stage.
    sub_num_heads : sequence of 2 int
        ContMix head pairs of the two Focus-Net stages.
    mlp_ratio, sub_mlp_ratio : sequence of float
        Feed-forward expansions.
    num_classes : int
        Classifier outputs (0: no classifier).
    drop_path_rate : float
        Stochastic depth rate, rising linearly over blocks (training only).
    deploy : bool
        Build the re-parameterized form (merged large kernels) of the ``*_reparam`` releases.

    Attributes
    ----------
    blocks1, blocks2, blocks3 : Stage
        Base-Net stages; outputs of shape (n_samples, embed_dim[i], h / 2**(i+2), w / 2**(i+2)).
    blocks4 : Stage
        Overview-Net; output of shape (n_samples, embed_dim[3], h / 32, w / 32).
    sub_blocks3 : FocusStage
        Focus-Net at stride 16; output (n_samples, embed_dim[2] + embed_dim[3] // 4, h / 16, w / 16).
    sub_blocks4 : FocusStage
        Focus-Net at stride 32; output (n_samples, embed_dim[3] * 5 // 4, h / 32, w / 32), the classifier's input.
    """

    def __init__(self, *, depth: Sequence[int], sub_depth: Sequence[int], embed_dim: Sequence[int],
                 kernel_size: Sequence[int], sub_num_heads: Sequence[int], mlp_ratio: Sequence[float] = (4, 4, 4, 4),
                 sub_mlp_ratio: Sequence[float] = (3, 3), smk_size: int = 5, projection: int = 1024,
                 num_classes: int = 1000, drop_path_rate: float = 0.0, deploy: bool = False,
                 in_chans: int = 3) -> None:
        super().__init__()
        check_drop_path_rate(drop_path_rate, "OverLoCK")
        ls_init_value = (None, None, 1.0, 1.0)
        n_blocks = sum(depth) + sum(sub_depth)
        rates = [drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]  # as torch.linspace
        self.patch_embed1 = stem(in_chans, embed_dim[0])
        self.patch_embed2 = downsample(embed_dim[0], embed_dim[1])
        self.patch_embed3 = downsample(embed_dim[1], embed_dim[2])
        self.patch_embed4 = downsample(embed_dim[2], embed_dim[3])
        self.high_level_proj = nn.Conv2d(embed_dim[-1], embed_dim[-1] // 4, 1)
        self.patch_embedx = CTXDownsample(embed_dim[2], embed_dim[3])
        for i in range(4):
            first = sum(depth[:i])
            self.add_module(f"blocks{i + 1}", Stage(
                RepConvBlock(embed_dim[i], kernel_size=kernel_size[i], mlp_ratio=mlp_ratio[i],
                             ls_init_value=ls_init_value[i], drop_path_rate=rates[first + j], deploy=deploy)
                for j in range(depth[i])
            ))  # fmt: skip
        for i, stage in enumerate((2, 3)):
            first = sum(depth) + sum(sub_depth[:i])
            self.add_module(f"sub_blocks{stage + 1}", FocusStage(
                DynamicConvBlock(embed_dim[stage], embed_dim[-1], kernel_size=kernel_size[stage], smk_size=smk_size,
                                 num_heads=sub_num_heads[i], mlp_ratio=sub_mlp_ratio[i],
                                 ls_init_value=ls_init_value[stage], drop_path_rate=rates[first + j],
                                 is_first=(stage == 2 and j == 0), deploy=deploy)
                for j in range(sub_depth[i])
            ))  # fmt: skip
        fusion_dim = embed_dim[-1] + embed_dim[-1] // 4
        self.num_features = fusion_dim
        # Auxiliary classifier on the overview (deep supervision during training); kept so that
        # the released checkpoints, which contain it, load strictly.
        self.aux_head = nn.Sequential(
            nn.BatchNorm2d(embed_dim[-1]), nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(embed_dim[-1], num_classes, 1) if num_classes > 0 else nn.Identity(),
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.Conv2d(fusion_dim, projection, 1, bias=False), nn.BatchNorm2d(projection), nn.SiLU(),
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(projection, num_classes, 1) if num_classes > 0 else nn.Identity(),
        )  # fmt: skip
        init_weights_(self)

    def reparameterize(self) -> OverLoCK:
        """Merge every dilated large-kernel block (eval-mode equivalent, faster); returns ``self``."""
        for module in self.modules():
            if isinstance(module, DilatedReparamBlock):
                module.reparameterize()
        return self

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Focus-Net output of shape (n_samples, num_features, h / 32, w / 32)."""
        x = self.blocks3(self.patch_embed3(self.blocks2(self.patch_embed2(self.blocks1(self.patch_embed1(x))))))
        overview = self.blocks4(self.patch_embed4(x))
        ctx_ref = self.high_level_proj(overview)
        ctx_up = resize_to(ctx_ref, x.shape[2:])
        out = self.sub_blocks3(x, ctx_up, ctx_up)
        x, ctx = self.patch_embedx(out[:, : x.shape[1]], out[:, x.shape[1] :])
        return self.sub_blocks4(x, ctx, ctx_ref)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (the auxiliary head is used only in training by the release, not here)."""
        return self.head(self.forward_features(x)).flatten(1)
