"""Scoring an encoding model block by block of units, on the model's device.

:class:`DeviceScorer` holds the standardized test features on the compute
device and, for every block of units, computes the predictions, r, R^2, the
permutation exceedance counts, the banded split R^2 and the bootstrap ROI
sums there, beside the noise ceilings (given, or estimated on the device by
:func:`~neurodec.encoding.noise_ceiling.noise_ceiling_tensor`). The per-unit results accumulate in device tensors and are
copied to the host once, by :meth:`DeviceScorer.finish`: a GPU never waits
on a device-to-host copy between blocks. On CPU the same code runs on CPU
tensors (and is what the tests check against the numpy functions).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .stats import _BATCH_VALUES, draw_permutations, null_correlations

__all__ = ["DeviceScorer", "linear_predictions", "to_device"]


def linear_predictions(X: Any, W: np.ndarray, *, device: Any, n_targets_batch: int | None = None) -> Any:
    """``X @ W`` in float32 on ``device``, as one tensor there.

    Parameters
    ----------
    X : array or tensor of shape (n_samples, n_features)
    W : array of shape (n_features, n_targets)
        Uploaded ``n_targets_batch`` columns at a time (the weights of a
        whole-brain model can exceed device memory; the products do not).
    device : torch.device
    n_targets_batch : int, optional

    Returns
    -------
    tensor of shape (n_samples, n_targets), float32 on ``device``
    """
    import torch

    Xt = torch.as_tensor(X, dtype=torch.float32, device=device)
    out = torch.empty((Xt.shape[0], W.shape[1]), dtype=torch.float32, device=device)
    batch = n_targets_batch or max(1, W.shape[1])
    for start in range(0, W.shape[1], batch):
        Wt = to_device(W[:, start : start + batch], torch.float32, device)
        out[:, start : start + batch] = Xt @ Wt
    return out


def to_device(a: np.ndarray, dtype: Any, device: Any) -> Any:
    """``a`` as a tensor of ``dtype`` on ``device``; to CUDA through pinned memory, without blocking.

    A copy from pageable memory waits for the work queued on the device (CUDA
    synchronizes the stream first); from pinned memory it is queued behind it.
    """
    import torch

    if torch.device(device).type != "cuda":
        return torch.as_tensor(a, dtype=dtype, device=device)
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype).pin_memory().to(device, non_blocking=True)


def _standardized_columns(y: Any) -> Any:
    """Centered columns of unit norm (NaN for constant columns), as the permutation test uses them."""
    y = y - y.mean(dim=0)
    return y / y.square().sum(dim=0).sqrt()


class DeviceScorer:
    """Per-block scores of one encoding model, accumulated on its device.

    Parameters
    ----------
    X : array of shape (n_test, n_features)
        Standardized test features.
    coef : array of shape (n_features, n_units)
    intercept : array of shape (n_units,)
    device : torch.device
    slices : list of slice, optional
        Feature columns of each band, to split R^2 over bands (banded models).
    n_permutations : int
        Permutations of the test samples (0: no permutation test).
    block_size : int, optional
        Permute blocks of this many consecutive test samples.
    seed : int, optional
        Seed of the permutations; the same permutations serve every block,
        and are those :func:`~neurodec.encoding.permutation_test` draws from it.
    noise_ceiling : array of shape (n_units,), optional
        Known noise ceilings; otherwise NaN until :meth:`set_noise_ceiling`.
    bootstrap : ROIBootstrapAccumulator, optional
        Receives every block's test responses and predictions (on the device).
    """

    def __init__(self, X: np.ndarray, coef: np.ndarray, intercept: np.ndarray, *, device: Any,
                 slices: list[slice] | None = None, n_permutations: int = 0, block_size: int | None = None,
                 seed: int | None = None, noise_ceiling: np.ndarray | None = None, bootstrap: Any = None) -> None:
        import torch

        self.device = device
        self.coef, self.intercept = coef, intercept
        self.slices = slices
        self.bootstrap = bootstrap
        self.X = torch.as_tensor(X, dtype=torch.float32, device=device)
        n_test, n_units = X.shape[0], coef.shape[1]
        self.r = torch.full((n_units,), torch.nan, dtype=torch.float64, device=device)
        self.r2 = torch.full_like(self.r, torch.nan)
        self.noise_ceiling = torch.full_like(self.r, torch.nan)
        if noise_ceiling is not None:
            self.noise_ceiling.copy_(torch.as_tensor(noise_ceiling, dtype=torch.float64))
        self.exceed = self.index = None
        self.n_permutations = n_permutations
        if n_permutations > 0:
            if block_size is not None and not 1 <= block_size < n_test:
                raise ValueError(
                    f"The 'block_size' parameter must be in [1, {n_test - 1}] for {n_test} samples. Got {block_size}."
                )
            # Drawn once and kept on the device: every block of units is tested against the same permutations.
            order = draw_permutations(np.random.default_rng(seed), n_permutations, n_test, block_size)
            self.index = torch.as_tensor(order, device=device)
            self.exceed = torch.zeros(n_units, dtype=torch.float64, device=device)
        self.split_r2 = None
        if slices is not None:
            self.split_r2 = torch.full((len(slices), n_units), torch.nan, dtype=torch.float64, device=device)

    def set_noise_ceiling(self, units: slice, values: Any) -> None:
        """Record the noise ceilings of ``units`` (a tensor of shape (n_block,), e.g. estimated on the device)."""
        self.noise_ceiling[units] = values

    def add(self, units: np.ndarray, Y: np.ndarray) -> None:
        """Score one block of units (after their noise ceilings are set, which the bootstrap uses).

        Parameters
        ----------
        units : int array of shape (n_block,)
            Indices of the block's units among all units.
        Y : array of shape (n_test, n_block)
            Their (finite) test responses.
        """
        import torch

        from ..ridge._scoring import pearson_targets, r2_targets

        dev = self.device
        idx = to_device(units, torch.int64, dev)
        Yt = to_device(Y, torch.float64, dev)
        W = to_device(self.coef[:, units], torch.float32, dev)
        intercept = to_device(self.intercept[units], torch.float64, dev)
        prediction = (self.X @ W).double() + intercept
        r = pearson_targets(Yt, prediction).clamp(-1.0, 1.0)
        r2 = r2_targets(Yt, prediction)
        self.r[idx], self.r2[idx] = r, r2
        if self.index is not None:
            self.exceed[idx] = self._exceedances(Yt, prediction, r)
        if self.split_r2 is not None:
            from ..ridge.banded import r2_score_split

            # Training features are centered, so the intercept is the training mean of every unit: the band
            # contributions (predictions without the intercept) split R^2 around that mean.
            contributions = torch.stack([(self.X[:, s] @ W[s]).double() for s in self.slices])
            self.split_r2[:, idx] = r2_score_split(Yt - intercept, contributions)
        if self.bootstrap is not None:
            self.bootstrap.add(units, Yt, prediction, self.noise_ceiling[idx], full_r=r, full_r2=r2)

    def _exceedances(self, Y: Any, prediction: Any, r: Any) -> Any:
        """How many permutations reach the observed r, per unit (float64 counts on the device)."""
        import torch

        zt, zp = _standardized_columns(Y), _standardized_columns(prediction)
        # Ties with the observed value count as exceedances (conservative); NaN r never exceeds.
        threshold = r - 1e-12
        count = torch.zeros_like(r)
        n_test, n_block = Y.shape
        batch = max(1, min(self.n_permutations, _BATCH_VALUES // max(1, n_test * n_block)))
        for start in range(0, self.n_permutations, batch):
            count += (null_correlations(zt, zp, self.index[start : start + batch]) >= threshold).sum(dim=0)
        return count

    def finish(self) -> dict[str, np.ndarray | None]:
        """Every accumulated result, copied to the host in one transfer.

        Returns
        -------
        dict
            ``r``, ``r2``, ``noise_ceiling`` (n_units,), ``p_values`` (n_units,) or None and
            ``split_r2`` (n_bands, n_units) or None, float64 arrays.
        """
        import torch

        from ..ridge._batching import to_host

        rows = [self.r[None], self.r2[None], self.noise_ceiling[None]]
        if self.exceed is not None:
            p = (1.0 + self.exceed) / (1.0 + self.n_permutations)
            rows.append(torch.where(torch.isfinite(self.r), p, torch.nan)[None])
        if self.split_r2 is not None:
            rows.append(self.split_r2)
        host = to_host(torch.cat(rows)).numpy()
        n_p = int(self.exceed is not None)
        return {
            "r": host[0],
            "r2": host[1],
            "noise_ceiling": host[2],
            "p_values": host[3] if n_p else None,
            "split_r2": host[3 + n_p :] if self.split_r2 is not None else None,
        }
