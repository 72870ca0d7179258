"""Vision backbones: a registry, layer-wise feature extraction, a feature cache."""

from .registry import BackboneSpec, get_backbone_spec, list_backbones, register_backbone

__all__ = ["BackboneSpec", "get_backbone_spec", "list_backbones", "register_backbone"]
