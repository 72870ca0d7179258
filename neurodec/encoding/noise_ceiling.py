"""Noise ceilings estimated from repeated presentations of the same stimuli.

NSD ships a noise-ceiling SNR (``ncsnr``) per voxel; other datasets (or
simulations) can estimate it the same way (Allen et al. 2022): z-score every
unit's trial responses, take the noise variance as the mean over stimuli of
the variance across repeats, the signal variance as what remains of the unit
variance, and ``ncsnr = signal_sd / noise_sd``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._logging import get_logger
from ..data.responses import Responses, noise_ceiling_from_ncsnr

__all__ = ["compute_noise_ceiling", "estimate_ncsnr", "noise_ceiling_tensor"]

logger = get_logger(__name__)


def estimate_ncsnr(responses: Responses, *, by_session: bool = False) -> np.ndarray:
    """Noise-ceiling SNR of every unit from the trials of repeated stimuli.

    Parameters
    ----------
    responses : Responses
        Single-trial responses (n_trials, n_units); only stimuli shown at least
        twice enter the estimate.
    by_session : bool
        Z-score each unit within each session (NSD's procedure, which removes
        session drifts) instead of across all trials. Needs enough trials per
        session for a stable mean and variance.

    Returns
    -------
    array of shape (n_units,)
        ``sqrt(max(0, 1 - noise_var)) / sqrt(noise_var)``; NaN for constant units
        or units with NaN responses.

    Notes
    -----
    With repeats of unequal number, the noise variance pools the per-stimulus
    variances weighted by their degrees of freedom (repeats - 1).
    """
    return _ncsnr_tensor(responses, by_session=by_session, device="cpu").numpy()


def _ncsnr_tensor(responses: Responses, *, by_session: bool, device: Any) -> Any:
    """:func:`estimate_ncsnr` as a float64 tensor: the repeated trials are copied to ``device`` and reduced there."""
    import torch

    if responses.data.ndim != 2:
        raise ValueError(
            f"estimate_ncsnr needs responses of shape (n_trials, n_units). Got shape {responses.shape}."
        )
    counts = responses.trials.groupby("stimulus_id")["stimulus_id"].transform("size").to_numpy()
    keep = counts >= 2
    if not keep.any():
        raise ValueError("estimate_ncsnr needs stimuli shown at least twice; every stimulus here was shown once.")
    from ._device_scoring import to_device

    data = to_device(np.asarray(responses.data)[keep], torch.float64, device)
    trials = responses.trials.loc[keep].reset_index(drop=True)
    groups = trials["session"].to_numpy() if by_session else np.zeros(len(trials), dtype=int)
    z = torch.empty_like(data)
    for session in np.unique(groups):
        rows = to_device(np.flatnonzero(groups == session), torch.int64, data.device)
        block = data[rows]
        z[rows] = (block - block.mean(dim=0)) / block.std(dim=0, correction=0)
    codes = pd.factorize(trials["stimulus_id"])[0]
    n_rep = np.bincount(codes).astype(np.float64)
    codes_t = to_device(codes, torch.int64, data.device)
    sums = torch.zeros((len(n_rep), z.shape[1]), dtype=z.dtype, device=z.device).index_add_(0, codes_t, z)
    means = sums / to_device(n_rep, torch.float64, z.device)[:, None]
    noise_var = ((z - means[codes_t]) ** 2).sum(dim=0) / (n_rep - 1).sum()
    ncsnr = (1.0 - noise_var).clamp_min(0.0).sqrt() / noise_var.sqrt()
    return torch.where(torch.isfinite(noise_var), ncsnr, torch.nan)


def compute_noise_ceiling(responses: Responses, *, split: str = "test") -> np.ndarray:
    """Noise ceiling of the repeat-averaged ``split`` of ``responses``, per unit.

    Parameters
    ----------
    responses : Responses
        Single-trial or already repeat-averaged responses (the latter with an
        ``n_repeats`` trial column, as :meth:`Responses.average_repeats` writes).
    split : str
        The split whose repeat-averaged data the ceiling is for.

    Returns
    -------
    array of shape (n_units,)
        ``ncsnr^2 / (ncsnr^2 + mean(1/n))`` over the split's stimuli (NSD's
        formula with the Algonauts weighting of unequal repeat counts), with
        ``ncsnr`` from the ``ncsnr`` unit column, else estimated from the
        split's repeated single trials (:func:`estimate_ncsnr`), else NaN.
    """
    return noise_ceiling_tensor(responses, split=split, device="cpu").numpy()


def noise_ceiling_tensor(responses: Responses, *, split: str = "test", device: Any = "cpu") -> Any:
    """:func:`compute_noise_ceiling` as a float64 tensor computed on ``device``.

    The repeated single trials are copied to ``device`` once and the
    estimate stays there (scoring on a GPU needs no copy back).

    Parameters
    ----------
    responses : Responses
    split : str
    device : torch.device or str

    Returns
    -------
    tensor of shape (n_units,)
    """
    import torch

    trials = responses.split(split)
    ids = trials.trials["stimulus_id"]
    if "n_repeats" in trials.trials.columns and ids.is_unique:
        counts = trials.trials["n_repeats"].to_numpy()
    else:
        counts = ids.value_counts(sort=False).to_numpy()
    if "ncsnr" in responses.units.columns:
        nc = noise_ceiling_from_ncsnr(responses.units["ncsnr"].to_numpy(), counts)
        return torch.as_tensor(nc, dtype=torch.float64, device=device)
    if not ids.is_unique:
        logger.info("No 'ncsnr' unit column: estimating the noise ceiling from the %s repeats.", split)
        return noise_ceiling_from_ncsnr(_ncsnr_tensor(trials, by_session=False, device=device), counts)
    logger.info("No 'ncsnr' unit column and no repeated %s stimulus: the noise ceiling is unknown (NaN).", split)
    return torch.full((responses.n_units,), torch.nan, dtype=torch.float64, device=device)
