"""SwAV ResNet-50: the self-supervised network of the SwAV reconstruction metric.

Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
Assignments", NeurIPS 2020 (arXiv:2006.09882). The released model is
torchvision's ResNet-50 trunk; ``torch.hub.load("facebookresearch/swav:main",
"resnet50")`` downloads the 800-epoch checkpoint named below and loads it with
its ``module.`` prefixes removed and the SwAV heads (projection head,
prototypes) ignored. Registering imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..registry import BackboneSpec, register_backbone

if TYPE_CHECKING:
    import torch

__all__ = ["swav_checkpoint_filter", "swav_resnet50"]

_URL = "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar"
_HEADS = ("projection_head.", "prototypes.")


def swav_resnet50() -> "torch.nn.Module":
    """torchvision's ResNet-50 without its classifier (SwAV releases no ImageNet head)."""
    import torch

    from ..._torchvision import enable_torchvision

    model = enable_torchvision().models.resnet50(weights=None)
    model.fc = torch.nn.Identity()
    return model


def swav_checkpoint_filter(state: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """The released SwAV state dict onto :func:`swav_resnet50`: strip ``module.``, drop the SwAV heads."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if not key.startswith(_HEADS):
            out[key] = value
    return out


register_backbone(
    BackboneSpec(
        name="swav_resnet50",
        source="neurodec",
        model_id=f"{__name__}:swav_resnet50",
        pretrained=_URL,
        input_size=224,
        interpolation="bilinear",
        crop_pct=224 / 256,
        layers=("layer1", "layer2", "layer3", "layer4", "avgpool"),
        checkpoint_filter=f"{__name__}:swav_checkpoint_filter",
        license="cc-by-nc-4.0",
        citation="Caron et al., Unsupervised Learning of Visual Features by Contrasting Cluster Assignments, NeurIPS 2020",
        description=(
            "SwAV ResNet-50 (800 epochs, ImageNet without labels); avgpool is the SwAV reconstruction metric's "
            "layer. weights='pretrained' downloads the authors' checkpoint; a local copy loads with "
            "weights='<file>.pth' (rename the .pth.tar)."
        ),
    )
)
