"""Conversion of the authors' TensorFlow MOAT checkpoints (google-research/deeplab2) to PyTorch.

deeplab2 names every variable by its Keras layer scope, e.g.
``moat/block_02_03/attention/q/weight`` or ``moat/stem/norm_0/moving_mean``
(blocks are numbered ``block_<stage>_<index>``), and stores kernels in
TensorFlow's layouts: convolutions ``(kh, kw, in, out)``, depth-wise
convolutions ``(kh, kw, in, 1)``, attention projections ``(dim, heads, head_size)``
and ``(heads, head_size, dim)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["convert_tf_checkpoint"]

_BN_NAMES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def _tf_variable(key: str, module: nn.Module) -> str | None:
    """The TensorFlow variable name of the state-dict entry ``key`` (None: not stored by TF)."""
    path, _, leaf = key.rpartition(".")
    parts = path.split(".")
    if parts[0] == "stages":
        parts = [f"block_{int(parts[1]):02d}_{int(parts[2]):02d}", *parts[3:]]
    scope = "/".join(["moat", *parts]) if path else "moat"
    if isinstance(module, nn.BatchNorm2d):
        name = _BN_NAMES.get(leaf)
    elif isinstance(module, nn.LayerNorm):
        name = {"weight": "gamma", "bias": "beta"}[leaf]
    elif isinstance(module, nn.Conv2d) and leaf == "weight":
        name = "depthwise_kernel" if module.groups > 1 else "kernel"
    elif isinstance(module, nn.Linear) and leaf == "weight":
        name = "weight" if parts[-2:-1] == ["attention"] else "kernel"  # TrailDense vs 1x1 Conv2D head
    else:
        name = leaf
    return None if name is None else f"{scope}/{name}"


def _from_tf_layout(value: torch.Tensor, module: nn.Module, key: str, shape: torch.Size) -> torch.Tensor:
    path, _, leaf = key.rpartition(".")
    if isinstance(module, nn.Conv2d) and leaf == "weight":  # (kh, kw, in, out) or depth-wise (kh, kw, in, 1)
        return value.permute(2, 3, 0, 1) if module.groups > 1 else value.permute(3, 2, 0, 1)
    if isinstance(module, nn.Linear) and leaf == "weight":
        if path.endswith(("attention.q", "attention.k", "attention.v")):  # (dim, heads, head_size)
            return value.reshape(shape[1], -1).t()
        return value.reshape(-1, shape[0]).t()  # o: (heads, head_size, dim); head: (1, 1, dim, classes)
    return value.reshape(shape)


def convert_tf_checkpoint(tf_variables: Mapping[str, Any], model: nn.Module) -> dict[str, torch.Tensor]:
    """Map the variables of an authors' TensorFlow MOAT checkpoint onto ``model``'s state dict.

    Parameters
    ----------
    tf_variables : mapping
        Variable name -> array, as read by
        ``{n: r.get_tensor(n) for n in r.get_variable_to_shape_map()}`` with
        ``r = tf.train.load_checkpoint(path)``. Stem variables may carry or lack
        the ``moat/stem/`` scope, as in the authors' loader; optimizer slots and
        moving averages are ignored.
    model : MOAT
        A model built with the checkpoint's configuration (variant, position
        embedding; ``num_classes=0`` if the checkpoint has no classifier).

    Returns
    -------
    dict
        Parameter name -> tensor in PyTorch layout, ready for ``model.load_state_dict``.
    """
    modules = dict(model.named_modules())
    out, missing = {}, []
    for key, current in model.state_dict().items():
        path, _, leaf = key.rpartition(".")
        module = modules[path]
        name = _tf_variable(key, module)
        if name is None:  # BatchNorm's num_batches_tracked
            out[key] = current
            continue
        if name not in tf_variables and name.startswith("moat/stem/"):
            name = name[len("moat/stem/") :]
        if name not in tf_variables:
            missing.append(name)
            continue
        value = torch.as_tensor(tf_variables[name]).to(current.dtype)
        out[key] = _from_tf_layout(value, module, key, current.shape)
    if missing:
        raise ValueError(
            f"The TensorFlow checkpoint lacks {len(missing)} variables of this {type(model).__name__}, "
            f"e.g. {missing[:3]}. Build the model with the checkpoint's variant and position_embedding "
            "setting (and num_classes=0 if the checkpoint has no logits_head)."
        )
    return out
