"""Voxel captions from an encoding model in an image-embedding space: BrainSCUBA and its projection.

BrainSCUBA (Luo et al. 2023) describes what a voxel prefers in words: the
voxel's weight vector, fitted on image embeddings (e.g. CLIP), is
unit-normalized and projected onto a bank of natural-image embeddings with a
sharp softmax, ``s = softmax(t * w_hat . e_i)``, ``direction = sum_i s_i e_i``
(renormalized). The projection keeps the direction inside the distribution of
real image embeddings, where a captioner trained on images works; a
CLIP-prefix captioner (:class:`neurodec.discovery.PrefixCaptioner`) then
turns the direction into a caption. LaVCa and the caption score live in
:mod:`neurodec.discovery.lavca`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._docs import fill_doc
from .._logging import progress

if TYPE_CHECKING:
    import pandas as pd
    import torch

__all__ = ["brainscuba_captions", "project_to_image_embeddings"]

_DEFAULT_BATCH = 4096  # units per projection batch: (batch, n_images) softmax scores stay ~100 MB for 10^4 images


def _unit_weights(weights_or_model: Any, units: Sequence[int] | np.ndarray | None, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Weights (n_features, n_selected) and unit indices from an array or a fitted EncodingModel.

    Units without fitted weights (excluded by the model, or with non-finite or
    all-zero weights) are refused with an error that names them.
    """
    model = weights_or_model
    if hasattr(model, "raw_weights") and hasattr(model, "valid_units_"):
        weights = np.asarray(model.raw_weights()[0])
        valid = np.asarray(model.valid_units_, dtype=bool)
    elif hasattr(model, "raw_weights"):
        raise ValueError(f"{where}: the encoding model is not fitted yet (it has no 'valid_units_'); fit it first.")
    else:
        weights = model.detach().cpu().numpy() if hasattr(model, "detach") else np.asarray(model)
        if weights.ndim != 2:
            raise ValueError(
                f"The 'weights' of {where} must be an array of shape (n_features, n_units) or a fitted "
                f"EncodingModel. Got an array of shape {weights.shape}."
            )
        valid = np.ones(weights.shape[1], dtype=bool)
    n_units = weights.shape[1]
    selected = np.arange(n_units) if units is None else np.asarray(units, dtype=int).reshape(-1)
    if selected.size == 0:
        raise ValueError(f"The 'units' of {where} select no unit.")
    if selected.min() < 0 or selected.max() >= n_units:
        raise ValueError(f"The 'units' of {where} must be indices in [0, {n_units}). Got {selected.min()}..{selected.max()}.")
    w = weights[:, selected]
    fitted = valid[selected] & np.isfinite(w).all(axis=0) & (np.abs(w).sum(axis=0) > 0)
    if not fitted.all():
        bad = selected[~fitted]
        raise ValueError(
            f"{where}: {bad.size} of the {selected.size} units have no fitted weights (excluded by the encoding "
            f"model, or NaN/zero weights), e.g. units {bad[:10].tolist()}. Select fitted units with the 'units' "
            "argument, e.g. units=np.flatnonzero(model.valid_units_)."
        )
    return w, selected


def _bank(bank: Any, n_features: int, where: str) -> np.ndarray:
    bank = bank.detach().cpu().numpy() if hasattr(bank, "detach") else np.asarray(bank)
    if bank.ndim != 2:
        raise ValueError(f"The 'bank' of {where} must be an array of shape (n_images, n_features). Got shape {bank.shape}.")
    if bank.shape[1] != n_features:
        raise ValueError(
            f"The embedding 'bank' of {where} has {bank.shape[1]} features per image but the voxel weights have "
            f"{n_features}: both must live in the same image-embedding space (n_features)."
        )
    if not np.isfinite(bank).all():
        raise ValueError(f"The embedding 'bank' of {where} contains NaN or inf.")
    return bank


def _softmax_projection(
    w: "torch.Tensor", bank: "torch.Tensor", temperature: float, n_nearest: int
) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """Directions (n, d), and the indices and softmax weights of the n_nearest heaviest bank images."""
    import torch

    tiny = torch.finfo(w.dtype).tiny
    w_hat = w / w.norm(dim=1, keepdim=True).clamp_min(tiny)
    s = torch.softmax(temperature * (w_hat @ bank.T), dim=1)
    direction = s @ bank
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(tiny)
    top = torch.topk(s, n_nearest, dim=1)
    return direction, top.indices, top.values


@fill_doc
def project_to_image_embeddings(
    weights: Any,
    bank: Any,
    *,
    temperature: float = 150.0,
    n_units_batch: int | None = None,
    device: Any = "auto",
    verbose: bool | int = False,
) -> np.ndarray:
    """BrainSCUBA's projection of voxel weight vectors onto a bank of image embeddings.

    Each unit's weight vector ``w`` is unit-normalized; every bank embedding
    ``e_i`` is unit-normalized; ``s = softmax(temperature * w_hat . e_i)``
    over the bank, and the direction ``sum_i s_i e_i`` is renormalized to unit
    norm. High temperatures approach the single nearest bank image, low ones
    the bank's mean direction.

    Parameters
    ----------
    weights : array of shape (n_features, n_units), or a fitted EncodingModel
        Voxel weights in the image-embedding space (e.g. ``model.raw_weights()[0]``
        of a model fit on CLIP image embeddings). A model's excluded units are refused.
    bank : array of shape (n_images, n_features)
        Embeddings of natural images in the same space.
    temperature : float
        Softmax temperature ``t`` (BrainSCUBA: 150), > 0.
    n_units_batch : int, optional
        Units per batch (bounds memory: a batch holds (n_units_batch, n_images) scores).
    %(device)s
    %(verbose)s

    Returns
    -------
    directions : array of shape (n_units, n_features)
        Unit-norm projected directions, float32.
    """
    return _project(weights, bank, None, temperature, 1, n_units_batch, device, verbose, "project_to_image_embeddings")[0]


def _project(weights, bank, units, temperature, n_nearest, n_units_batch, device, verbose, where):  # type: ignore[no-untyped-def]
    import torch

    from .._device import resolve_device

    if not (isinstance(temperature, (int, float, np.number)) and np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"The 'temperature' of {where} must be a finite number > 0. Got {temperature!r}.")
    w, selected = _unit_weights(weights, units, where)
    bank = _bank(bank, w.shape[0], where)
    if not 1 <= n_nearest <= len(bank):
        raise ValueError(f"The 'n_nearest' of {where} must be in [1, {len(bank)}] (bank images). Got {n_nearest}.")
    if (device is None or device == "auto") and hasattr(weights, "device") and hasattr(weights, "detach"):
        device = weights.device  # "auto" follows a tensor input
    batch = _DEFAULT_BATCH if n_units_batch is None else int(n_units_batch)
    if batch < 1:
        raise ValueError(f"The 'n_units_batch' of {where} must be >= 1. Got {n_units_batch!r}.")
    dev = resolve_device(device)
    e = torch.as_tensor(bank, dtype=torch.float32, device=dev)
    e = e / e.norm(dim=1, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)
    directions = np.empty((w.shape[1], w.shape[0]), dtype=np.float32)
    nearest = np.empty((w.shape[1], n_nearest), dtype=np.int64)
    share = np.empty((w.shape[1], n_nearest), dtype=np.float32)
    starts = range(0, w.shape[1], batch)
    for start in progress(starts, verbose=verbose, desc="projection", total=len(starts), unit="batch"):
        wb = torch.as_tensor(np.ascontiguousarray(w[:, start : start + batch].T), dtype=torch.float32, device=dev)
        d, idx, val = _softmax_projection(wb, e, float(temperature), n_nearest)
        stop = start + len(wb)
        directions[start:stop], nearest[start:stop], share[start:stop] = d.cpu().numpy(), idx.cpu().numpy(), val.cpu().numpy()
    return directions, nearest, share, selected


@fill_doc
def brainscuba_captions(
    weights_or_model: Any,
    bank: Any,
    captioner: Any,
    *,
    units: Sequence[int] | np.ndarray | None = None,
    temperature: float = 150.0,
    n_nearest: int = 5,
    num_beams: int = 5,
    max_new_tokens: int = 30,
    n_units_batch: int | None = None,
    device: Any = "auto",
    verbose: bool | int = False,
) -> "pd.DataFrame":
    """Caption every unit's preferred direction, BrainSCUBA's way.

    Projects the units' weight vectors onto the image-embedding bank
    (:func:`project_to_image_embeddings`) and captions the projected
    directions with a captioner trained on image embeddings of the same space.

    Parameters
    ----------
    weights_or_model : array of shape (n_features, n_units), or a fitted EncodingModel
        Voxel weights in the image-embedding space; from a model, its
        ``raw_weights()`` (its excluded units are refused: select fitted ones with ``units``).
    bank : array of shape (n_images, n_features)
        Natural-image embeddings (BrainSCUBA: CLIP embeddings of held-out natural images).
    captioner : PrefixCaptioner or callable
        A fitted :class:`PrefixCaptioner` (its ``generate`` is called with
        ``num_beams`` and ``max_new_tokens``), or any callable mapping an array
        of shape (n, n_features) to n captions.
    units : sequence of int, optional
        Units to caption (all by default).
    temperature : float
        Softmax temperature of the projection (> 0).
    n_nearest : int
        Bank images with the largest softmax weight listed per unit.
    num_beams, max_new_tokens : int
        Beam search settings of a PrefixCaptioner.
    n_units_batch : int, optional
        Units per projection batch.
    %(device)s
    %(verbose)s

    Returns
    -------
    pandas.DataFrame
        One row per unit: ``unit`` (index into the weights' units),
        ``caption``, ``nearest_images`` (bank indices, heaviest first),
        ``nearest_weights`` (their softmax weights) and ``direction`` (the
        projected unit vector, a float32 array of shape (n_features,)).
    """
    import pandas as pd

    directions, nearest, share, selected = _project(
        weights_or_model, bank, units, temperature, n_nearest, n_units_batch, device, verbose, "brainscuba_captions"
    )
    captions = _caption(captioner, directions, num_beams=num_beams, max_new_tokens=max_new_tokens)
    return pd.DataFrame({
        "unit": selected, "caption": captions, "nearest_images": list(nearest), "nearest_weights": list(share),
        "direction": list(directions),
    })


def _caption(captioner: Any, embeddings: np.ndarray, **generate_kwargs: Any) -> list[str]:
    if hasattr(captioner, "generate"):
        captions = captioner.generate(embeddings, **generate_kwargs)
    elif callable(captioner):
        captions = captioner(embeddings)
    else:
        raise TypeError(f"The 'captioner' must be a PrefixCaptioner or a callable. Got {type(captioner).__name__}.")
    captions = list(captions)
    if len(captions) != len(embeddings) or not all(isinstance(c, str) for c in captions):
        raise ValueError(f"The captioner returned {len(captions)} items for {len(embeddings)} embeddings; expected one string each.")
    return captions
