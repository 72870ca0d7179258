"""HorNet: high-order spatial interactions with recursive gated convolutions.

Rao et al., "HorNet: Efficient High-Order Spatial Interactions with Recursive
Gated Convolutions", NeurIPS 2022 (arXiv:2207.14284).

This module registers the nine released HorNet models (7x7 and global-filter
variants, T/S/B trained on ImageNet-1k, L on ImageNet-22k) and builds them on
demand; the model lives in :mod:`._hornet_model`, so registering them imports
nothing heavy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..registry import BackboneSpec, register_backbone

if TYPE_CHECKING:
    from ._hornet_model import HorNet

__all__ = [
    "hornet_base_7x7",
    "hornet_base_gf",
    "hornet_large_7x7",
    "hornet_large_gf",
    "hornet_large_gf_img384",
    "hornet_small_7x7",
    "hornet_small_gf",
    "hornet_tiny_7x7",
    "hornet_tiny_gf",
]

# Spectral sizes (height, rfft width) of the global filters of stages 3 and 4:
# the feature maps of a 224 px (or 384 px) input.
_FILTERS_224 = (None, None, (14, 8), (7, 4))
_FILTERS_384 = (None, None, (24, 13), (12, 7))
# The ImageNet-22k classifier of the released HorNet-L models: the README's 209M /
# 211M / 216M parameters are matched by a 10450-class head (the ImageNet-21K-P
# winter21 label set), not by the 21841 classes of the full fall11 release.
_IN22K_CLASSES = 10450


def _hornet(base_dim: int, filter_sizes: Sequence[tuple[int, int] | None], **kwargs: Any) -> HorNet:
    from ._hornet_model import _DEPTHS, _GATE_SCALE, _ORDERS, HorNet

    return HorNet(_DEPTHS, base_dim, orders=_ORDERS, filter_sizes=filter_sizes, scale=_GATE_SCALE, **kwargs)


def hornet_tiny_7x7(**kwargs: Any) -> HorNet:
    """HorNet-T with 7x7 depth-wise gates (22M parameters); kwargs go to :class:`HorNet`."""
    return _hornet(64, (None,) * 4, **kwargs)


def hornet_tiny_gf(**kwargs: Any) -> HorNet:
    """HorNet-T with global filters in stages 3-4 (23M parameters)."""
    return _hornet(64, _FILTERS_224, **kwargs)


def hornet_small_7x7(**kwargs: Any) -> HorNet:
    """HorNet-S with 7x7 depth-wise gates (50M parameters)."""
    return _hornet(96, (None,) * 4, **kwargs)


def hornet_small_gf(**kwargs: Any) -> HorNet:
    """HorNet-S with global filters (50M parameters)."""
    return _hornet(96, _FILTERS_224, **kwargs)


def hornet_base_7x7(**kwargs: Any) -> HorNet:
    """HorNet-B with 7x7 depth-wise gates (87M parameters)."""
    return _hornet(128, (None,) * 4, **kwargs)


def hornet_base_gf(**kwargs: Any) -> HorNet:
    """HorNet-B with global filters (88M parameters)."""
    return _hornet(128, _FILTERS_224, **kwargs)


def hornet_large_7x7(**kwargs: Any) -> HorNet:
    """HorNet-L with 7x7 gates and the ImageNet-22k classifier (10450 classes) by default."""
    kwargs.setdefault("num_classes", _IN22K_CLASSES)
    return _hornet(192, (None,) * 4, **kwargs)


def hornet_large_gf(**kwargs: Any) -> HorNet:
    """HorNet-L with global filters and the ImageNet-22k classifier by default."""
    kwargs.setdefault("num_classes", _IN22K_CLASSES)
    return _hornet(192, _FILTERS_224, **kwargs)


def hornet_large_gf_img384(**kwargs: Any) -> HorNet:
    """HorNet-L with global filters sized for 384 px input and the ImageNet-22k classifier."""
    kwargs.setdefault("num_classes", _IN22K_CLASSES)
    return _hornet(192, _FILTERS_384, **kwargs)


_CITATION = (
    "Rao, Y., Zhao, W., Tang, Y., Zhou, J., Lim, S.-N., Lu, J. (2022). HorNet: Efficient high-order "
    "spatial interactions with recursive gated convolutions. NeurIPS 2022. arXiv:2207.14284."
)
_URL = "https://cloud.tsinghua.edu.cn/f/{}/?dl=1"
# name -> (checkpoint id on Tsinghua Cloud from the authors' README, input size, training data)
_RELEASES = {
    "hornet_tiny_7x7": ("bac9690c72944d19aca1", 224, "ImageNet-1k"),
    "hornet_tiny_gf": ("460e759c82324ea6bfa3", 224, "ImageNet-1k"),
    "hornet_small_7x7": ("8ef64277da0e469ea857", 224, "ImageNet-1k"),
    "hornet_small_gf": ("959603ca287d4c09ad49", 224, "ImageNet-1k"),
    "hornet_base_7x7": ("13a748487711492e9704", 224, "ImageNet-1k"),
    "hornet_base_gf": ("c212d1d8a3914b47a5c1", 224, "ImageNet-1k"),
    "hornet_large_7x7": ("c2fc23caae084a3aa73d", 224, "ImageNet-22k"),
    "hornet_large_gf": ("8600206ebdfa485f98d0", 224, "ImageNet-22k"),
    "hornet_large_gf_img384": ("eec48d5eca5a48d98fd2", 384, "ImageNet-22k, fine-tuned at 384 px"),
}

for _name, (_file_id, _size, _data) in _RELEASES.items():
    register_backbone(
        BackboneSpec(
            name=_name,
            source="neurodec",
            model_id=f"{__name__}:{_name}",
            pretrained=_URL.format(_file_id),
            input_size=_size,
            interpolation="bicubic",
            # The authors' evaluation resizes by 256/224 then crops, but warps 384 px input without cropping.
            crop_pct=0.875 if _size < 384 else 1.0,
            layers=("stages.0", "stages.1", "stages.2", "stages.3"),
            license="MIT",
            citation=_CITATION,
            description=f"HorNet recursive gated convolution network ({_name}), trained on {_data}.",
        )
    )
