"""Vision backbones: a registry, layer-wise feature extraction, a feature cache.

::

    from neurodec import backbones
    bb = backbones.load("timm/convnext_tiny", weights="pretrained")
    feats = backbones.extract_features(bb, stimuli, pooling="avg", cache="~/features")

The registry is importable without torch; :func:`load`, :class:`Backbone`,
:func:`extract_features` and :class:`FeatureCache` are imported on first use.
"""

from __future__ import annotations

from .._lazy import lazy_exports
from .registry import BackboneSpec, get_backbone_spec, list_backbones, register_backbone


_LAZY = {
    "Backbone": "loading",
    "load": "loading",
    "extract_features": "extraction",
    "FeatureCache": "cache",
}

__all__, __getattr__, __dir__ = lazy_exports(
    __name__, _LAZY, eager=["BackboneSpec", "get_backbone_spec", "list_backbones", "register_backbone"]
)
