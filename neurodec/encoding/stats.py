"""Significance of held-out scores: permutation tests and false discovery rate control.

The null distribution of a target's correlation is built by permuting the
order of the predicted test samples against the measured ones (whole samples
for independent stimuli; contiguous blocks for time series, whose samples are
autocorrelated). R^2 and r are both increasing functions of the cross product
``sum(y_true * y_pred[perm])`` when the marginals are fixed, so the p-values of
r are those of R^2 too.

Uncertainty of scores (bootstrap over test stimuli) is in :mod:`neurodec.encoding.bootstrap`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .._logging import progress
from .scores import _check_pair

__all__ = ["PermutationResult", "draw_permutations", "fdr_correction", "null_correlations", "permutation_test"]

#: Largest number of float64 values one batch of permuted data may hold.
_BATCH_VALUES = 4_000_000


@dataclasses.dataclass(frozen=True)
class PermutationResult:
    """Outcome of :func:`permutation_test`.

    Attributes
    ----------
    observed : array of shape (n_targets,)
        Pearson r of the unpermuted predictions.
    p_values : array of shape (n_targets,)
        One-sided p-values ``(1 + #{null >= observed}) / (1 + n_permutations)``;
        NaN where ``observed`` is NaN.
    n_permutations : int
    null : array of shape (n_permutations, n_targets) or None
        The null correlations, when requested.
    """

    observed: np.ndarray
    p_values: np.ndarray
    n_permutations: int
    null: np.ndarray | None = None


def _standardize_columns(y: np.ndarray) -> np.ndarray:
    y = y - y.mean(axis=0)
    norm = np.sqrt((y**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return y / norm


def _block_permutation(rng: np.random.Generator, n: int, block_size: int) -> np.ndarray:
    blocks = np.array_split(np.arange(n), np.arange(block_size, n, block_size))
    order = rng.permutation(len(blocks))
    return np.concatenate([blocks[i] for i in order])


def draw_permutations(
    rng: np.random.Generator, n_permutations: int, n_samples: int, block_size: int | None = None
) -> np.ndarray:
    """Sample orders of the test samples, drawn in sequence from ``rng``.

    Successive calls continue the same stream, so drawing in batches gives the
    permutations of one call (what makes p-values independent of batching).

    Parameters
    ----------
    rng : numpy.random.Generator
    n_permutations, n_samples : int
    block_size : int, optional
        Permute contiguous blocks of this many samples (the last may be shorter).

    Returns
    -------
    int array of shape (n_permutations, n_samples)
    """
    if block_size is None:
        return np.argsort(rng.random((n_permutations, n_samples)), axis=1)
    return np.stack([_block_permutation(rng, n_samples, block_size) for _ in range(n_permutations)])


def null_correlations(zt: Any, zp: Any, index: Any) -> Any:
    """Correlations of permuted standardized columns: ``r[b, k] = sum_i zt[index[b, i], k] * zp[i, k]``.

    Parameters
    ----------
    zt, zp : tensor of shape (n_samples, n_targets)
        Centered columns of unit norm.
    index : int tensor of shape (n_batch, n_samples), on the device of ``zt``

    Returns
    -------
    tensor of shape (n_batch, n_targets)
    """
    return (zt[index] * zp).sum(dim=1)


def permutation_test(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    n_permutations: int = 1000,
    block_size: int | None = None,
    random_state: int | np.random.Generator | None = None,
    return_null: bool = False,
    device: Any = "auto",
    verbose: bool | int = False,
) -> PermutationResult:
    """Permutation p-value of the correlation between predicted and true responses.

    Parameters
    ----------
    y_true, y_pred : array of shape (n_samples, n_targets)
        Measured and predicted held-out responses.
    n_permutations : int
        Number of permutations of the sample order.
    block_size : int, optional
        Permute contiguous blocks of this many samples instead of single
        samples (for autocorrelated time series; choose a block longer than
        the autocorrelation). The last block may be shorter.
    random_state : int or numpy.random.Generator, optional
        Seed of the permutations.
    return_null : bool
        Keep the null distribution (memory n_permutations x n_targets).
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device
        Where the permuted correlations are computed (float64). The
        permutations are drawn on the CPU, so a seed gives the same p-values
        on every device.
    verbose : bool or int
        Show a progress bar.

    Returns
    -------
    PermutationResult
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    n, n_targets = y_true.shape
    if n_permutations < 1:
        raise ValueError(f"The 'n_permutations' parameter must be >= 1. Got {n_permutations}.")
    if block_size is not None and not 1 <= block_size < n:
        raise ValueError(f"The 'block_size' parameter must be in [1, {n - 1}] for {n} samples. Got {block_size}.")
    import torch

    from .._device import resolve_device

    rng = np.random.default_rng(random_state)
    zt, zp = _standardize_columns(y_true), _standardize_columns(y_pred)
    observed = np.clip((zt * zp).sum(axis=0), -1.0, 1.0)
    dev = resolve_device(device)
    zt_t, zp_t = torch.as_tensor(zt, device=dev), torch.as_tensor(zp, device=dev)
    threshold = torch.as_tensor(observed - 1e-12, device=dev)
    exceed = torch.zeros(n_targets, dtype=torch.int64, device=dev)
    null = np.empty((n_permutations, n_targets)) if return_null else None
    batch = max(1, min(n_permutations, _BATCH_VALUES // max(1, n * n_targets)))
    starts = range(0, n_permutations, batch)
    for start in progress(starts, verbose=verbose, desc="permutations", total=len(starts)):
        stop = min(start + batch, n_permutations)
        index = draw_permutations(rng, stop - start, n, block_size)
        r_null = null_correlations(zt_t, zp_t, torch.as_tensor(index, device=dev))
        # Ties with the observed value count as exceedances (conservative).
        exceed += (r_null >= threshold).sum(dim=0)
        if null is not None:
            null[start:stop] = r_null.cpu().numpy()
    p_values = (1.0 + exceed.cpu().numpy()) / (1.0 + n_permutations)
    p_values[~np.isfinite(observed)] = np.nan
    return PermutationResult(observed=observed, p_values=p_values, n_permutations=n_permutations, null=null)


def fdr_correction(p_values: np.ndarray, *, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg false discovery rate control across targets.

    Parameters
    ----------
    p_values : array of shape (n_targets,)
        NaN entries (e.g. excluded voxels) are left out of the correction.
    alpha : float
        The false discovery rate to control.

    Returns
    -------
    rejected : bool array of shape (n_targets,)
        True where the null hypothesis is rejected at FDR ``alpha``.
    q_values : array of shape (n_targets,)
        BH-adjusted p-values (``scipy.stats.false_discovery_control``); NaN where
        the p-value was NaN.
    """
    from scipy.stats import false_discovery_control

    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"'p_values' must be one-dimensional. Got shape {p.shape}.")
    finite = np.isfinite(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError("'p_values' must lie in [0, 1].")
    if not 0 < alpha < 1:
        raise ValueError(f"The 'alpha' parameter must be in (0, 1). Got {alpha}.")
    q = np.full_like(p, np.nan)
    if finite.any():
        q[finite] = false_discovery_control(p[finite], method="bh")
    rejected = np.zeros(p.shape, dtype=bool)
    rejected[finite] = q[finite] <= alpha
    return rejected, q
