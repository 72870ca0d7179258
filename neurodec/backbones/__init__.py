"""Vision backbones: a registry, layer-wise feature extraction, a feature cache.

::

    from neurodec import backbones
    bb = backbones.load("timm/convnext_tiny", weights="pretrained")
    feats = backbones.extract_features(bb, stimuli, pooling="avg", cache="~/features")

The registry is importable without torch; :func:`load`, :class:`Backbone`,
:func:`extract_features` and :class:`FeatureCache` are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .registry import BackboneSpec, get_backbone_spec, list_backbones, register_backbone

__all__ = [
    "Backbone",
    "BackboneSpec",
    "FeatureCache",
    "extract_features",
    "get_backbone_spec",
    "list_backbones",
    "load",
    "register_backbone",
]

_LAZY = {
    "Backbone": "loading",
    "load": "loading",
    "extract_features": "extraction",
    "FeatureCache": "cache",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
