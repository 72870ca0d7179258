"""Mapping the authors' released checkpoint files onto neurodec's models.

Training scripts save more than the weights: timm's ``train.py`` nests them
under ``"state_dict"`` (TransXNet, OverLoCK), DeiT-style scripts under
``"model"`` (LSNet), and ``DistributedDataParallel`` prefixes every name with
``"module."``. Light on purpose: no torch import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["release_state_dict"]

# Looked up in this order, as the authors' own loaders (mmcv/mmengine, DeiT's main.py) do.
_NESTING_KEYS = ("state_dict", "model")


def release_state_dict(checkpoint: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """Return the weights of a released checkpoint under ``model``'s parameter names.

    Parameters
    ----------
    checkpoint : mapping
        What ``torch.load`` returned: a state dict, or a training checkpoint
        holding one under ``"state_dict"`` or ``"model"``.
    model : torch.nn.Module
        The model the weights are for; its ``state_dict`` keys are the target names.

    Returns
    -------
    dict
        The state dict with any ``"module."`` prefix removed.

    Raises
    ------
    ValueError
        If no key of the checkpoint matches a parameter of ``model``.
    """
    state = checkpoint
    for key in _NESTING_KEYS:
        if key in state and isinstance(state[key], Mapping):
            state = state[key]
            break
    state = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items()}
    expected = set(model.state_dict())
    if not expected & set(state):
        raise ValueError(
            f"The checkpoint has no weights named like {type(model).__name__}'s parameters "
            f"(e.g. {sorted(expected)[:3]}). Got keys {sorted(state)[:5]} instead."
        )
    return state
