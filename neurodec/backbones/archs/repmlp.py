"""RepMLPNet: a hierarchical vision MLP with re-parameterized locality.

Ding et al., "RepMLPNet: Hierarchical Vision MLP with Re-parameterized
Locality", CVPR 2022 (arXiv:2112.11081).

This module registers the six released RepMLPNet models (T/B at 224 px,
T/B/D/L at 256 px, ImageNet-1k) and builds them on demand; the model lives in
:mod:`._repmlp_model`, so registering them imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..registry import BackboneSpec, register_backbone

if TYPE_CHECKING:
    from ._repmlp_model import RepMLPNet

__all__ = [
    "repmlpnet_b224",
    "repmlpnet_b256",
    "repmlpnet_d256",
    "repmlpnet_l256",
    "repmlpnet_t224",
    "repmlpnet_t256",
]


def _repmlpnet(
    channels: Sequence[int], num_blocks: Sequence[int], sharesets: Sequence[int], resolution: int, **kwargs: Any
) -> RepMLPNet:
    from ._repmlp_model import RepMLPNet

    # Partitions are the stage maps of a `resolution` px input (1/4 ... 1/32 of it).
    sizes = [resolution // 4 // 2**i for i in range(4)]
    return RepMLPNet(num_blocks, channels, hs=sizes, ws=sizes, sharesets_nums=sharesets, **kwargs)


def repmlpnet_t224(**kwargs: Any) -> RepMLPNet:
    """RepMLPNet-T for 224 px input; kwargs (e.g. ``deploy``) go to :class:`RepMLPNet`."""
    return _repmlpnet((64, 128, 256, 512), (2, 2, 6, 2), (1, 4, 16, 128), 224, **kwargs)


def repmlpnet_t256(**kwargs: Any) -> RepMLPNet:
    """RepMLPNet-T for 256 px input."""
    return _repmlpnet((64, 128, 256, 512), (2, 2, 6, 2), (1, 4, 16, 128), 256, **kwargs)


def repmlpnet_b224(**kwargs: Any) -> RepMLPNet:
    """RepMLPNet-B for 224 px input."""
    return _repmlpnet((96, 192, 384, 768), (2, 2, 12, 2), (1, 4, 32, 128), 224, **kwargs)


def repmlpnet_b256(**kwargs: Any) -> RepMLPNet:
    """RepMLPNet-B for 256 px input."""
    return _repmlpnet((96, 192, 384, 768), (2, 2, 12, 2), (1, 4, 32, 128), 256, **kwargs)


def repmlpnet_d256(**kwargs: Any) -> RepMLPNet:
    """RepMLPNet-D (deeper, narrower) for 256 px input."""
    return _repmlpnet((80, 160, 320, 640), (2, 2, 18, 2), (1, 4, 16, 128), 256, **kwargs)


def repmlpnet_l256(**kwargs: Any) -> RepMLPNet:
    """RepMLPNet-L for 256 px input."""
    return _repmlpnet((96, 192, 384, 768), (2, 2, 18, 2), (1, 4, 32, 256), 256, **kwargs)


_CITATION = (
    "Ding, X., Chen, H., Zhang, X., Han, J., Ding, G. (2022). RepMLPNet: Hierarchical vision MLP with "
    "re-parameterized locality. CVPR 2022, 578-587. arXiv:2112.11081."
)
# name -> (Google Drive file id of the training-time checkpoint in the authors' README, input size)
_RELEASES = {
    "repmlpnet_t224": ("1TgPDD78G-d3h_Y_vNTuqYdSJZHmnju7b", 224),
    "repmlpnet_b224": ("1GwoUvxGXgzKArlCf0V9kvc9_3GtkGltp", 224),
    "repmlpnet_t256": ("1mU0L76x20eAKzkHxEM7J2BvEOLWx_mux", 256),
    "repmlpnet_b256": ("1W-__gXE7903cX-gOSXEGxNBCJjvqFCiJ", 256),
    "repmlpnet_d256": ("1e5IYac0UHnJq2_lzbuE7J4rahMENX2ha", 256),
    "repmlpnet_l256": ("1SHhNJ6pZax9qMLm8DJZtQ_XfmcmddPYU", 256),
}

for _name, (_file_id, _size) in _RELEASES.items():
    register_backbone(
        BackboneSpec(
            name=_name,
            source="neurodec",
            model_id=f"{__name__}:{_name}",
            pretrained=f"https://drive.google.com/file/d/{_file_id}/view",
            input_size=_size,
            # The authors evaluate by resizing the short side to the input size and center cropping.
            interpolation="bilinear",
            crop_pct=1.0,
            layers=("stages.0", "stages.1", "stages.2", "stages.3"),
            license="MIT",
            citation=_CITATION,
            description=(
                f"RepMLPNet MLP with re-parameterized locality ({_name}), ImageNet-1k; inputs must be "
                f"{_size} px (or multiples). Call locality_injection() for the merged inference form."
            ),
        )
    )
