"""Image preprocessing: any RGB-convertible image -> the normalized tensor a backbone expects.

Each source brings its own evaluation transform (timm's ``create_transform``
from the model's data config, open_clip's preprocess, a torchvision weights
enum's ``transforms()``, a transformers image processor); backbones without
one get :func:`transform_from_spec`; a user's own choice is a
:class:`~neurodec.backbones.Preprocess` (``load(..., preprocess=...)``).
:class:`ImagePreprocessor` puts the same input handling in front of all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from .registry import BackboneSpec

__all__ = ["ImagePreprocessor", "to_pil_rgb", "transform_from_spec"]


def to_pil_rgb(image: Any) -> "Image.Image":
    """Convert ``image`` to an RGB PIL image.

    Parameters
    ----------
    image : PIL.Image.Image or array of shape (height, width[, 1 | 3 | 4]), dtype uint8
        Grayscale (2-D or one channel) is replicated to RGB; RGBA drops its
        alpha channel; any PIL mode is converted with ``Image.convert("RGB")``.

    Raises
    ------
    ValueError
        For arrays that are not uint8 or not shaped like an image.
    """
    from PIL import Image

    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(
            f"Images must be uint8 arrays (0-255) or PIL images. Got an array of dtype {array.dtype}; "
            "convert with (image * 255).round().astype(np.uint8) for images in [0, 1]."
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return Image.fromarray(array, mode="L").convert("RGB")
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return Image.fromarray(np.ascontiguousarray(array[:, :, :3]), mode="RGB")
    raise ValueError(
        f"Images must have shape (height, width), (height, width, 1), (height, width, 3) or "
        f"(height, width, 4). Got an array of shape {array.shape}."
    )


def transform_from_spec(spec: "BackboneSpec") -> Callable[["Image.Image"], "torch.Tensor"]:
    """The evaluation transform a spec describes: resize, center-crop, to tensor, normalize."""
    from .transforms import Preprocess

    return Preprocess.from_spec(spec).transform()


class ImagePreprocessor:
    """Turn images into a backbone's normalized input.

    Parameters
    ----------
    transform : callable
        Maps an RGB PIL image to a float tensor of shape (3, height, width).
    description : str, optional
        A stable text describing the transform (sizes, crop, mean/std,
        interpolation), part of feature cache keys; defaults to ``repr(transform)``.

    Examples
    --------
    >>> pre = load("timm/convnext_atto", weights="random").preprocess  # doctest: +SKIP
    >>> pre(np.zeros((32, 48), np.uint8)).shape  # doctest: +SKIP
    torch.Size([3, 224, 224])
    """

    def __init__(self, transform: Callable[["Image.Image"], "torch.Tensor"], *, description: str | None = None) -> None:
        self.transform = transform
        self.description = repr(transform) if description is None else description

    def __call__(self, image: Any) -> "torch.Tensor":
        """Preprocess one image (see :func:`to_pil_rgb` for accepted inputs) into a (3, H, W) tensor."""
        return self.transform(to_pil_rgb(image))

    def batch(self, images: Sequence[Any]) -> "torch.Tensor":
        """Preprocess images into a tensor of shape (n_images, 3, height, width)."""
        import torch

        return torch.stack([self(image) for image in images])

    def __repr__(self) -> str:
        return f"ImagePreprocessor({self.description})"
