"""A backbone's image preprocessing as differentiable tensor operations.

Feature extraction preprocesses PIL images (``Backbone.preprocess``): resize,
center crop, to a [0, 1] tensor, normalize. Optimizing pixels needs the same
steps on a batch of float tensors with gradients, so :func:`pixel_steps` reads
the transform's parameters (a torchvision ``Compose`` of ``Resize``,
``CenterCrop``, ``ToTensor`` and ``Normalize``, as :class:`~neurodec.backbones.Preprocess`,
timm and open_clip build them, or torchvision's ``ImageClassification``
preset) and :class:`PixelPreprocess` replays them with
``torchvision.transforms.functional`` on tensors. The resize is torch
interpolation (antialiased for bilinear/bicubic), which differs from PIL's
resampling of uint8 images by interpolation error; crop and normalization are
exact. A transform that is an arbitrary callable (e.g. a transformers image
processor) cannot be replayed and raises an error naming what is supported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._torchvision import enable_torchvision

if TYPE_CHECKING:
    import torch

__all__ = ["PixelPreprocess", "pixel_steps"]

#: Interpolations that torch implements on tensors (box, hamming and lanczos are PIL-only).
TENSOR_INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic")
_SUPPORTED = (
    "a torchvision Compose of Resize, CenterCrop, ToTensor/MaybeToTensor, Normalize (and open_clip's RGB "
    "conversion, MaybeConvertMode), or torchvision's ImageClassification preset; load the backbone with "
    "preprocess=neurodec.backbones.Preprocess(...) or a mapping to get one"
)
_NO_OPS = ("ToTensor", "MaybeToTensor", "_convert_to_rgb", "MaybeConvertMode")  # input is RGB floats already


def _interpolation(mode: Any, where: str) -> str:
    value = str(getattr(mode, "value", mode))
    if value not in TENSOR_INTERPOLATIONS:
        raise ValueError(
            f"{where}: resize interpolation {value!r} exists for PIL images only; the differentiable encoder "
            f"supports {', '.join(TENSOR_INTERPOLATIONS)}. Reload the backbone with one of them, e.g. "
            "preprocess={'resize': ..., 'interpolation': 'bicubic'}."
        )
    return value


def _size(value: Any) -> list[int]:
    return [int(value)] if isinstance(value, int) else [int(v) for v in value]


def pixel_steps(transform: Any, *, name: str = "backbone") -> list[tuple[Any, ...]]:
    """Read a PIL transform into tensor steps.

    Parameters
    ----------
    transform : callable
        ``Backbone.preprocess.transform``.
    name : str
        The backbone's name, for error messages.

    Returns
    -------
    list of tuple
        ``("resize", size, interpolation, max_size, antialias)``,
        ``("crop", size)`` or ``("normalize", mean, std)``, in order.

    Raises
    ------
    ValueError
        For a step that has no tensor equivalent, naming it and what is supported.
    """
    tv = enable_torchvision().transforms
    where = f"Preprocessing of backbone {name!r}"
    if type(transform).__name__ == "ImageClassification":
        return [
            ("resize", _size(transform.resize_size), _interpolation(transform.interpolation, where), None,
             bool(transform.antialias)),
            ("crop", _size(transform.crop_size)),
            ("normalize", list(transform.mean), list(transform.std)),
        ]
    if not isinstance(transform, tv.Compose):
        raise ValueError(f"{where} is {transform!r}, which the differentiable encoder cannot replay; it supports {_SUPPORTED}.")
    steps: list[tuple[Any, ...]] = []
    for step in transform.transforms:
        kind = getattr(step, "__name__", None) or type(step).__name__
        if isinstance(step, tv.Resize):
            steps.append(("resize", _size(step.size), _interpolation(step.interpolation, where), step.max_size,
                          step.antialias is not False))
        elif isinstance(step, tv.CenterCrop):
            steps.append(("crop", _size(step.size)))
        elif isinstance(step, tv.Normalize):
            steps.append(("normalize", [float(m) for m in step.mean], [float(s) for s in step.std]))
        elif kind in _NO_OPS and getattr(step, "mode", "RGB") == "RGB":
            continue  # the input is already an RGB float tensor in [0, 1]
        else:
            raise ValueError(
                f"{where} has the step {step!r}, which the differentiable encoder cannot replay; it supports {_SUPPORTED}."
            )
    return steps


def _describe(steps: Sequence[tuple[Any, ...]]) -> str:
    parts = []
    for step in steps:
        if step[0] == "resize":
            parts.append(f"resize({step[1]}, {step[2]})")
        elif step[0] == "crop":
            parts.append(f"crop({step[1]})")
        else:
            parts.append("normalize")
    return ", ".join(parts) or "none"


class PixelPreprocess:
    """Differentiable preprocessing: images (N, 3, H, W) in [0, 1] -> the backbone's input.

    Parameters
    ----------
    steps : list of tuple
        From :func:`pixel_steps`.
    """

    def __init__(self, steps: Sequence[tuple[Any, ...]]) -> None:
        self.steps = list(steps)

    def __call__(self, images: "torch.Tensor") -> "torch.Tensor":
        """Apply the steps to a float tensor of shape (n_images, 3, height, width)."""
        import torch

        F = enable_torchvision().transforms.functional
        InterpolationMode = enable_torchvision().transforms.InterpolationMode
        x = images
        for step in self.steps:
            if step[0] == "resize":
                _, size, mode, max_size, antialias = step
                x = F.resize(x, size, interpolation=InterpolationMode(mode), max_size=max_size, antialias=antialias)
            elif step[0] == "crop":
                x = F.center_crop(x, step[1])
            else:
                mean = torch.as_tensor(step[1], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
                std = torch.as_tensor(step[2], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
                x = (x - mean) / std
        return x

    def __repr__(self) -> str:
        return f"PixelPreprocess({_describe(self.steps)})"
