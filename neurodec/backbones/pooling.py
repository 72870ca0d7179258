"""Pool one layer's output into one feature vector per image.

What a layer returns decides how it is pooled:

- convolutional maps, tensor of shape (n_images, channels, height, width)
  (channels-last maps of timm models are recognized by their channel count
  in ``feature_info`` and transposed first):
  "avg"/"max" over space -> (n_images, channels); "grid" averages over a
  ``grid x grid`` partition of space -> (n_images, channels * grid**2);
  "flatten" keeps every unit -> (n_images, channels * height * width);
  "cls" is an error.
- tokens, tensor of shape (n_images, n_tokens, channels) (ViT blocks):
  "avg"/"max" over all tokens (class/register tokens included); "cls" takes
  token 0; "grid" drops the leading n_tokens - floor(sqrt(n_tokens))**2
  prefix tokens, lays the patch tokens out on their square grid and
  averages as for maps; "flatten" keeps all tokens.
- vectors, tensor of shape (n_images, n_features) (pooled outputs, embeddings,
  logits): returned as they are for "avg", "max" and "flatten"; "grid" and
  "cls" are errors.

Non-tensor outputs are reduced first: a dict or transformers ``ModelOutput``
gives its ``last_hidden_state`` (else its first tensor); a tuple gives its
first element (transformers layers return ``(hidden_states, ...)``); a list
of tensors (multi-branch blocks such as CrossViT's) is pooled branch by
branch and concatenated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["POOLINGS", "pool_output"]

POOLINGS = ("avg", "max", "grid", "flatten", "cls")


def _pool_map(x: "torch.Tensor", pooling: str, grid: int, layer: str) -> "torch.Tensor":
    import torch.nn.functional as F

    if pooling == "avg":
        return x.mean(dim=(2, 3))
    if pooling == "max":
        return x.amax(dim=(2, 3))
    if pooling == "grid":
        return F.adaptive_avg_pool2d(x, grid).flatten(1)
    if pooling == "flatten":
        return x.flatten(1)
    raise ValueError(
        f"pooling='cls' needs token outputs of shape (n_images, n_tokens, channels); layer {layer!r} "
        f"gives a map of shape {tuple(x.shape)}. Use 'avg', 'max', 'grid' or 'flatten'."
    )


def _pool_tokens(x: "torch.Tensor", pooling: str, grid: int, layer: str) -> "torch.Tensor":
    if pooling == "avg":
        return x.mean(dim=1)
    if pooling == "max":
        return x.amax(dim=1)
    if pooling == "cls":
        return x[:, 0]
    if pooling == "flatten":
        return x.flatten(1)
    side = math.isqrt(x.shape[1])
    patches = x[:, x.shape[1] - side * side :]
    return _pool_map(patches.transpose(1, 2).reshape(x.shape[0], x.shape[2], side, side), "grid", grid, layer)


def _first_tensor(output: Any, layer: str) -> Any:
    import torch

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        if isinstance(output.get("last_hidden_state"), torch.Tensor):
            return output["last_hidden_state"]
        output = list(output.values())
    if isinstance(output, tuple) and output:
        return _first_tensor(output[0], layer)
    if isinstance(output, list) and output and all(isinstance(o, torch.Tensor) for o in output):
        return output
    raise ValueError(f"Layer {layer!r} returned {type(output).__name__}, which holds no tensor to pool.")


def pool_output(
    output: Any, pooling: str, *, grid: int = 2, layer: str = "", channels: int | None = None
) -> "torch.Tensor":
    """Pool a layer's ``output`` into a tensor of shape (n_images, n_features) (see module docstring).

    Parameters
    ----------
    output : tensor, tuple, list, dict or ModelOutput
        What the layer's forward returned.
    pooling : {"avg", "max", "grid", "flatten", "cls"}
    grid : int
        Side of the spatial grid of ``pooling="grid"``.
    layer : str
        The layer's name, for error messages.
    channels : int, optional
        The layer's channel count, when known, to recognize channels-last maps.
    """
    import torch

    x = _first_tensor(output, layer)
    if isinstance(x, list):
        return torch.cat([pool_output(t, pooling, grid=grid, layer=layer) for t in x], dim=1)
    if x.ndim == 4:
        if channels is not None and x.shape[1] != channels and x.shape[3] == channels:
            x = x.permute(0, 3, 1, 2)
        return _pool_map(x, pooling, grid, layer)
    if x.ndim == 3:
        return _pool_tokens(x, pooling, grid, layer)
    if x.ndim == 2 and pooling in ("avg", "max", "flatten"):
        return x
    if pooling == "flatten" and x.ndim > 1:
        return x.flatten(1)
    raise ValueError(
        f"Layer {layer!r} gives an output of shape {tuple(x.shape)}; pooling={pooling!r} applies to maps "
        "(n, c, h, w), tokens (n, tokens, c) or, for 'avg'/'max'/'flatten', vectors (n, features)."
    )
