"""Model builders, one per source library: spec -> (model, preprocessing).

Each builder returns the full model (the module a checkpoint of that model
fills, e.g. a whole CLIP) and the evaluation preprocessing. ``pretrained``
asks the library for its released weights (downloaded, or from its cache);
``pretrained=False`` builds a randomly initialized model offline, and
``model_kwargs`` override the architecture (timm/open_clip constructor
arguments, a transformers config's fields, a neurodec builder's arguments).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checkpoints import apply_checkpoint, import_object
from .preprocessing import ImagePreprocessor, transform_from_spec

if TYPE_CHECKING:
    import torch

    from .registry import BackboneSpec

__all__ = ["Built", "build_model"]


@dataclasses.dataclass
class Built:
    """A freshly built model: the whole model, its preprocessing, and extras of its source.

    ``tower`` is the module path of the image model inside ``root`` (a CLIP's "visual").
    """

    root: "torch.nn.Module"
    preprocess: ImagePreprocessor
    tower: str | None = None
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)


def _no_weights(spec: "BackboneSpec", exc: Exception) -> RuntimeError:
    return RuntimeError(
        f"Pretrained weights of backbone {spec.name!r} ({spec.pretrained}) could not be loaded: {exc}. "
        "Without network access, download them elsewhere and pass the local file (or, for transformers, "
        "the snapshot folder) as weights=<path>."
    )


def _build_timm(spec: "BackboneSpec", pretrained: bool, kwargs: dict[str, Any]) -> Built:
    import timm

    model_name = f"{spec.model_id}.{spec.pretrained}" if spec.pretrained else spec.model_id
    try:
        model = timm.create_model(model_name, pretrained=pretrained, **kwargs)
    except (OSError, RuntimeError) as exc:
        if not pretrained:
            raise
        raise _no_weights(spec, exc) from exc
    config = timm.data.resolve_data_config({}, model=model)
    transform = timm.data.create_transform(**config, is_training=False)
    description = "timm " + ", ".join(f"{k}={config[k]}" for k in sorted(config))
    return Built(model, ImagePreprocessor(transform, description=description))


def _build_open_clip(spec: "BackboneSpec", pretrained: bool, kwargs: dict[str, Any]) -> Built:
    import open_clip
    import torch

    if pretrained and not spec.pretrained:
        tags = open_clip.list_pretrained_tags_by_model(spec.model_id)
        raise ValueError(
            f"Backbone {spec.name!r} names no pretrained tag; use 'open_clip/{spec.model_id}:<tag>' with one of "
            f"{tags} or weights='random'."
        )
    tag = spec.pretrained if pretrained else None
    try:
        model, _, transform = open_clip.create_model_and_transforms(
            spec.model_id, pretrained=tag, require_pretrained=tag is not None,
            device=torch.get_default_device(), **kwargs,
        )
    except (OSError, RuntimeError) as exc:
        if tag is None:
            raise
        raise _no_weights(spec, exc) from exc
    return Built(
        model, ImagePreprocessor(transform), tower="visual", extras={"tokenizer": open_clip.get_tokenizer(spec.model_id, context_length=model.context_length)},
    )


def _build_torchvision(spec: "BackboneSpec", pretrained: bool, kwargs: dict[str, Any]) -> Built:
    from .._torchvision import enable_torchvision

    models = enable_torchvision().models
    weights = models.get_model_weights(spec.model_id)[spec.pretrained or "DEFAULT"]
    if not pretrained and spec.model_id in ("inception_v3", "googlenet"):
        # The pretrained builders switch on the input re-normalization layer;
        # a random model gets the same graph so released checkpoints fit it.
        kwargs = {"transform_input": True, "init_weights": False, **kwargs}
    try:
        model = models.get_model(spec.model_id, weights=weights if pretrained else None, **kwargs)
    except (OSError, RuntimeError) as exc:
        if not pretrained:
            raise
        raise _no_weights(spec, exc) from exc
    return Built(model, ImagePreprocessor(weights.transforms()))


def _transformers_classes(spec: "BackboneSpec") -> tuple[Any, Any]:
    import transformers

    if spec.model_class is None:
        raise ValueError(
            f"Backbone {spec.name!r} names no transformers model class, so it can only be loaded "
            "from its hub id or a local snapshot folder (weights='pretrained' or weights=<folder>); "
            "register a BackboneSpec with model_class=... to build it randomly or from a checkpoint file."
        )
    model_class = getattr(transformers, spec.model_class)
    return model_class, model_class.config_class


def _build_transformers(
    spec: "BackboneSpec", pretrained: bool, kwargs: dict[str, Any], snapshot: Path | None = None
) -> Built:
    import transformers

    preprocess = ImagePreprocessor(transform_from_spec(spec))
    if pretrained or snapshot is not None:
        model_class = transformers.AutoModel if spec.model_class is None else _transformers_classes(spec)[0]
        location = str(snapshot) if snapshot is not None else spec.model_id
        try:
            model = model_class.from_pretrained(location, **kwargs)
        except OSError as exc:
            raise _no_weights(spec, exc) from exc
        if snapshot is not None or spec.model_class is None:
            # The snapshot's own image processor config is the reference.
            processor = transformers.AutoImageProcessor.from_pretrained(location)
            preprocess = ImagePreprocessor(
                lambda image: processor(images=image, return_tensors="pt")["pixel_values"][0],
                description=repr(processor.to_dict()),
            )
        return Built(model, preprocess)
    model_class, config_class = _transformers_classes(spec)
    config = config_class(**kwargs)
    size = getattr(getattr(config, "vision_config", config), "image_size", spec.input_size)
    if isinstance(size, int) and size != spec.input_size:
        # A config resized for a small model keeps the spec's crop ratio at its own input size.
        preprocess = ImagePreprocessor(transform_from_spec(dataclasses.replace(spec, input_size=size)))
    return Built(model_class(config), preprocess)


def _build_neurodec(spec: "BackboneSpec", pretrained: bool, kwargs: dict[str, Any]) -> Built:
    builder = import_object(spec.model_id, what=f"model_id of backbone {spec.name!r}")
    model = builder(**kwargs)
    if pretrained:
        import torch

        if not spec.pretrained:
            raise ValueError(f"Backbone {spec.name!r} has no released weights; use weights='random' or a file.")
        try:
            checkpoint = torch.hub.load_state_dict_from_url(spec.pretrained, map_location="cpu", weights_only=True)
        except OSError as exc:
            raise _no_weights(spec, exc) from exc
        apply_checkpoint(model, checkpoint, checkpoint_filter=spec.checkpoint_filter, source=spec.pretrained)
    return Built(model, ImagePreprocessor(transform_from_spec(spec)))


_BUILDERS = {
    "timm": _build_timm,
    "open_clip": _build_open_clip,
    "torchvision": _build_torchvision,
    "transformers": _build_transformers,
    "neurodec": _build_neurodec,
}


def build_model(
    spec: "BackboneSpec", *, pretrained: bool, model_kwargs: dict[str, Any], snapshot: Path | None = None
) -> Built:
    """Build the model ``spec`` describes (see the module docstring)."""
    from .._torchvision import enable_torchvision

    enable_torchvision()  # timm and open_clip import torchvision
    if snapshot is not None:
        if spec.source != "transformers":
            raise ValueError(
                f"weights={str(snapshot)!r} is a folder; only transformers backbones load snapshot folders. "
                f"Pass a checkpoint file ({spec.name!r} is a {spec.source} model)."
            )
        return _build_transformers(spec, pretrained, model_kwargs, snapshot)
    return _BUILDERS[spec.source](spec, pretrained, model_kwargs)
