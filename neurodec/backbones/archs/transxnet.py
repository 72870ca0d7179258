"""TransXNet: global and local dynamics with a dual dynamic token mixer (Lou et al., TNNLS 2025).

CNN-Transformer hybrid whose D-Mixer runs an input-dependent depthwise
convolution and overlapping spatial-reduction attention side by side. The
model lives in :mod:`._transxnet_model`; this module registers the released
ImageNet-1k variants and builds them on demand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..registry import BackboneSpec, register_backbone

if TYPE_CHECKING:
    from ._transxnet_model import TransXNet

__all__ = ["transxnet_b", "transxnet_s", "transxnet_t"]

_CONFIGS = {
    "t": {"layers": (3, 3, 9, 3), "embed_dims": (48, 96, 224, 448), "num_groups": (2, 2, 2, 2),
          "num_heads": (1, 2, 4, 8), "mlp_ratios": (4, 4, 4, 4)},
    "s": {"layers": (4, 4, 12, 4), "embed_dims": (64, 128, 320, 512), "num_groups": (2, 2, 3, 4),
          "num_heads": (1, 2, 5, 8), "mlp_ratios": (6, 6, 4, 4)},
    "b": {"layers": (4, 4, 21, 4), "embed_dims": (76, 152, 336, 672), "num_groups": (2, 2, 4, 4),
          "num_heads": (2, 4, 8, 16), "mlp_ratios": (8, 8, 4, 4)},
}  # fmt: skip
_CITATION = (
    "Lou, M., Zhang, S., Zhou, H.-Y., Yang, S., Wu, C., Yu, Y. (2025). TransXNet: Learning Both Global "
    "and Local Dynamics with a Dual Dynamic Token Mixer for Visual Recognition. IEEE Transactions on "
    "Neural Networks and Learning Systems. doi:10.1109/TNNLS.2025.3550979. arXiv:2310.19380."
)


def _build(size: str, *, num_classes: int, drop_path_rate: float) -> TransXNet:
    from ._transxnet_model import TransXNet

    return TransXNet(**_CONFIGS[size], sr_ratio=(8, 4, 2, 1), num_classes=num_classes, drop_path_rate=drop_path_rate)


def transxnet_t(*, num_classes: int = 1000, drop_path_rate: float = 0.0) -> TransXNet:
    """TransXNet-T (12.8 M parameters, 1.8 GFLOPs at 224)."""
    return _build("t", num_classes=num_classes, drop_path_rate=drop_path_rate)


def transxnet_s(*, num_classes: int = 1000, drop_path_rate: float = 0.0) -> TransXNet:
    """TransXNet-S (26.9 M parameters, 4.5 GFLOPs at 224)."""
    return _build("s", num_classes=num_classes, drop_path_rate=drop_path_rate)


def transxnet_b(*, num_classes: int = 1000, drop_path_rate: float = 0.0) -> TransXNet:
    """TransXNet-B (48.0 M parameters, 8.3 GFLOPs at 224)."""
    return _build("b", num_classes=num_classes, drop_path_rate=drop_path_rate)


for _size, _top1, _crop in (("t", 81.6, 0.9), ("s", 83.8, 0.9), ("b", 84.6, 0.95)):
    register_backbone(
        BackboneSpec(
            name=f"transxnet_{_size}",
            source="neurodec",
            model_id=f"neurodec.backbones.archs.transxnet:transxnet_{_size}",
            pretrained=f"https://github.com/LMMMEng/TransXNet/releases/download/v1.0/transx-{_size}.pth.tar",
            input_size=224,
            crop_pct=_crop,
            layers=("network.0", "network.2", "network.4", "network.6"),
            license="Apache-2.0",
            citation=_CITATION,
            description=f"TransXNet-{_size.upper()}, ImageNet-1k (top-1 {_top1}%); stages at strides 4, 8, 16, 32.",
        )
    )
