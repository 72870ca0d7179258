"""Vision backbones: a registry, layer-wise feature extraction, a feature cache.

::

    from neurodec import backbones
    bb = backbones.load("timm/convnext_tiny", weights="pretrained")
    feats = backbones.extract_features(bb, stimuli, pooling="avg", cache="~/features")

Preprocessing is the user's to state when the weights need it
(``load(..., preprocess={"resize": 256, "crop": 227, "mean": None, "std": None})``,
see :class:`Preprocess`). :func:`enable_torchvision` makes a plain
``import torchvision`` / ``import timm`` work where torchvision's compiled
ops do not match torch.

The registry is importable without torch; :func:`load`, :class:`Backbone`,
:func:`extract_features`, :class:`FeatureCache` and :class:`ImagePreprocessor`
are imported on first use.
"""

from __future__ import annotations

from .._lazy import lazy_exports
from .._torchvision import enable_torchvision
from .registry import BackboneSpec, get_backbone_spec, list_backbones, register_backbone
from .transforms import Preprocess, preprocess_from_dict


_LAZY = {
    "Backbone": "loading",
    "load": "loading",
    "extract_features": "extraction",
    "FeatureCache": "cache",
    "ImagePreprocessor": "preprocessing",
    "device_pipeline": "device_preprocessing",
}

__all__, __getattr__, __dir__ = lazy_exports(
    __name__, _LAZY, eager=[
        "BackboneSpec", "Preprocess", "enable_torchvision", "get_backbone_spec", "list_backbones",
        "preprocess_from_dict", "register_backbone",
    ],
)
