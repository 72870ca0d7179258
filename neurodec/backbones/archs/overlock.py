"""OverLoCK: an overview-first-look-closely-next ConvNet with context-mixing dynamic kernels.

Lou & Yu, CVPR 2025. A Base-Net encodes low/mid-level features, a light
Overview-Net produces a coarse global context, and a Focus-Net of ContMix
blocks looks closely under that top-down guidance. The model lives in
:mod:`._overlock_model`; this module registers the released ImageNet-1k
variants (original and re-parameterized) and builds them on demand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..registry import BackboneSpec, register_backbone

if TYPE_CHECKING:
    from ._overlock_model import OverLoCK

__all__ = [
    "overlock_b", "overlock_b_reparam", "overlock_s", "overlock_s_reparam",
    "overlock_t", "overlock_t_reparam", "overlock_xt", "overlock_xt_reparam",
]  # fmt: skip

_CONFIGS = {
    "xt": {"depth": (2, 2, 3, 2), "sub_depth": (6, 2), "embed_dim": (56, 112, 256, 336), "sub_num_heads": (4, 6)},
    "t": {"depth": (4, 4, 6, 2), "sub_depth": (12, 2), "embed_dim": (64, 128, 256, 512), "sub_num_heads": (4, 8)},
    "s": {"depth": (6, 6, 8, 3), "sub_depth": (16, 3), "embed_dim": (64, 128, 320, 512), "sub_num_heads": (8, 16)},
    "b": {"depth": (8, 8, 10, 4), "sub_depth": (20, 4), "embed_dim": (80, 160, 384, 576), "sub_num_heads": (6, 9)},
}
_CITATION = (
    "Lou, M., Yu, Y. (2025). OverLoCK: An Overview-first-Look-Closely-next ConvNet with Context-Mixing "
    "Dynamic Kernels. In Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition "
    "(CVPR), 128-138. arXiv:2502.20087."
)
_WEIGHTS = "https://github.com/LMMMEng/OverLoCK/releases/download/v1/overlock_{}_in1k_224{}.pth"


def _build(size: str, *, deploy: bool, num_classes: int, drop_path_rate: float) -> OverLoCK:
    from ._overlock_model import OverLoCK

    return OverLoCK(**_CONFIGS[size], kernel_size=(17, 15, 13, 7), num_classes=num_classes,
                    drop_path_rate=drop_path_rate, deploy=deploy)


def overlock_xt(*, num_classes: int = 1000, drop_path_rate: float = 0.0) -> OverLoCK:
    """OverLoCK-XT (16 M parameters, 2.6 GFLOPs at 224)."""
    return _build("xt", deploy=False, num_classes=num_classes, drop_path_rate=drop_path_rate)


def overlock_t(*, num_classes: int = 1000, drop_path_rate: float = 0.0) -> OverLoCK:
    """OverLoCK-T (33 M parameters, 5.5 GFLOPs at 224)."""
    return _build("t", deploy=False, num_classes=num_classes, drop_path_rate=drop_path_rate)


def overlock_s(*, num_classes: int = 1000, drop_path_rate: float = 0.0) -> OverLoCK:
    """OverLoCK-S (56 M parameters, 9.7 GFLOPs at 224)."""
    return _build("s", deploy=False, num_classes=num_classes, drop_path_rate=drop_path_rate)


def overlock_b(*, num_classes: int = 1000, drop_path_rate: float = 0.0) -> OverLoCK:
    """OverLoCK-B (95 M parameters, 16.7 GFLOPs at 224)."""
    return _build("b", deploy=False, num_classes=num_classes, drop_path_rate=drop_path_rate)


def overlock_xt_reparam(*, num_classes: int = 1000) -> OverLoCK:
    """OverLoCK-XT with merged large kernels (the ``_reparam`` release; inference only)."""
    return _build("xt", deploy=True, num_classes=num_classes, drop_path_rate=0.0)


def overlock_t_reparam(*, num_classes: int = 1000) -> OverLoCK:
    """OverLoCK-T with merged large kernels (the ``_reparam`` release; inference only)."""
    return _build("t", deploy=True, num_classes=num_classes, drop_path_rate=0.0)


def overlock_s_reparam(*, num_classes: int = 1000) -> OverLoCK:
    """OverLoCK-S with merged large kernels (the ``_reparam`` release; inference only)."""
    return _build("s", deploy=True, num_classes=num_classes, drop_path_rate=0.0)


def overlock_b_reparam(*, num_classes: int = 1000) -> OverLoCK:
    """OverLoCK-B with merged large kernels (the ``_reparam`` release; inference only)."""
    return _build("b", deploy=True, num_classes=num_classes, drop_path_rate=0.0)


for _size, _top1, _crop in (("xt", 82.7, 0.925), ("t", 84.2, 0.95), ("s", 84.8, 0.95), ("b", 85.1, 0.975)):
    for _suffix in ("", "_reparam"):
        register_backbone(
            BackboneSpec(
                name=f"overlock_{_size}{_suffix}",
                source="neurodec",
                model_id=f"neurodec.backbones.archs.overlock:overlock_{_size}{_suffix}",
                pretrained=_WEIGHTS.format(_size, _suffix),
                input_size=224,
                crop_pct=_crop,
                layers=("blocks1", "blocks2", "blocks3", "blocks4", "sub_blocks3", "sub_blocks4"),
                license="Apache-2.0",
                citation=_CITATION,
                description=(
                    f"OverLoCK-{_size.upper()}{' (re-parameterized)' if _suffix else ''}, ImageNet-1k "
                    f"(top-1 {_top1}%); Base-Net at strides 4-16, Overview-Net (blocks4) at 32, "
                    "Focus-Net (sub_blocks3, sub_blocks4) at 16 and 32."
                ),
            )
        )
