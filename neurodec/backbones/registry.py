"""The backbone registry: one spec per named vision model.

A :class:`BackboneSpec` says where a model comes from (timm, open_clip,
torchvision, transformers, or neurodec's own implementations), where its
pretrained weights live, how to preprocess its input and which layers to
extract by default. Registering a spec imports nothing heavy.

neurodec's own architectures (``neurodec/backbones/archs/<arch>.py``) register
their specs at module level; those modules are imported on the first registry
query (:func:`list_backbones`, :func:`get_backbone_spec`), never at
``import neurodec``.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Literal

from .._registry import Registry

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BackboneSpec",
    "get_backbone_spec",
    "list_backbones",
    "register_backbone",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Source = Literal["timm", "open_clip", "torchvision", "transformers", "neurodec"]


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """Metadata of one registered backbone.

    Parameters
    ----------
    name : str
        Registry name, e.g. "hornet_tiny_7x7".
    source : {"timm", "open_clip", "torchvision", "transformers", "neurodec"}
        Library that builds the model.
    model_id : str
        The source's identifier: a timm model name, an open_clip model name,
        a torchvision model function name, a Hugging Face hub id, or for
        neurodec's own architectures ``"module.path:builder_function"``.
    pretrained : str, optional
        Where pretrained weights come from: a timm/open_clip pretrained tag,
        a torchvision weights name, a hub id, or the URL of the authors'
        released checkpoint (download it yourself and pass the local path).
    input_size : int
        Square input resolution the weights were trained at.
    mean, std : tuple of float
        Per-channel normalization of RGB input in [0, 1].
    interpolation : str
        Resize interpolation ("bicubic", "bilinear").
    crop_pct : float
        Center-crop fraction used at evaluation (resize to input_size / crop_pct, then crop).
    layers : tuple of str
        Default layers to extract (module paths, usually the stages).
    checkpoint_filter : str, optional
        ``"module.path:function"`` mapping a released state dict onto the
        model's parameter names, ``f(state_dict, model) -> state_dict``.
    license, citation, description : str
        Licence of the weights, how to cite the architecture, a one-liner.
    """

    name: str
    source: Source
    model_id: str
    pretrained: str | None = None
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    layers: tuple[str, ...] = ()
    checkpoint_filter: str | None = None
    license: str = ""
    citation: str = ""
    description: str = ""


BACKBONES: Registry[BackboneSpec] = Registry("backbone")
_ARCHS_IMPORTED = False


def register_backbone(spec: BackboneSpec, *, overwrite: bool = False) -> BackboneSpec:
    """Add ``spec`` to the registry under ``spec.name`` and return it."""
    return BACKBONES.add(spec.name, spec, overwrite=overwrite)


def _import_archs() -> None:
    """Import neurodec's own architecture modules so their specs register."""
    global _ARCHS_IMPORTED
    if _ARCHS_IMPORTED:
        return
    _ARCHS_IMPORTED = True
    from . import archs

    for module in pkgutil.iter_modules(archs.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{archs.__name__}.{module.name}")


def list_backbones(pattern: str = "*") -> list[str]:
    """Names of registered backbones matching a shell-style ``pattern``."""
    _import_archs()
    return BACKBONES.names(pattern)


def get_backbone_spec(name: str) -> BackboneSpec:
    """The spec registered as ``name`` (unknown names list close matches)."""
    _import_archs()
    return BACKBONES.get(name)
