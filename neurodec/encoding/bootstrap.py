"""Uncertainty of held-out scores: a bootstrap over test stimuli, summarized per ROI.

Each resample draws the (repeat-averaged) test stimuli with replacement;
every unit's r and R^2 are recomputed from count-weighted sums of the
samples (never by copying resampled data), and the means over each ROI's
units form the bootstrap distribution of the ROI mean (:class:`ROIBootstrap`),
kept as ROI groups x resamples (never units x resamples, which whole-brain
data could not hold). The resamples depend only on the number of test stimuli
and a seed, so models scored on the same test set with the same seed share
them: differences between models are paired.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .scores import _check_pair

__all__ = ["ROIBootstrap", "bias_corrected_interval", "bootstrap_counts", "bootstrap_scores",
           "paired_difference_interval"]

#: Largest number of float64 values one batch of resampled scores may hold.
_BATCH_VALUES = 4_000_000

#: The metrics whose ROI means are bootstrapped.
BOOTSTRAP_METRICS = ("r", "r2", "r_normalized", "r2_normalized")


def bootstrap_counts(n_samples: int, n_bootstraps: int, random_state: int) -> np.ndarray:
    """How often each sample is drawn in each bootstrap resample.

    Returns
    -------
    array of shape (n_bootstraps, n_samples)
        Multinomial counts (every row sums to ``n_samples``); the same for the
        same ``(n_samples, n_bootstraps, random_state)``, which pairs the
        resamples of models scored on the same test set.
    """
    rng = np.random.default_rng(random_state)
    draws = rng.integers(0, n_samples, size=(n_bootstraps, n_samples))
    counts = np.zeros((n_bootstraps, n_samples))
    np.add.at(counts, (np.arange(n_bootstraps)[:, None], draws), 1.0)
    return counts


def bootstrap_scores(
    y_true: np.ndarray, y_pred: np.ndarray, counts: np.ndarray, *, device: Any = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r and R^2 of every target under every bootstrap resample.

    Each resample's scores are computed from count-weighted sums of the
    samples (never by copying the resampled data), float64.

    Parameters
    ----------
    y_true, y_pred : array of shape (n_samples, n_targets)
    counts : array of shape (n_bootstraps, n_samples)
        From :func:`bootstrap_counts`.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device

    Returns
    -------
    r, r2 : arrays of shape (n_bootstraps, n_targets)
        NaN where a resample leaves a target (or its prediction) constant.
    """
    import torch

    from .._device import resolve_device

    y_true, y_pred = _check_pair(y_true, y_pred)
    dev = resolve_device(device)
    r, r2 = _bootstrap_scores_tensors(
        torch.as_tensor(y_true, device=dev), torch.as_tensor(y_pred, device=dev),
        torch.as_tensor(counts, dtype=torch.float64, device=dev),
    )
    return r.cpu().numpy(), r2.cpu().numpy()


def _bootstrap_scores_tensors(y_true: Any, y_pred: Any, c: Any) -> tuple[Any, Any]:
    """:func:`bootstrap_scores` on float64 tensors of one device; returns tensors there."""
    import torch

    # Centering on the full-sample means keeps the weighted sums well conditioned.
    y_mean, p_mean = y_true.mean(dim=0), y_pred.mean(dim=0)
    yc, pc, d = y_true - y_mean, y_pred - p_mean, y_mean - p_mean
    n = c.sum(dim=1, keepdim=True)
    sy, sp = c @ yc, c @ pc
    syy, spp, syp = c @ (yc * yc), c @ (pc * pc), c @ (yc * pc)
    var_y = syy - sy * sy / n
    var_p = spp - sp * sp / n
    cov = syp - sy * sp / n
    # Residual y - p = (yc - pc) + d for the full-sample mean difference d.
    ss_res = syy - 2 * syp + spp + 2 * d * (sy - sp) + n * d * d
    tiny = 1e-12 * (yc * yc).sum(dim=0).clamp_min(1e-300)
    ok_y = var_y > tiny
    r = torch.where(ok_y & (var_p > 1e-12 * (pc * pc).sum(dim=0).clamp_min(1e-300)),
                    cov / torch.sqrt(var_y.clamp_min(1e-300) * var_p.clamp_min(1e-300)), torch.nan)
    r2 = torch.where(ok_y, 1.0 - ss_res / var_y.clamp_min(1e-300), torch.nan)
    return r.clamp(-1.0, 1.0), r2


@dataclasses.dataclass(frozen=True)
class ROIBootstrap:
    """Bootstrap distributions of ROI-mean scores over resampled test stimuli.

    Attributes
    ----------
    groups : pandas.DataFrame
        One row per unit group: ``atlas`` and ``roi`` (atlas "" and roi "all"
        for every unit).
    means : dict of str -> array of shape (n_groups, n_bootstraps)
        Per metric ("r", "r2", "r_normalized", "r2_normalized"): the mean over
        the group's units that have a finite full-sample score, in each resample.
    estimates : dict of str -> array of shape (n_groups,)
        The same means on the full test set (what the intervals are around).
    n_bootstraps : int
    random_state : int
        Seed of the resamples (:func:`bootstrap_counts`).
    test_key : str
        Hash of the test stimulus ids in scoring order; two bootstraps are
        paired when their ``test_key``, ``n_bootstraps`` and ``random_state`` agree.
    """

    groups: pd.DataFrame
    means: dict[str, np.ndarray]
    estimates: dict[str, np.ndarray]
    n_bootstraps: int
    random_state: int
    test_key: str

    def _row(self, metric: str, atlas: str, roi: str) -> int | None:
        if metric not in self.means:
            return None
        hit = np.flatnonzero((self.groups["atlas"] == atlas).to_numpy() & (self.groups["roi"] == roi).to_numpy())
        return int(hit[0]) if hit.size else None

    def distribution(self, metric: str, atlas: str, roi: str) -> np.ndarray | None:
        """The bootstrap ROI means of one group, or None when the group or metric was not bootstrapped."""
        row = self._row(metric, atlas, roi)
        return None if row is None else self.means[metric][row]

    def estimate(self, metric: str, atlas: str, roi: str) -> float:
        """The full-test-set ROI mean of one group (NaN when not bootstrapped)."""
        row = self._row(metric, atlas, roi)
        return np.nan if row is None else float(self.estimates[metric][row])

    def interval(self, metric: str, atlas: str, roi: str, *, level: float = 0.95) -> tuple[float, float]:
        """Bias-corrected percentile interval of one group's mean; (nan, nan) when unavailable."""
        return bias_corrected_interval(self.distribution(metric, atlas, roi), self.estimate(metric, atlas, roi),
                                       level=level)

    def pairs_with(self, other: "ROIBootstrap") -> bool:
        """Whether both were drawn from the same resamples of the same test set."""
        return (self.test_key, self.n_bootstraps, self.random_state) == (
            other.test_key, other.n_bootstraps, other.random_state)


def bias_corrected_interval(values: np.ndarray | None, estimate: float, *, level: float = 0.95) -> tuple[float, float]:
    """Bias-corrected (BC) percentile bootstrap interval (Efron 1981).

    The percentiles are shifted by ``z0 = Phi^-1(fraction of resamples below
    the estimate)``: ``Phi(2 z0 +- z_(1+level)/2)``. Ratio scores such as R^2
    are biased on finite test sets and their bootstrap distribution is skewed
    further the same way; the plain percentile interval then sits too low.
    Without a finite ``estimate`` the plain percentile interval is returned.
    (nan, nan) with fewer than 10 finite resamples.
    """
    from scipy.stats import norm

    if values is None:
        return np.nan, np.nan
    values = np.asarray(values)[np.isfinite(values)]
    if values.size < 10:
        return np.nan, np.nan
    tails = np.array([(1 - level) / 2, (1 + level) / 2])
    if np.isfinite(estimate):
        below = (np.sum(values < estimate) + 0.5 * np.sum(values == estimate)) / values.size
        z0 = norm.ppf(np.clip(below, 1 / (2 * values.size), 1 - 1 / (2 * values.size)))
        tails = norm.cdf(2 * z0 + norm.ppf(tails))
    low, high = np.percentile(values, 100 * tails)
    return float(low), float(high)


def paired_difference_interval(a: np.ndarray, b: np.ndarray, estimate: float = np.nan, *,
                               level: float = 0.95) -> tuple[float, float]:
    """Bias-corrected interval of ``a - b`` over paired bootstrap resamples (same resample in both).

    ``estimate`` is the full-test-set difference (see :func:`bias_corrected_interval`).
    """
    return bias_corrected_interval(np.asarray(a) - np.asarray(b), estimate, level=level)


def stimulus_order_key(stimulus_ids: Sequence[Any]) -> str:
    """Hash of test stimulus ids in order (what pairs two bootstraps)."""
    return hashlib.sha1(repr([str(i) for i in stimulus_ids]).encode()).hexdigest()[:16]


class ROIBootstrapAccumulator:
    """Sums bootstrap ROI means block by block of units (memory: groups x resamples, never units x resamples).

    The sums live on ``device`` as float64 tensors and blocks may be given as
    tensors there: scoring on a GPU adds every block without a copy to the
    host, which happens once, in :meth:`result`.
    """

    def __init__(self, units: pd.DataFrame, counts: np.ndarray, *, random_state: int, test_key: str,
                 device: Any = "cpu") -> None:
        import torch

        from .._device import resolve_device

        rows, codes = [("", "all")], []
        for column in [c for c in units.columns if str(c).startswith("roi:")]:
            labels = units[column].astype("string").fillna("")
            present = [str(v) for v in (units[column].cat.categories if isinstance(units[column].dtype,
                       pd.CategoricalDtype) else sorted(set(labels))) if str(v) not in ("", "Unknown")]
            present = [p for p in present if (labels == p).any()]
            lookup = {label: len(rows) + i for i, label in enumerate(present)}
            rows += [(column[4:], label) for label in present]
            codes.append(labels.map(lookup).fillna(-1).astype(int).to_numpy())
        self.groups = pd.DataFrame(rows, columns=["atlas", "roi"])
        self.codes = codes
        self.counts = counts
        self.random_state, self.test_key = random_state, test_key
        self.device = resolve_device(device)
        self._counts = torch.as_tensor(counts, dtype=torch.float64, device=self.device)
        n_groups, n_boot = len(rows), counts.shape[0]
        # Rows: the bootstrap sums and counts of each metric, then its full-sample sum and count.
        self._sums = {m: torch.zeros((n_groups, 2 * n_boot + 2), dtype=torch.float64, device=self.device)
                      for m in BOOTSTRAP_METRICS}

    def _membership(self, units: np.ndarray) -> np.ndarray:
        member = np.zeros((len(units), len(self.groups)))
        member[:, 0] = 1.0
        for codes in self.codes:
            c = codes[units]
            inside = c >= 0
            member[np.flatnonzero(inside), c[inside]] = 1.0
        return member

    def add(self, units: np.ndarray, y_true: Any, y_pred: Any, noise_ceiling: Any, *,
            full_r: Any, full_r2: Any) -> None:
        """Add the resampled scores of ``units`` (indices into all units) to the group sums.

        ``y_true``, ``y_pred`` (n_test, n_block), ``noise_ceiling``, ``full_r``
        and ``full_r2`` (n_block,) are arrays or tensors (float64 on this device).
        """
        import torch

        from ._device_scoring import to_device

        def dev(a: Any) -> Any:
            if isinstance(a, torch.Tensor):
                return a.to(device=self.device, dtype=torch.float64)
            return to_device(np.asarray(a), torch.float64, self.device)

        y_true, y_pred, noise_ceiling, full_r, full_r2 = map(dev, (y_true, y_pred, noise_ceiling, full_r, full_r2))
        batch = max(1, _BATCH_VALUES // max(1, self.counts.shape[0]))
        for start in range(0, len(units), batch):
            cols = slice(start, start + batch)
            r, r2 = _bootstrap_scores_tensors(y_true[:, cols], y_pred[:, cols], self._counts)
            nc = noise_ceiling[cols]
            nc = torch.where(torch.isfinite(nc) & (nc > 0), nc, torch.nan)
            values = {"r": (r, full_r[cols]), "r2": (r2, full_r2[cols]),
                      "r_normalized": (r / nc.sqrt(), full_r[cols] / nc.sqrt()),
                      "r2_normalized": (r2 / nc, full_r2[cols] / nc)}
            member = to_device(self._membership(units[cols]), torch.float64, self.device)
            for metric, (boot, full) in values.items():
                # NaN units leave the full-sample mean (and NaN resamples the resample's mean) unaffected.
                keep = torch.isfinite(full)
                finite = keep & torch.isfinite(boot)
                stacked = torch.cat([torch.where(finite, boot, 0.0), finite.double(),
                                     torch.where(keep, full, 0.0)[None], keep.double()[None]])
                self._sums[metric] += (stacked @ member).T

    def result(self) -> ROIBootstrap:
        """The ROI bootstrap distributions (one copy of the sums to the host)."""
        import torch

        from ..ridge._batching import to_host

        host = to_host(torch.stack([self._sums[m] for m in BOOTSTRAP_METRICS])).numpy()
        n_boot = self.counts.shape[0]
        means, estimates = {}, {}
        with np.errstate(invalid="ignore", divide="ignore"):
            for m, sums in zip(BOOTSTRAP_METRICS, host):
                total, n = sums[:, :n_boot], sums[:, n_boot : 2 * n_boot]
                means[m] = np.where(n > 0, total / np.where(n > 0, n, 1.0), np.nan)
                estimates[m] = np.where(sums[:, -1] > 0, sums[:, -2] / np.where(sums[:, -1] > 0, sums[:, -1], 1.0),
                                        np.nan)
        return ROIBootstrap(groups=self.groups, means=means, estimates=estimates,
                            n_bootstraps=int(self.counts.shape[0]),
                            random_state=self.random_state, test_key=self.test_key)
