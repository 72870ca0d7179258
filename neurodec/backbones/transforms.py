"""User-chosen image preprocessing: resize, center-crop, interpolation, normalization.

A backbone's preprocessing is part of its weights' contract: a checkpoint
trained on [0, 1] input at 227 pixels gives wrong features when fed
ImageNet-normalized 224-pixel crops. :class:`Preprocess` states it
explicitly, :func:`preprocess_from_dict` builds one from a plain mapping (a
YAML config's), and ``load(..., preprocess=...)`` uses it instead of the
registry's default::

    bb = backbones.load("torchvision/resnet152", weights="resmem_features.pth",
                        preprocess={"resize": 256, "crop": 227, "mean": None, "std": None})
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .registry import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from .registry import BackboneSpec

__all__ = ["INTERPOLATIONS", "Preprocess", "preprocess_from_dict"]

#: Resize interpolations (torchvision's ``InterpolationMode`` values).
INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic", "box", "hamming", "lanczos")
_KEYS = ("resize", "crop", "interpolation", "mean", "std")


def _size(value: Any, name: str, where: str) -> int | tuple[int, int] | None:
    """None, a positive int, or a (height, width) pair of positive ints."""
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0:
        return int(value)
    if (
        isinstance(value, (list, tuple)) and len(value) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        return (int(value[0]), int(value[1]))
    raise ValueError(
        f"The {name!r} {where} must be a positive integer, a [height, width] pair of them, or None. "
        f"Got {value!r} ({type(value).__name__})."
    )


def _triple(value: Any, name: str, where: str, *, positive: bool) -> tuple[float, float, float] | None:
    """None or three (positive) real numbers, one per RGB channel."""
    if value is None:
        return None
    if (
        isinstance(value, (list, tuple)) and len(value) == 3
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
        and (not positive or all(v > 0 for v in value))
    ):
        return tuple(float(v) for v in value)  # type: ignore[return-value]
    kind = "positive numbers" if positive else "numbers"
    raise ValueError(
        f"The {name!r} {where} must be three {kind} (one per RGB channel of input in [0, 1]) or None "
        f"for no normalization. Got {value!r} ({type(value).__name__})."
    )


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """Evaluation preprocessing: resize, center-crop, to a [0, 1] tensor, normalize.

    Applied to RGB images in this order; each step is skipped when its value is None.

    Parameters
    ----------
    resize : int, (int, int) or None
        An int resizes the shorter side to it (aspect kept); a
        ``(height, width)`` pair resizes to exactly that size; None keeps the
        image's size.
    crop : int, (int, int) or None
        Center crop to a square of this side or to ``(height, width)``.
    interpolation : {"bilinear", "bicubic", "nearest", "nearest-exact", "box", "hamming", "lanczos"}
        Resize interpolation (torchvision's, antialiased).
    mean, std : three floats or None
        Per-channel normalization ``(x - mean) / std`` of input in [0, 1];
        both None for no normalization (a model trained on raw [0, 1] pixels).

    Examples
    --------
    >>> Preprocess(resize=256, crop=227, mean=None, std=None)
    Preprocess(resize=256, crop=227, interpolation='bilinear', mean=None, std=None)
    >>> preprocess_from_dict({"resize": 256, "crop": 224, "interpolation": "bicubic"}).mean
    (0.485, 0.456, 0.406)
    """

    resize: int | tuple[int, int] | None
    crop: int | tuple[int, int] | None = None
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] | None = IMAGENET_MEAN
    std: tuple[float, float, float] | None = IMAGENET_STD

    def __post_init__(self) -> None:
        self._validate("parameter of Preprocess")

    def _validate(self, where: str) -> None:
        set_ = object.__setattr__
        set_(self, "resize", _size(self.resize, "resize", where))
        set_(self, "crop", _size(self.crop, "crop", where))
        if self.interpolation not in INTERPOLATIONS:
            close = difflib.get_close_matches(str(self.interpolation), INTERPOLATIONS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"The 'interpolation' {where} must be one of {', '.join(INTERPOLATIONS)}. "
                f"Got {self.interpolation!r}.{hint}"
            )
        set_(self, "mean", _triple(self.mean, "mean", where, positive=False))
        set_(self, "std", _triple(self.std, "std", where, positive=True))
        if (self.mean is None) != (self.std is None):
            raise ValueError(
                f"The 'mean' and 'std' {where.replace(' of ', 's of ', 1)} must both be given or both be None "
                "(no normalization). "
                f"Got mean={self.mean!r} and std={self.std!r}."
            )

    @classmethod
    def from_spec(cls, spec: "BackboneSpec") -> "Preprocess":
        """The preprocessing a registry entry describes (its default when ``load`` gets no ``preprocess``)."""
        if spec.resize_mode == "squash":
            resize, crop = (spec.input_size, spec.input_size), None
        else:
            resize, crop = int(spec.input_size / spec.crop_pct), spec.input_size
        return cls(resize=resize, crop=crop, interpolation=spec.interpolation, mean=spec.mean, std=spec.std)

    def to_dict(self) -> dict[str, Any]:
        """The mapping :func:`preprocess_from_dict` reads back (lists for pairs, as YAML writes them)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

    def transform(self) -> Callable[["Image.Image"], "torch.Tensor"]:
        """The torchvision transform: RGB PIL image -> float tensor of shape (3, height, width)."""
        from .._torchvision import enable_torchvision

        transforms = enable_torchvision().transforms
        steps: list[Any] = []
        if self.resize is not None:
            steps.append(transforms.Resize(self.resize, interpolation=transforms.InterpolationMode(self.interpolation)))
        if self.crop is not None:
            steps.append(transforms.CenterCrop(self.crop))
        steps.append(transforms.ToTensor())
        if self.mean is not None:
            steps.append(transforms.Normalize(mean=self.mean, std=self.std))
        return transforms.Compose(steps)


def preprocess_from_dict(mapping: Mapping[str, Any], *, context: str = "preprocess") -> Preprocess:
    """Build a :class:`Preprocess` from a plain mapping, e.g. a YAML config's.

    Parameters
    ----------
    mapping : mapping of str -> value
        Keys ``resize`` (required; may be null), ``crop``, ``interpolation``,
        ``mean``, ``std`` with :class:`Preprocess`'s meanings and defaults;
        pairs and triples may be lists. ``mean: null, std: null`` turns
        normalization off.
    context : str
        Where the mapping comes from (e.g. ``"backbones[0].preprocess"`` of a
        config file), named in error messages.

    Returns
    -------
    Preprocess

    Raises
    ------
    ValueError
        Naming the key at fault: unknown keys (with close matches), a missing
        ``resize``, or a value of the wrong type.

    Examples
    --------
    >>> preprocess_from_dict({"resize": 256, "crop": 227, "interpolation": "bilinear", "mean": None, "std": None})
    Preprocess(resize=256, crop=227, interpolation='bilinear', mean=None, std=None)
    """
    if not isinstance(mapping, Mapping):
        raise ValueError(
            f"{context} must be a mapping with keys {', '.join(_KEYS)}. Got {mapping!r} ({type(mapping).__name__})."
        )
    for key in mapping:
        if key not in _KEYS:
            close = difflib.get_close_matches(str(key), _KEYS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"Unknown key {key!r} in {context}; expected keys: {', '.join(_KEYS)}.{hint}")
    if "resize" not in mapping:
        raise ValueError(
            f"{context} needs the key 'resize' (an int for the shorter side, [height, width], or null to keep "
            "the image size)."
        )
    defaults = {f.name: f.default for f in dataclasses.fields(Preprocess) if f.default is not dataclasses.MISSING}
    values = {**defaults, **mapping}
    # Built without __post_init__ so that errors name the keys of ``context``.
    preprocess = object.__new__(Preprocess)
    for key in _KEYS:
        object.__setattr__(preprocess, key, values[key])
    preprocess._validate(f"key of {context}")
    return preprocess
