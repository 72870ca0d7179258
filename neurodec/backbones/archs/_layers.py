"""Pieces shared by neurodec's own architectures: timm layers, checkpoint unwrapping.

timm is imported on first use (after :func:`neurodec._torchvision.import_torchvision`),
not when the architecture modules are imported by a registry query, so listing
backbones only costs the import of torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import torch
from torch import nn

__all__ = ["drop_path", "init_weights_", "layer_norm_2d", "timm_layers", "unwrap_checkpoint"]

# Keys under which training scripts nest the weights in a saved checkpoint, in the
# order the authors' own loaders look for them (ConvNeXt/HorNet and Swin/RepMLP
# scripts read "model" first).
_NESTING_KEYS = ("model", "state_dict", "model_ema", "ema")


def timm_layers() -> ModuleType:
    """Return ``timm.layers``, importing torchvision safely first."""
    from ..._torchvision import import_torchvision

    import_torchvision()
    import timm.layers

    return timm.layers


def drop_path(rate: float) -> nn.Module:
    """Stochastic depth with drop probability ``rate`` (identity when 0)."""
    if rate < 0 or rate >= 1:
        raise ValueError(f"The drop path rate must be in [0, 1). Got {rate!r} instead.")
    return timm_layers().DropPath(rate) if rate > 0 else nn.Identity()


def layer_norm_2d(num_channels: int, *, eps: float = 1e-6) -> nn.Module:
    """LayerNorm over the channels of an ``(N, C, H, W)`` map (params ``weight``, ``bias``)."""
    return timm_layers().LayerNorm2d(num_channels, eps=eps)


def init_weights_(model: nn.Module, *, std: float = 0.02, truncated: bool = True) -> None:
    """Draw every convolution and linear kernel from N(0, std) (truncated at 2 std) and zero the biases."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if truncated:
                nn.init.trunc_normal_(module.weight, std=std)
            else:
                nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def unwrap_checkpoint(state_dict: Mapping[str, Any], model: nn.Module) -> dict[str, torch.Tensor]:
    """Map a released checkpoint onto ``model``'s parameter names.

    Takes the weights out of a training checkpoint that nests them under
    ``"model"``, ``"state_dict"``, ``"model_ema"`` or ``"ema"``, and strips the
    ``"module."`` prefix that ``DistributedDataParallel`` adds to every name.

    Parameters
    ----------
    state_dict : mapping
        What ``torch.load`` returned for the checkpoint file.
    model : torch.nn.Module
        The model the weights will be loaded into (used to check the names).

    Returns
    -------
    dict
        Parameter name -> tensor, ready for ``model.load_state_dict``.
    """
    for key in _NESTING_KEYS:
        if key in state_dict and isinstance(state_dict[key], Mapping):
            state_dict = state_dict[key]
            break
    out = {}
    for name, value in state_dict.items():
        out[name[len("module.") :] if name.startswith("module.") else name] = value
    if not set(out) & set(model.state_dict()):
        some = ", ".join(sorted(out)[:3])
        raise ValueError(
            f"The checkpoint's names match none of {type(model).__name__}'s parameters "
            f"(checkpoint starts with: {some}). Is it a checkpoint of this architecture?"
        )
    return out
