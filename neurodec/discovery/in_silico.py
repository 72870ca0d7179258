"""In-silico experiments: an encoder's predicted responses to any image set, as measured responses.

:func:`predict_responses` runs a :class:`~neurodec.discovery.BrainEncoder`
(or any module mapping images (N, 3, H, W) in [0, 1] to responses (N,
n_units)) over a stimulus set in batches and returns a
:class:`~neurodec.data.Responses`, so every encoding tool (fitting, scoring,
ROI summaries, maps) applies to predictions as to recordings.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._device import resolve_device
from .._logging import progress
from ..data.responses import Responses
from ..data.stimuli import Stimuli

__all__ = ["predict_responses"]


def _image_source(stimuli: Any) -> tuple[list[Hashable], Any, str]:
    """(ids, id -> float tensor (3, H, W) in [0, 1] or a batch slice reader, name) of ``stimuli``."""
    import torch

    if isinstance(stimuli, torch.Tensor):
        if stimuli.ndim != 4 or stimuli.shape[1] != 3 or not stimuli.is_floating_point():
            raise ValueError(
                "A tensor of stimuli must be float images of shape (n_images, 3, height, width) in [0, 1]. "
                f"Got {stimuli.dtype} of shape {tuple(stimuli.shape)}."
            )
        return list(range(len(stimuli))), lambda i: stimuli[i], "tensor"
    if not isinstance(stimuli, Stimuli):
        from ..backbones.extraction import _as_stimuli

        stimuli = _as_stimuli(stimuli)

    def read(stimulus_id: Hashable) -> "torch.Tensor":
        from ..backbones.preprocessing import to_pil_rgb

        rgb = np.array(to_pil_rgb(stimuli.get_image(stimulus_id)))  # a writable copy for torch
        return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0

    return list(stimuli.ids), read, stimuli.name


def predict_responses(
    encoder: Any,
    stimuli: Stimuli | np.ndarray | Any,
    *,
    split: str | Sequence[str] | np.ndarray = "train",
    batch_size: int = 32,
    device: Any = None,
    verbose: bool | int = True,
) -> Responses:
    """Predicted responses of ``encoder``'s units to ``stimuli``, as a :class:`~neurodec.data.Responses`.

    Parameters
    ----------
    encoder : BrainEncoder or torch.nn.Module
        Images (N, 3, H, W) in [0, 1] -> responses (N, n_units). A
        :class:`~neurodec.discovery.BrainEncoder` also gives the units'
        metadata, subject, space and modality.
    stimuli : Stimuli, array of shape (n_images, height, width[, 3]) or tensor of shape (n_images, 3, height, width)
        uint8 images (a Stimuli or an array, as for feature extraction) or
        float images in [0, 1] (a tensor, e.g. synthesized images; ids 0..n-1).
    split : {"train", "test"} or array of shape (n_stimuli,)
        The ``split`` column of the trials. Predictions are noiseless, one
        "repeat" per stimulus; the default "train" makes them fitting targets
        (e.g. for a model on other features); give an array to hold some
        stimuli out for scoring.
    batch_size : int
        Images per forward pass.
    device : {"auto", "cpu", "cuda"} or torch.device, optional
        Where to run; defaults to where the encoder is (a BrainEncoder is
        moved there).
    verbose : bool or int
        Show a progress bar.

    Returns
    -------
    Responses
        data of shape (n_stimuli, n_units), float32; trials with
        ``stimulus_id``, ``session`` (0), ``run`` (0), ``repeat`` (0) and
        ``split``; units from the encoder's ``unit_info_`` when known, plus
        ``model_unit`` (the unit's index in the encoding model);
        ``info["in_silico"]`` names the model, backbone and weights.

    Examples
    --------
    >>> encoder = BrainEncoder.from_fitted(backbone, model, features, responses=responses)  # doctest: +SKIP
    >>> predicted = predict_responses(encoder, Stimuli.from_array(images), verbose=False)  # doctest: +SKIP
    >>> predicted.roi_mask("floc-faces", "FFA-1")  # doctest: +SKIP
    """
    import torch

    if int(batch_size) < 1:
        raise ValueError(f"The 'batch_size' parameter must be a positive integer. Got {batch_size}.")
    ids, read, name = _image_source(stimuli)
    if not ids:
        raise ValueError("The 'stimuli' hold no images.")
    if isinstance(split, str):
        splits = np.full(len(ids), split, dtype=object)
    else:
        splits = np.asarray(split, dtype=object)
        if splits.shape != (len(ids),):
            raise ValueError(f"'split' must be a string or an array of shape ({len(ids)},). Got shape {splits.shape}.")
    unknown = sorted(set(splits.tolist()) - {"train", "test"})
    if unknown:
        raise ValueError(f"'split' values must be 'train' or 'test'. Got {unknown}.")
    if device is not None:
        encoder.to(resolve_device(device))
    # Inputs go where the encoder's weights are (a BrainEncoder keeps its head in buffers).
    tensor = next(iter(encoder.buffers()), None)
    tensor = next(iter(encoder.parameters()), None) if tensor is None else tensor
    dev = tensor.device if tensor is not None else resolve_device("cpu")
    rows = []
    with torch.no_grad():
        for start in progress(range(0, len(ids), int(batch_size)), verbose=verbose, desc="in-silico responses",
                              unit="batch"):
            images = [read(i) for i in ids[start : start + int(batch_size)]]
            if len({tuple(x.shape) for x in images}) == 1:
                rows.append(encoder(torch.stack(images).to(dev)).float().cpu())
            else:  # images of different sizes: the encoder resizes each, one at a time
                rows.extend(encoder(x[None].to(dev)).float().cpu() for x in images)
    data = torch.cat(rows).numpy()
    model_units = getattr(encoder, "units_", np.arange(data.shape[1]))
    info_units = getattr(encoder, "unit_info_", None)
    units = pd.DataFrame(index=range(data.shape[1])) if info_units is None else info_units.copy()
    units["model_unit"] = np.asarray(model_units)
    trials = pd.DataFrame({"stimulus_id": ids, "session": 0, "run": 0, "repeat": 0, "split": splits})
    provenance = {
        "model": getattr(encoder, "model_name_", type(encoder).__name__),
        "backbone": getattr(encoder, "backbone_name_", None), "weights": getattr(encoder, "weights_", None),
        "stimuli": name,
    }
    return Responses(
        data=data, trials=trials, units=units, subject=getattr(encoder, "subject_", "in-silico"),
        modality=getattr(encoder, "modality_", "fmri"), space=getattr(encoder, "space_", ""),
        info={"in_silico": provenance, "dataset": "in-silico predictions"},
    )
