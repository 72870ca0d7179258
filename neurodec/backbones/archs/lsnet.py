"""LSNet: See Large, Focus Small (Wang et al., CVPR 2025).

Lightweight ConvNet whose LS convolution perceives context with a large
depthwise kernel and aggregates it with a small, per-pixel dynamic kernel.
The model lives in :mod:`._lsnet_model`; this module registers the released
variants (plain and distilled) and builds them on demand, so registering them
imports nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..registry import BackboneSpec, register_backbone

if TYPE_CHECKING:
    from ._lsnet_model import LSNet

__all__ = ["lsnet_b", "lsnet_b_distill", "lsnet_s", "lsnet_s_distill", "lsnet_t", "lsnet_t_distill"]

_CONFIGS = {
    "t": {"embed_dim": (64, 128, 256, 384), "depth": (0, 2, 8, 10), "num_heads": (3, 3, 3, 4)},
    "s": {"embed_dim": (96, 192, 320, 448), "depth": (1, 2, 8, 10), "num_heads": (3, 3, 3, 4)},
    "b": {"embed_dim": (128, 256, 384, 512), "depth": (4, 6, 8, 10), "num_heads": (3, 3, 3, 4)},
}
_CITATION = (
    "Wang, A., Chen, H., Lin, Z., Han, J., Ding, G. (2025). LSNet: See Large, Focus Small. "
    "In Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR). "
    "arXiv:2503.23135."
)
_WEIGHTS = "https://huggingface.co/jameslahm/lsnet/resolve/main/lsnet_{}.pth"


def _build(size: str, *, distillation: bool, img_size: int, num_classes: int) -> LSNet:
    from ._lsnet_model import LSNet

    return LSNet(**_CONFIGS[size], img_size=img_size, num_classes=num_classes, distillation=distillation)


def lsnet_t(*, img_size: int = 224, num_classes: int = 1000) -> LSNet:
    """LSNet-T (11.4 M parameters, 0.3 GFLOPs at 224)."""
    return _build("t", distillation=False, img_size=img_size, num_classes=num_classes)


def lsnet_s(*, img_size: int = 224, num_classes: int = 1000) -> LSNet:
    """LSNet-S (16.1 M parameters, 0.5 GFLOPs at 224)."""
    return _build("s", distillation=False, img_size=img_size, num_classes=num_classes)


def lsnet_b(*, img_size: int = 224, num_classes: int = 1000) -> LSNet:
    """LSNet-B (23.2 M parameters, 1.3 GFLOPs at 224)."""
    return _build("b", distillation=False, img_size=img_size, num_classes=num_classes)


def lsnet_t_distill(*, img_size: int = 224, num_classes: int = 1000) -> LSNet:
    """LSNet-T with the distillation head of the ``lsnet_t_distill`` release."""
    return _build("t", distillation=True, img_size=img_size, num_classes=num_classes)


def lsnet_s_distill(*, img_size: int = 224, num_classes: int = 1000) -> LSNet:
    """LSNet-S with the distillation head of the ``lsnet_s_distill`` release."""
    return _build("s", distillation=True, img_size=img_size, num_classes=num_classes)


def lsnet_b_distill(*, img_size: int = 224, num_classes: int = 1000) -> LSNet:
    """LSNet-B with the distillation head of the ``lsnet_b_distill`` release."""
    return _build("b", distillation=True, img_size=img_size, num_classes=num_classes)


for _size, _top1 in (("t", "74.9/76.1"), ("s", "77.8/79.0"), ("b", "80.3/81.6")):
    for _suffix, _how in (("", "trained on ImageNet-1k"), ("_distill", "distilled from a RegNetY-16GF teacher")):
        register_backbone(
            BackboneSpec(
                name=f"lsnet_{_size}{_suffix}",
                source="neurodec",
                model_id=f"neurodec.backbones.archs.lsnet:lsnet_{_size}{_suffix}",
                pretrained=_WEIGHTS.format(f"{_size}{_suffix}"),
                input_size=224,
                crop_pct=0.9,
                layers=("blocks1", "blocks2", "blocks3", "blocks4"),
                license="unspecified (THU-MIG/lsnet ships no licence file)",
                citation=_CITATION,
                description=(
                    f"LSNet-{_size.upper()}, {_how} (top-1 {_top1.split('/')[bool(_suffix)]}%); "
                    "stages at strides 8, 16, 32, 64."
                ),
            )
        )
