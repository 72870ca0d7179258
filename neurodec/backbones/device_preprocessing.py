"""A backbone's preprocessing as torchvision.transforms.v2 tensor ops, run on the device.

``extract_features(..., preprocess_on="device")`` sends uint8 images, shape
(n_images, 3, height, width), to the device and resizes, crops, scales and
normalizes them there, so the host only decodes. :func:`device_pipeline`
reads the evaluation transform the host path applies to PIL images (the
source's own: timm's ``create_transform``, open_clip's preprocess, a
torchvision weights' ``ImageClassification``, or neurodec's
:class:`~neurodec.backbones.Preprocess`) and rebuilds it step by step from
the same parameters; a step it cannot express raises an error naming it,
never a silently different transform.

The two paths are not bit-identical: PIL and torch implement antialiased
resizing separately (same kernels, different fixed-point rounding), so
resized pixels differ by a few uint8 levels at most, mostly 0 or 1 (see
``tests/backbones/test_device_preprocessing.py`` for the measured bound).
Resizing runs on uint8 like PIL's, so both round the resized image to uint8
before scaling to [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .preprocessing import ImagePreprocessor, to_pil_rgb

if TYPE_CHECKING:
    import torch

__all__ = ["PREPROCESS_ON", "device_pipeline", "uint8_groups"]

#: Where :func:`~neurodec.backbones.extract_features` preprocesses images.
PREPROCESS_ON = ("host", "device")

# Interpolations torch resizes tensors with; PIL's box, hamming and lanczos have no tensor kernel.
_TENSOR_INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic")


def _unsupported(step: Any, why: str) -> ValueError:
    return ValueError(
        f"The backbone's preprocessing step {step!r} cannot run on the device: {why}. "
        "Use preprocess_on='host', or load the backbone with a preprocess it can express "
        "(load(..., preprocess={'resize': ..., 'crop': ..., 'interpolation': 'bicubic'}))."
    )


def _resize(v2: Any, step: Any, size: Any, interpolation: Any, max_size: Any = None) -> Any:
    mode = getattr(interpolation, "value", interpolation)
    if mode not in _TENSOR_INTERPOLATIONS:
        raise _unsupported(step, f"interpolation {mode!r} has no tensor implementation (supported: "
                                 f"{', '.join(_TENSOR_INTERPOLATIONS)})")
    # PIL always antialiases when downsampling, whatever the transform's antialias flag says.
    return v2.Resize(size, interpolation=v2.InterpolationMode(mode), max_size=max_size, antialias=True)


def _steps(step: Any, tv: Any) -> list[Any]:
    """The v2 steps equivalent to one host step (several for a torchvision preset)."""
    import torch

    v1, v2 = tv.transforms, tv.transforms.v2
    to_float = v2.ToDtype(torch.float32, scale=True)
    if isinstance(step, (v1.Compose, v2.Compose)):
        return [s for sub in step.transforms for s in _steps(sub, tv)]
    if isinstance(step, (v1.Resize, v2.Resize)):
        return [_resize(v2, step, step.size, step.interpolation, step.max_size)]
    if isinstance(step, (v1.CenterCrop, v2.CenterCrop)):
        return [v2.CenterCrop(step.size)]
    if isinstance(step, v1.ToTensor):  # also timm's and open_clip's MaybeToTensor (subclasses)
        return [to_float]
    if isinstance(step, v1.PILToTensor):
        return []  # the device path's images are uint8 tensors already
    if isinstance(step, v1.ConvertImageDtype):
        return [v2.ToDtype(step.dtype, scale=True)]
    if isinstance(step, (v1.Normalize, v2.Normalize)):
        if step.inplace:
            raise _unsupported(step, "in-place normalization")
        return [v2.Normalize([float(m) for m in step.mean], [float(s) for s in step.std])]
    if isinstance(step, tv.transforms._presets.ImageClassification):
        return [_resize(v2, step, step.resize_size, step.interpolation), v2.CenterCrop(step.crop_size),
                to_float, v2.Normalize(list(step.mean), list(step.std))]
    # open_clip's RGB conversions: the device path's images are RGB already (see uint8_groups).
    if type(step).__name__ == "MaybeConvertMode" and getattr(step, "mode", None) == "RGB":
        return []
    if getattr(step, "__name__", None) == "_convert_to_rgb" and "open_clip" in getattr(step, "__module__", ""):
        return []
    raise _unsupported(step, f"{type(step).__name__} has no tensor equivalent here")


def device_pipeline(preprocess: ImagePreprocessor | Callable[..., Any]) -> Callable[["torch.Tensor"], "torch.Tensor"]:
    """The torchvision.transforms.v2 pipeline equivalent to a backbone's PIL preprocessing.

    Parameters
    ----------
    preprocess : ImagePreprocessor or callable
        ``backbone.preprocess`` or its ``transform``: a torchvision
        ``Compose`` of Resize / CenterCrop / ToTensor (timm's and open_clip's
        MaybeToTensor) / PILToTensor / ConvertImageDtype / Normalize, or a
        torchvision weights' ``ImageClassification`` preset.

    Returns
    -------
    callable
        Maps uint8 images of shape (n_images, 3, height, width), on any
        device, to float32 tensors of shape (n_images, 3, out_height,
        out_width) on the same device.

    Raises
    ------
    ValueError
        Naming the step that has no tensor equivalent: PIL-only
        interpolations (box, hamming, lanczos), a transformers image
        processor, aspect-keeping resizers (timm's ResizeKeepRatio), ...

    Examples
    --------
    >>> pipe = device_pipeline(load("timm/resnet18", weights="random").preprocess)  # doctest: +SKIP
    >>> pipe(torch.zeros(2, 3, 300, 400, dtype=torch.uint8)).shape  # doctest: +SKIP
    torch.Size([2, 3, 224, 224])
    """
    from .._torchvision import enable_torchvision

    tv = enable_torchvision()
    import torchvision.transforms.v2  # noqa: F401  (v2 is a subpackage, not imported by torchvision itself)

    transform = preprocess.transform if isinstance(preprocess, ImagePreprocessor) else preprocess
    steps = _steps(transform, tv)
    if not any(isinstance(s, tv.transforms.v2.ToDtype) for s in steps):
        raise _unsupported(transform, "it never converts the image to a float tensor")
    return tv.transforms.v2.Compose(steps)


def _rgb_array(image: Any) -> np.ndarray:
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return image  # already RGB: no round trip through PIL
    return np.asarray(to_pil_rgb(image))


def uint8_groups(images: Sequence[Any]) -> list[tuple[np.ndarray, "torch.Tensor"]]:
    """Images as RGB uint8 tensors, stacked per size.

    Parameters
    ----------
    images : sequence of PIL images or uint8 arrays of shape (height, width[, 1 | 3 | 4])
        Converted to RGB as the host path does (:func:`~neurodec.backbones.preprocessing.to_pil_rgb`).

    Returns
    -------
    list of (positions, tensor)
        One entry per distinct image size, in order of first appearance:
        the positions in ``images`` (int array of shape (n_group,)) and the
        images, uint8 tensor of shape (n_group, 3, height, width).
    """
    import torch

    arrays = [_rgb_array(image) for image in images]
    by_size: dict[tuple[int, ...], list[int]] = {}
    for i, array in enumerate(arrays):
        by_size.setdefault(array.shape, []).append(i)
    return [
        (np.asarray(positions), torch.from_numpy(np.stack([arrays[i] for i in positions])).permute(0, 3, 1, 2))
        for positions in by_size.values()
    ]
