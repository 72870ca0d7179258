"""MOAT: alternating mobile convolution and attention.

Yang et al., "MOAT: Alternating Mobile Convolution and Attention Brings Strong
Vision Models", ICLR 2023 (arXiv:2210.01820).

This module registers the nine released MOAT models (MOAT-0 to 4 and
tiny-MOAT-0 to 3, with position embedding) and builds them on demand; the model
lives in :mod:`._moat_model` and the conversion of the authors' TensorFlow
checkpoints, which the specs name as their ``checkpoint_filter``, in
:mod:`._moat_tf`, so registering them imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..registry import IMAGENET_MEAN, IMAGENET_STD, BackboneSpec, register_backbone

if TYPE_CHECKING:
    from ._moat_model import MOAT

__all__ = [
    "moat_0",
    "moat_1",
    "moat_2",
    "moat_3",
    "moat_4",
    "tiny_moat_0",
    "tiny_moat_1",
    "tiny_moat_2",
    "tiny_moat_3",
]


def _moat(stem_sizes: Sequence[int], num_blocks: Sequence[int], hidden_sizes: Sequence[int], **kwargs: Any) -> MOAT:
    from ._moat_model import MOAT

    return MOAT(stem_sizes, num_blocks, hidden_sizes, **kwargs)


def moat_0(**kwargs: Any) -> MOAT:
    """MOAT-0 (27.8M parameters); kwargs (e.g. ``position_embedding=False``) go to :class:`MOAT`."""
    return _moat((64, 64), (2, 3, 7, 2), (96, 192, 384, 768), **kwargs)


def moat_1(**kwargs: Any) -> MOAT:
    """MOAT-1 (41.6M parameters)."""
    return _moat((64, 64), (2, 6, 14, 2), (96, 192, 384, 768), **kwargs)


def moat_2(**kwargs: Any) -> MOAT:
    """MOAT-2 (73.4M parameters)."""
    return _moat((128, 128), (2, 6, 14, 2), (128, 256, 512, 1024), **kwargs)


def moat_3(**kwargs: Any) -> MOAT:
    """MOAT-3 (190.0M parameters)."""
    return _moat((160, 160), (2, 12, 28, 2), (160, 320, 640, 1280), **kwargs)


def moat_4(**kwargs: Any) -> MOAT:
    """MOAT-4 (483.2M parameters)."""
    return _moat((256, 256), (2, 12, 28, 2), (256, 512, 1024, 2048), **kwargs)


def tiny_moat_0(**kwargs: Any) -> MOAT:
    """tiny-MOAT-0 (3.4M parameters)."""
    return _moat((32, 32), (2, 3, 7, 2), (32, 64, 128, 256), **kwargs)


def tiny_moat_1(**kwargs: Any) -> MOAT:
    """tiny-MOAT-1 (5.1M parameters)."""
    return _moat((40, 40), (2, 3, 7, 2), (40, 80, 160, 320), **kwargs)


def tiny_moat_2(**kwargs: Any) -> MOAT:
    """tiny-MOAT-2 (9.8M parameters)."""
    return _moat((56, 56), (2, 3, 7, 2), (56, 112, 224, 448), **kwargs)


def tiny_moat_3(**kwargs: Any) -> MOAT:
    """tiny-MOAT-3 (19.5M parameters)."""
    return _moat((80, 80), (2, 3, 7, 2), (80, 160, 320, 640), **kwargs)


_CITATION = (
    "Yang, C., Qiao, S., Yu, Q., Yuan, X., Zhu, Y., Yuille, A., Adam, H., Chen, L.-C. (2023). MOAT: "
    "Alternating mobile convolution and attention brings strong vision models. ICLR 2023. arXiv:2210.01820."
)
_URL = "https://storage.googleapis.com/gresearch/tf-deeplab/checkpoint/{}_w_position_embedding.tar.gz"
# name -> (checkpoint stem in deeplab2's MOAT model zoo, input size, training data, normalization)
_HALF = (0.5, 0.5, 0.5)
_RELEASES = {
    "moat_0": ("moat0_imagenet_1k_224", 224, "ImageNet-1k", IMAGENET_MEAN, IMAGENET_STD),
    "moat_1": ("moat1_imagenet_1k_224", 224, "ImageNet-1k", IMAGENET_MEAN, IMAGENET_STD),
    "moat_2": ("moat2_imagenet_22k_and_1k_384", 384, "ImageNet-22k + 1k", _HALF, _HALF),
    "moat_3": ("moat3_imagenet_22k_and_1k_512", 512, "ImageNet-22k + 1k", _HALF, _HALF),
    "moat_4": ("moat4_imagenet_22k_and_1k_512", 512, "ImageNet-22k + 1k", _HALF, _HALF),
    "tiny_moat_0": ("tiny_moat0_imagenet_1k_256", 256, "ImageNet-1k", IMAGENET_MEAN, IMAGENET_STD),
    "tiny_moat_1": ("tiny_moat1_imagenet_1k_256", 256, "ImageNet-1k", IMAGENET_MEAN, IMAGENET_STD),
    "tiny_moat_2": ("tiny_moat2_imagenet_1k_256", 256, "ImageNet-1k", IMAGENET_MEAN, IMAGENET_STD),
    "tiny_moat_3": ("tiny_moat3_imagenet_1k_256", 256, "ImageNet-1k", IMAGENET_MEAN, IMAGENET_STD),
}

for _name, (_stem, _size, _data, _mean, _std) in _RELEASES.items():
    register_backbone(
        BackboneSpec(
            name=_name,
            source="neurodec",
            model_id=f"{__name__}:{_name}",
            pretrained=_URL.format(_stem),
            input_size=_size,
            mean=_mean,
            std=_std,
            interpolation="bicubic",
            # The authors do not document their evaluation crop; these are the usual
            # choices for 224/256 px training and for 384/512 px fine-tuning.
            crop_pct=0.875 if _size <= 256 else 1.0,
            layers=("stages.0", "stages.1", "stages.2", "stages.3"),
            checkpoint_filter="neurodec.backbones.archs._moat_tf:convert_tf_checkpoint",
            license="Apache-2.0",
            citation=_CITATION,
            description=(
                f"MOAT mobile-convolution + attention network ({_name}, with position embedding), trained "
                f"on {_data}. The release is a TensorFlow checkpoint: read it into a name -> array dict."
            ),
        )
    )
