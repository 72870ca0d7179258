"""The backbone registry: one spec per named vision model.

A :class:`BackboneSpec` says where a model comes from (timm, open_clip,
torchvision, transformers, or neurodec's own implementations), where its
pretrained weights live, how to preprocess its input and which layers to
extract by default. Registering a spec imports nothing heavy.

Names follow one scheme: ``"<source>/<model id>"`` for library models
(``"timm/convnext_atto"``, ``"torchvision/alexnet"``,
``"open_clip/ViT-B-32:laion2b_s34b_b79k"``, ``"transformers/facebook/dinov2-small"``)
and plain names for neurodec's own architectures. The curated entries of
:mod:`neurodec.backbones.catalog` and neurodec's own architectures
(``neurodec/backbones/archs/<arch>.py``, which register their specs at module
level) are imported on the first registry query (:func:`list_backbones`,
:func:`get_backbone_spec`), never at ``import neurodec``. Any other timm,
open_clip or torchvision model is resolved on demand by
:func:`get_backbone_spec` from the library's own model list (which imports that
library), so the thousand-odd timm models are never enumerated at import.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import pkgutil
from typing import Literal

from .._registry import Registry

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BackboneSpec",
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "get_backbone_spec",
    "list_backbones",
    "register_backbone",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

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
    model_class : str, optional
        transformers only: the class that loads ``model_id`` (e.g. "Dinov2Model");
        its ``config_class`` builds randomly initialized models offline.
    submodule : str, optional
        Module path of the image tower inside the loaded model (e.g. GIT's
        "git.image_encoder"); layers are named relative to it.
    resize_mode : {"shortest", "squash"}
        "shortest" resizes the short side to ``input_size / crop_pct`` then
        center-crops ``input_size``; "squash" resizes straight to
        ``input_size`` x ``input_size`` (BLIP's processor).
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
    model_class: str | None = None
    submodule: str | None = None
    resize_mode: str = "shortest"
    license: str = ""
    citation: str = ""
    description: str = ""


BACKBONES: Registry[BackboneSpec] = Registry("backbone")
_ARCHS_IMPORTED = False


def register_backbone(spec: BackboneSpec, *, overwrite: bool = False) -> BackboneSpec:
    """Add ``spec`` to the registry under ``spec.name`` and return it."""
    return BACKBONES.add(spec.name, spec, overwrite=overwrite)


def _import_archs() -> None:
    """Import the curated catalog and neurodec's own architecture modules so their specs register."""
    global _ARCHS_IMPORTED
    if _ARCHS_IMPORTED:
        return
    _ARCHS_IMPORTED = True
    from . import archs, catalog  # noqa: F401  (importing registers)

    for module in pkgutil.iter_modules(archs.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{archs.__name__}.{module.name}")


def list_backbones(pattern: str = "*") -> list[str]:
    """Names of registered backbones matching a shell-style ``pattern``."""
    _import_archs()
    return BACKBONES.names(pattern)


def get_backbone_spec(name: str) -> BackboneSpec:
    """The spec of backbone ``name``: a registered entry or a library model resolved on demand.

    Parameters
    ----------
    name : str
        A registered name (see :func:`list_backbones`), or any
        ``"timm/<model>[.<tag>]"``, ``"open_clip/<model>[:<tag>]"``,
        ``"torchvision/<model>"`` or ``"transformers/<hub id>"``.

    Raises
    ------
    ValueError
        If ``name`` is neither registered nor a model of its library; the
        message lists close matches.
    """
    _import_archs()
    if name in BACKBONES:
        return BACKBONES.get(name)
    source, _, model = str(name).partition("/")
    if model and source in _RESOLVERS:
        return _RESOLVERS[source](name, model)
    return BACKBONES.get(name)


def _close(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    return f" Close matches: {', '.join(close)}." if close else ""


def _resolve_timm(name: str, model: str) -> BackboneSpec:
    from .._torchvision import enable_torchvision

    enable_torchvision()
    import timm

    arch, _, tag = model.partition(".")
    if not timm.is_model(arch):
        raise ValueError(f"Unknown backbone {name!r}: timm has no model {arch!r}.{_close(arch, timm.list_models())}")
    tags = [t.partition(".")[2] for t in timm.list_pretrained(f"{arch}.*")]
    if tag and tag not in tags:
        raise ValueError(f"Unknown backbone {name!r}: timm model {arch!r} has no pretrained tag {tag!r}; tags: {tags}.")
    cfg = timm.models.get_pretrained_cfg(model if tag else arch)
    return BackboneSpec(
        name=name, source="timm", model_id=arch, pretrained=cfg.tag, input_size=int(cfg.input_size[-1]),
        mean=tuple(cfg.mean), std=tuple(cfg.std), interpolation=cfg.interpolation, crop_pct=float(cfg.crop_pct),
        license=cfg.license or "", description=f"timm {arch}.{cfg.tag}",
    )


def _resolve_open_clip(name: str, model: str) -> BackboneSpec:
    from .._torchvision import enable_torchvision

    enable_torchvision()
    import open_clip

    arch, _, tag = model.partition(":")
    if arch not in open_clip.list_models():
        raise ValueError(
            f"Unknown backbone {name!r}: open_clip has no model {arch!r}.{_close(arch, open_clip.list_models())}"
        )
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag and tag not in tags:
        raise ValueError(f"Unknown backbone {name!r}: open_clip model {arch!r} has no pretrained tag {tag!r}; tags: {tags}.")
    return BackboneSpec(
        name=name, source="open_clip", model_id=arch, pretrained=tag or None,
        mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD, crop_pct=1.0, description=f"open_clip {arch} image tower",
    )


def _resolve_torchvision(name: str, model: str) -> BackboneSpec:
    from .._torchvision import enable_torchvision

    models = enable_torchvision().models
    if model not in models.list_models():
        raise ValueError(
            f"Unknown backbone {name!r}: torchvision has no model {model!r}.{_close(model, models.list_models())}"
        )
    weights = models.get_model_weights(model).DEFAULT
    transform = weights.transforms()
    return BackboneSpec(
        name=name, source="torchvision", model_id=model, pretrained=weights.name,
        input_size=int(transform.crop_size[0]), mean=tuple(transform.mean), std=tuple(transform.std),
        interpolation=transform.interpolation.value, crop_pct=transform.crop_size[0] / transform.resize_size[0],
        description=f"torchvision {model}",
    )


def _resolve_transformers(name: str, model: str) -> BackboneSpec:
    # Hub ids cannot be checked offline: the model class comes from the
    # snapshot's config.json when weights are loaded (AutoModel).
    return BackboneSpec(name=name, source="transformers", model_id=model, pretrained=model,
                        description=f"transformers {model} (AutoModel)")


_RESOLVERS = {
    "timm": _resolve_timm,
    "open_clip": _resolve_open_clip,
    "torchvision": _resolve_torchvision,
    "transformers": _resolve_transformers,
}
