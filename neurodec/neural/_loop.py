"""The inner loop of :func:`neurodec.neural.fit_network`: datasets from arrays, batches, one epoch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .._logging import progress

if TYPE_CHECKING:
    import torch

__all__ = ["as_dataset", "run_epoch"]


def as_dataset(data: Any, name: str) -> Any:
    """A torch Dataset from a Dataset, an array/tensor, or a tuple of them (float arrays -> float32)."""
    import torch
    from torch.utils.data import Dataset, TensorDataset

    if isinstance(data, Dataset):
        return data
    parts = list(data) if isinstance(data, (tuple, list)) else [data]
    tensors = []
    for part in parts:
        tensor = torch.as_tensor(np.asarray(part) if not isinstance(part, torch.Tensor) else part)
        if tensor.is_floating_point() and tensor.dtype == torch.float64:
            tensor = tensor.float()
        tensors.append(tensor)
    if not tensors or any(t.ndim == 0 or len(t) != len(tensors[0]) for t in tensors):
        raise ValueError(
            f"The {name!r} parameter must be a torch Dataset, an array, or a tuple of arrays with the same "
            f"first dimension. Got lengths {[tuple(t.shape) for t in tensors]}."
        )
    return TensorDataset(*tensors)


def _to_device(batch: Any, device: "torch.device") -> Any:
    import torch

    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _split_loss(out: Any, where: str) -> tuple["torch.Tensor", dict[str, "torch.Tensor"]]:
    """The loss tensor and any other logged values of a loss function's output."""
    import torch

    if isinstance(out, Mapping):
        if "loss" not in out:
            raise ValueError(f"The 'loss_fn' returned a mapping without a 'loss' key ({where}).")
        return out["loss"], {k: v for k, v in out.items() if k != "loss"}
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        raise ValueError(f"The 'loss_fn' must return a scalar tensor or a mapping with 'loss' ({where}).")
    return out, {}


def run_epoch(model, loader, loss_fn, *, optimizer, scaler, autocast, device, grad_clip, train, desc, verbose):
    """Mean loss (and mean extras) over one pass; optimizer steps when ``train``."""
    import torch

    sums: dict[str, float] = {}
    n_seen = 0
    model.train(train)
    with torch.set_grad_enabled(train):
        for i, batch in enumerate(progress(loader, verbose=verbose, desc=desc, total=len(loader), unit="batch")):
            batch = _to_device(batch, device)
            with torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
                loss, extras = _split_loss(loss_fn(model, batch), f"{desc}, batch {i}")
            if not torch.isfinite(loss.detach()):
                raise FloatingPointError(f"The loss is {loss.item()} at {desc}, batch {i}: lower the learning rate "
                                         "or check the inputs for NaN.")
            if train:
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if grad_clip is not None:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                scaler.step(optimizer)
                scaler.update()
            size = len(batch[0]) if isinstance(batch, (tuple, list)) else len(next(iter(batch.values())))
            n_seen += size
            for key, value in {"loss": loss, **extras}.items():
                sums[key] = sums.get(key, 0.0) + float(torch.as_tensor(value).detach().float().mean()) * size
    return {k: v / max(n_seen, 1) for k, v in sums.items()}, n_seen
