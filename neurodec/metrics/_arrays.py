"""Input checks shared by the metrics: embedding matrices and image batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["as_image_batch", "as_matrix_pair", "to_numpy", "unit_float"]


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def to_numpy(x: Any) -> np.ndarray:
    """A numpy view of an array, a torch tensor (any device) or a nested sequence."""
    if _is_tensor(x):
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def as_matrix_pair(
    a: Any, b: Any, *, names: tuple[str, str], caller: str
) -> tuple[np.ndarray, np.ndarray]:
    """Two float64 matrices of shape (n, d): trailing axes flattened, same shape required."""
    out = []
    for name, x in zip(names, (a, b)):
        arr = to_numpy(x)
        if arr.ndim < 2 or not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise ValueError(
                f"The {name!r} parameter of {caller} must be a real array of shape (n_samples, n_features) "
                f"(or (n_samples, ...), flattened). Got {arr.dtype} of shape {arr.shape}."
            )
        arr = arr.reshape(arr.shape[0], -1).astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"The {name!r} parameter of {caller} contains NaN or infinite values.")
        out.append(arr)
    if out[0].shape != out[1].shape:
        raise ValueError(
            f"{caller}: {names[0]!r} and {names[1]!r} must have the same shape (after flattening trailing axes). "
            f"Got {names[0]} {out[0].shape} and {names[1]} {out[1].shape}."
        )
    return out[0], out[1]


def as_image_batch(images: Any, *, name: str, caller: str) -> "Any":
    """Images as a torch tensor of shape (n, 3, H, W): uint8, or float32 with values in [0, 1].

    uint8 stays uint8 (1,000 images of 425 px take 0.5 GB, 2 GB as float):
    :func:`unit_float` converts a batch at a time.

    Accepts a numpy array of shape (n, H, W, 3) (uint8, or float in [0, 1]),
    a torch tensor of shape (n, 3, H, W) (uint8, or float in [0, 1]) or a
    list of same-size images of either layout without the leading axis.
    """
    import torch

    if isinstance(images, Sequence) and not isinstance(images, (str, bytes)) and not hasattr(images, "shape"):
        if len(images) == 0:
            raise ValueError(f"The {name!r} parameter of {caller} is empty.")
        shapes = sorted({tuple(to_numpy(im).shape) for im in images})
        if len(shapes) > 1:
            raise ValueError(
                f"The {name!r} parameter of {caller} holds images of mixed shapes {shapes}; "
                "resize them to one size first (or pass one array)."
            )
        images = torch.stack([torch.as_tensor(to_numpy(im)) for im in images]) if _is_tensor(images[0]) \
            else np.stack([to_numpy(im) for im in images])
    expected = ("a numpy array of shape (n_images, height, width, 3) or a torch tensor of shape "
                "(n_images, 3, height, width), uint8 or float in [0, 1]")
    if _is_tensor(images):
        tensor = images.detach().cpu()
        if tensor.ndim != 4 or tensor.shape[1] != 3:
            raise ValueError(f"The {name!r} parameter of {caller} must be {expected}. Got a tensor of shape "
                             f"{tuple(tensor.shape)}.")
    elif isinstance(images, np.ndarray):
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"The {name!r} parameter of {caller} must be {expected}. Got an array of shape "
                             f"{images.shape}.")
        tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    else:
        raise ValueError(f"The {name!r} parameter of {caller} must be {expected}. Got {type(images).__name__}.")
    if tensor.dtype == torch.uint8:
        return tensor
    if not tensor.is_floating_point():
        raise ValueError(f"The {name!r} parameter of {caller} must be uint8 or float in [0, 1]. Got {tensor.dtype}.")
    tensor = tensor.float()
    if not torch.isfinite(tensor).all():
        raise ValueError(f"The {name!r} parameter of {caller} contains NaN or infinite values.")
    lo, hi = float(tensor.min()), float(tensor.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"The {name!r} parameter of {caller} must hold float values in [0, 1] (or uint8 in [0, 255]). "
            f"Got values in [{lo:.4g}, {hi:.4g}]."
        )
    return tensor


def unit_float(batch: Any) -> Any:
    """A batch of :func:`as_image_batch` as float32 in [0, 1] (uint8 is divided by 255)."""
    import torch

    return batch.float() / 255.0 if batch.dtype == torch.uint8 else batch
