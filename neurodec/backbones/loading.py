"""Load a registered backbone with pretrained, random or local-checkpoint weights."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._device import resolve_device
from .checkpoints import CHECKPOINT_SUFFIXES, apply_checkpoint, file_sha256, read_checkpoint
from .preprocessing import ImagePreprocessor
from .registry import BackboneSpec, get_backbone_spec
from .sources import build_model
from .transforms import Preprocess, preprocess_from_dict

if TYPE_CHECKING:
    import torch

__all__ = ["OUTPUT", "Backbone", "feature_stages", "load"]

#: Layer name of a model's final output (its forward's return value).
OUTPUT = "output"


def feature_stages(model: "torch.nn.Module") -> dict[str, int]:
    """Stage module -> channel count from a timm model's ``feature_info`` (empty for other models)."""
    info = getattr(model, "feature_info", None)
    if hasattr(info, "module_name"):  # FeatureInfo of features_only models
        return dict(zip(info.module_name(), info.channels()))
    if isinstance(info, list) and all(isinstance(i, dict) and "module" in i for i in info):
        return {i["module"]: i.get("num_chs") for i in info}
    return {}


def _default_layers(model: "torch.nn.Module") -> tuple[str, ...]:
    """Stage modules of a model without registered layers.

    timm models name their stages in ``feature_info``; otherwise the blocks
    of the longest ``ModuleList`` (transformer layers); else the top-level children.
    """
    import torch

    stages = feature_stages(model)
    if stages:
        return tuple(stages)
    lists = [(len(m), name) for name, m in model.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m)]
    if lists:
        _, name = max(lists, key=lambda item: item[0])
        return tuple(f"{name}.{child}" for child, _ in model.get_submodule(name).named_children())
    return tuple(name for name, _ in model.named_children())


class Backbone:
    """A loaded vision model, ready for feature extraction.

    Attributes
    ----------
    model : torch.nn.Module
        The image model (a CLIP's image tower, a captioner's vision encoder),
        in eval mode on ``device``; layer names are module paths inside it.
    spec : BackboneSpec
        The registry entry it was built from.
    layers : tuple of str
        Default layers to extract ("output" is the model's final output).
    preprocess : ImagePreprocessor
        PIL image or uint8 array of shape (height, width[, 3]) -> normalized
        tensor of shape (3, size, size): the model's own (its library's
        config or the registry entry's), or the ``preprocess`` given to :func:`load`.
    device : torch.device
        Where the model lives.
    weights : str
        Identity of the weights: "pretrained:<tag>", "random:seed=<n>",
        "file:<sha256>" (plus ";strip=<prefix>") or "snapshot:<sha256 of its
        files>", plus any architecture overrides; part of cache keys.
    """

    def __init__(
        self,
        model: "torch.nn.Module",
        spec: BackboneSpec,
        *,
        layers: Sequence[str],
        preprocess: ImagePreprocessor,
        device: "torch.device",
        weights: str,
        root: "torch.nn.Module | None" = None,
        extras: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.spec = spec
        self.preprocess = preprocess
        self.device = device
        self.weights = weights
        self.root = model if root is None else root
        self._extras = extras or {}
        self.layers = tuple(self.check_layers(layers))

    @property
    def name(self) -> str:
        return self.spec.name

    def layer_names(self) -> list[str]:
        """Every extractable layer: all module paths of :attr:`model`, then "output"."""
        return [name for name, _ in self.model.named_modules() if name] + [OUTPUT]

    def check_layers(self, layers: Sequence[str]) -> list[str]:
        """Return ``layers`` as a list; an unknown one raises ``ValueError`` with close matches."""
        import difflib

        if isinstance(layers, str):
            layers = [layers]
        known = set(self.layer_names())
        for layer in layers:
            if layer not in known:
                close = difflib.get_close_matches(layer, list(known), n=5, cutoff=0.5)
                hint = f" Close matches: {', '.join(close)}." if close else ""
                raise ValueError(
                    f"Backbone {self.name!r} has no layer {layer!r}.{hint} "
                    f"List them with Backbone.layer_names() or `neurodec backbones list {self.name} --layers`."
                )
        return list(layers)

    def encode_text(self, texts: Sequence[str]) -> "torch.Tensor":
        """Text embeddings of a CLIP model's text tower, tensor of shape (n_texts, embed_dim).

        Raises
        ------
        ValueError
            If the backbone has no text tower (only open_clip models do).
        """
        import torch

        if "tokenizer" not in self._extras or not hasattr(self.root, "encode_text"):
            raise ValueError(f"Backbone {self.name!r} has no text tower; encode_text needs an open_clip model.")
        tokens = self._extras["tokenizer"](list(texts)).to(self.device)
        with torch.no_grad():
            return self.root.encode_text(tokens)

    def __repr__(self) -> str:
        return f"<Backbone {self.name!r} ({self.spec.source}, {self.weights}) on {self.device}, {len(self.layers)} layers>"


def _snapshot_digest(folder: Path) -> str:
    """SHA-256 over a snapshot folder's config and weight files (names and bytes)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file() and (path.suffix in CHECKPOINT_SUFFIXES or path.suffix == ".json"):
            digest.update(f"{path.name}:{file_sha256(path)}".encode())
    return digest.hexdigest()


def _submodule(model: "torch.nn.Module", path: str | None, spec: BackboneSpec) -> "torch.nn.Module":
    if not path:
        return model
    try:
        return model.get_submodule(path)
    except AttributeError:
        raise ValueError(f"Backbone {spec.name!r}: its model has no submodule {path!r} (spec.submodule).") from None


def _user_preprocess(preprocess: Any) -> ImagePreprocessor:
    """``load``'s ``preprocess`` argument (not None) as an ImagePreprocessor."""
    if isinstance(preprocess, ImagePreprocessor):
        return preprocess
    if isinstance(preprocess, Mapping):
        preprocess = preprocess_from_dict(preprocess)
    if isinstance(preprocess, Preprocess):
        return ImagePreprocessor(preprocess.transform(), description=repr(preprocess))
    if callable(preprocess):
        return ImagePreprocessor(preprocess)
    raise ValueError(
        "The 'preprocess' parameter of load must be None (the model's own), a Preprocess, a mapping with keys "
        f"resize, crop, interpolation, mean, std, or a callable PIL image -> tensor. Got {type(preprocess).__name__}."
    )


def _default_preprocess_warning(spec: BackboneSpec, path: Path) -> str:
    default = Preprocess.from_spec(spec).to_dict()
    return (
        f"weights={str(path)!r} is a local checkpoint without preprocessing metadata: images are preprocessed "
        f"with the registry default of {spec.name!r}, preprocess={default!r}. If the checkpoint was trained "
        "with other preprocessing, pass it: e.g. load(..., preprocess={'resize': 256, 'crop': 227, "
        "'interpolation': 'bilinear', 'mean': None, 'std': None}) for unnormalized [0, 1] input at 227 pixels, "
        "or preprocess=neurodec.backbones.Preprocess(...). Passing preprocess= silences this warning."
    )


def load(
    name: str,
    *,
    weights: str | os.PathLike = "pretrained",
    preprocess: "Preprocess | Mapping[str, Any] | ImagePreprocessor | Callable[..., Any] | None" = None,
    strip_prefix: str | None = None,
    device: Any = "auto",
    eval: bool = True,
    random_state: int = 0,
    **model_kwargs: Any,
) -> Backbone:
    """Load backbone ``name`` for feature extraction.

    Parameters
    ----------
    name : str
        A registered name or library model (see :func:`~neurodec.backbones.get_backbone_spec`).
    weights : {"pretrained", "random"} or path-like
        "pretrained" loads the released weights (needs the network or the
        library's cache: timm/torch hub, open_clip, Hugging Face); "random"
        initializes randomly (reproducibly, from ``random_state``); a path to a
        .pth/.pt/.bin/.ckpt/.safetensors/.npz file loads that state dict strictly
        into the architecture (wrappers such as ``state_dict``/``model`` keys
        and ``module.`` prefixes are stripped, the spec's checkpoint_filter
        applied unless the names already match); a folder is a local
        transformers snapshot (config.json and weights, as ``from_pretrained``
        reads it).
    preprocess : Preprocess, mapping, ImagePreprocessor, callable or None
        How images become the model's input. None uses the model's own (its
        library's config, else the registry entry's); a checkpoint file
        carries no such metadata, so loading one without ``preprocess``
        warns. A :class:`~neurodec.backbones.Preprocess` or a mapping of its
        fields (``{"resize": 256, "crop": 227, "interpolation": "bilinear",
        "mean": None, "std": None}``, see
        :func:`~neurodec.backbones.preprocess_from_dict`) replaces it; so does
        a callable RGB PIL image -> tensor of shape (3, height, width). Its
        description is part of feature cache keys.
    strip_prefix : str, optional
        With a checkpoint file: load only its keys under this prefix, with the
        prefix removed, e.g. ``"features."`` for a backbone saved as the
        ``features`` submodule of a larger model (the other keys are ignored
        and logged). A key mismatch error suggests the prefix when one helps.
    device : {"auto", "cpu", "cuda"} or torch.device
        Where to put the model; "auto" picks CUDA when available.
    eval : bool
        Put the model in eval mode (dropout off, batch-norm statistics frozen).
    random_state : int
        Seed of the random initialization (weights="random" or before a checkpoint is loaded).
    **model_kwargs
        Architecture overrides passed to the source: timm/open_clip constructor
        arguments, transformers config fields (e.g. ``hidden_size=32``), or a
        neurodec builder's arguments. The default layers of a resized model
        (or of a snapshot folder's) are the registered layers it still has
        (else its blocks).

    Returns
    -------
    Backbone

    Examples
    --------
    >>> bb = load("timm/resnet50", weights="random")  # doctest: +SKIP
    >>> bb.layers  # doctest: +SKIP
    ('act1', 'layer1', 'layer2', 'layer3', 'layer4')
    >>> bb = load("torchvision/resnet152", weights="resnet152_features.pth", strip_prefix="features.",
    ...           preprocess={"resize": 256, "crop": 227, "mean": None, "std": None})  # doctest: +SKIP
    """
    import torch

    spec = get_backbone_spec(name)
    user_preprocess = None if preprocess is None else _user_preprocess(preprocess)
    dev = resolve_device(device)
    overrides = f";kwargs={json.dumps(model_kwargs, sort_keys=True, default=str)}" if model_kwargs else ""
    path = None if str(weights) in ("pretrained", "random") else Path(weights)
    if path is not None and not path.exists():
        raise FileNotFoundError(
            f"The 'weights' parameter must be 'pretrained', 'random' or an existing file or folder. Got {str(weights)!r}."
        )
    snapshot = path if path is not None and path.is_dir() else None
    if path is not None and snapshot is None and path.suffix not in CHECKPOINT_SUFFIXES:
        raise ValueError(f"The 'weights' file {path} must end with one of {CHECKPOINT_SUFFIXES}.")
    if strip_prefix is not None and (path is None or snapshot is not None):
        raise ValueError(
            f"strip_prefix={strip_prefix!r} applies to checkpoint files only; weights={str(weights)!r} is not one."
        )
    # Weights are initialized on the CPU so a seed gives the same model on
    # every device; the meta device (layer listing) builds without memory.
    with torch.random.fork_rng(devices=[]), torch.device("meta" if dev.type == "meta" else "cpu"):
        torch.manual_seed(random_state)
        built = build_model(spec, pretrained=weights == "pretrained", model_kwargs=model_kwargs, snapshot=snapshot)
    if weights == "pretrained":
        identity = f"pretrained:{spec.pretrained}"
    elif weights == "random":
        identity = f"random:seed={random_state}"
    elif snapshot is not None:
        identity = f"snapshot:{_snapshot_digest(snapshot)}"
    else:
        apply_checkpoint(built.root, read_checkpoint(path), checkpoint_filter=spec.checkpoint_filter,
                         strip_prefix=strip_prefix, source=str(path))
        identity = f"file:{file_sha256(path)}" + (f";strip={strip_prefix}" if strip_prefix else "")
        if user_preprocess is None:
            warnings.warn(_default_preprocess_warning(spec, path), UserWarning, stacklevel=2)
    model = _submodule(built.root, spec.submodule or built.tower, spec)
    built.root.to(dev)
    if eval:
        built.root.eval()
    layers = spec.layers
    if model_kwargs or snapshot is not None:
        # A resized architecture (fewer blocks) keeps the registered layers it still has.
        present = {name for name, _ in model.named_modules()} | {OUTPUT}
        layers = tuple(layer for layer in layers if layer in present)
    layers = layers or _default_layers(model)
    if not spec.layers and spec.source == "open_clip":
        layers = (*layers, OUTPUT)  # a CLIP's embedding is its most used feature
    return Backbone(
        model, spec, layers=layers, preprocess=user_preprocess or built.preprocess, device=dev,
        weights=identity + overrides, root=built.root, extras=built.extras,
    )
