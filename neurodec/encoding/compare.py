"""Summaries across voxels, layers and models: ROI tables, best layer, model comparison.

Every function takes :class:`~neurodec.encoding.EncodingScores` (one per model
or layer) and returns a pandas DataFrame or arrays, ready to print, plot or
write as a table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .scores import EncodingScores

__all__ = ["best_layer", "best_model_per_roi", "compare_models", "summarize_rois"]


def _roi_labels(scores: EncodingScores, atlas: str) -> pd.Series:
    column = f"roi:{atlas}"
    if column not in scores.units.columns:
        atlases = sorted(c[4:] for c in scores.units.columns if c.startswith("roi:"))
        raise ValueError(f"Unknown ROI atlas {atlas!r} for scores {scores.name!r}; atlases present: {atlases}.")
    return scores.units[column].astype("string").fillna("")


def _roi_order(scores: EncodingScores, atlas: str, labels: pd.Series) -> list[str]:
    """ROI labels present, in the atlas's own order when the loader kept it (a categorical column)."""
    column = scores.units[f"roi:{atlas}"]
    present = set(labels) - {"", "Unknown"}
    if isinstance(column.dtype, pd.CategoricalDtype):
        return [str(c) for c in column.cat.categories if str(c) in present]
    return sorted(present)


def summarize_rois(
    scores: EncodingScores,
    atlas: str,
    *,
    metric: str = "r2_normalized",
    alpha: float = 0.05,
    level: float = 0.95,
) -> pd.DataFrame:
    """Per-ROI summary of one model's scores.

    Parameters
    ----------
    scores : EncodingScores
    atlas : str
        ROI atlas, i.e. the ``roi:<atlas>`` column of ``scores.units``. Units
        labelled "" or "Unknown" are left out.
    metric : str
        Score to summarize (see :meth:`EncodingScores.metric`).
    alpha : float
        FDR level for ``fraction_significant``.
    level : float
        Coverage of the bootstrap confidence interval of the mean.

    Returns
    -------
    pandas.DataFrame
        One row per ROI label (in the atlas's label order when the units'
        column is categorical, as NSD's loader makes it, else sorted):
        ``model, roi, n_units, n_scored`` (units
        with a finite score), ``mean, ci_low, ci_high, median`` of the metric
        over scored units (``ci_*``: bias-corrected percentile interval of the mean over
        bootstrap resamples of the test stimuli, NaN when the scores carry
        no bootstrap), ``mean_noise_ceiling`` and ``fraction_significant``
        (share of scored units with q <= alpha; NaN without permutation p-values).
    """
    labels = _roi_labels(scores, atlas)
    values = scores.metric(metric)
    significant = scores.significant(alpha) if scores.q_values is not None else None
    rows = []
    for roi in _roi_order(scores, atlas, labels):
        mask = (labels == roi).to_numpy()
        scored = mask & np.isfinite(values)
        n_scored = int(scored.sum())
        low, high = _interval(scores, metric, atlas, roi, level)
        rows.append(
            {
                "model": scores.name,
                "roi": roi,
                "n_units": int(mask.sum()),
                "n_scored": n_scored,
                "mean": float(values[scored].mean()) if n_scored else np.nan,
                "ci_low": low,
                "ci_high": high,
                "median": float(np.median(values[scored])) if n_scored else np.nan,
                "mean_noise_ceiling": float(np.nanmean(scores.noise_ceiling[mask]))
                if np.isfinite(scores.noise_ceiling[mask]).any()
                else np.nan,
                "fraction_significant": float(significant[scored].mean())
                if significant is not None and n_scored
                else np.nan,
            }
        )
    if not rows:
        raise ValueError(f"ROI atlas {atlas!r} labels no unit of scores {scores.name!r}.")
    return pd.DataFrame(rows)


def _interval(scores: EncodingScores, metric: str, atlas: str, roi: str, level: float) -> tuple[float, float]:
    if scores.bootstrap is None:
        return np.nan, np.nan
    return scores.bootstrap.interval(metric, atlas, roi, level=level)


def _named(scores: Mapping[str, EncodingScores] | Sequence[EncodingScores]) -> list[tuple[str, EncodingScores]]:
    items = list(scores.items()) if isinstance(scores, Mapping) else [(s.name, s) for s in scores]
    if not items:
        raise ValueError("'scores' is empty; pass at least one EncodingScores.")
    return items


def _score_matrix(scores: Mapping[str, EncodingScores] | Sequence[EncodingScores], metric: str):
    items = _named(scores)
    n_units = {s.n_units for _, s in items}
    if len(n_units) != 1:
        raise ValueError(f"All scores must cover the same units; got unit counts {sorted(n_units)}.")
    names = [name for name, _ in items]
    return names, np.stack([s.metric(metric) for _, s in items])


def best_layer(
    scores: Mapping[str, EncodingScores] | Sequence[EncodingScores],
    *,
    metric: str = "r2",
) -> tuple[np.ndarray, np.ndarray]:
    """Layer (or model) that predicts each unit best.

    Parameters
    ----------
    scores : mapping of name -> EncodingScores, or sequence of EncodingScores
        Scores of the same units under several layers, in layer order.
    metric : str
        Score to maximize (see :meth:`EncodingScores.metric`).

    Returns
    -------
    index : int array of shape (n_units,)
        Position of the best layer; -1 where no layer has a finite score.
    names : object array of shape (n_units,)
        Name of the best layer; None where no layer has a finite score.
    """
    names, matrix = _score_matrix(scores, metric)
    finite = np.isfinite(matrix)
    index = np.argmax(np.where(finite, matrix, -np.inf), axis=0)
    index[~finite.any(axis=0)] = -1
    labels = np.array([names[i] if i >= 0 else None for i in index], dtype=object)
    return index, labels


def compare_models(
    scores: Mapping[str, EncodingScores] | Sequence[EncodingScores],
    atlas: str,
    *,
    metric: str = "r2_normalized",
    alpha: float = 0.05,
    level: float = 0.95,
) -> pd.DataFrame:
    """Model-comparison table: every model's (backbone/layer's) ROI summary, stacked.

    Parameters
    ----------
    scores : mapping of name -> EncodingScores, or sequence of EncodingScores
        Names of the form "backbone/layer" are split into the ``backbone``
        and ``layer`` columns (a name without "/" is a backbone with layer "").
    atlas : str
        ROI atlas (``roi:<atlas>`` unit column).
    metric, alpha, level
        As in :func:`summarize_rois`.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`summarize_rois` plus ``backbone``, ``layer`` and
        ``rank`` (1 = best mean score within the ROI). Pivot it for a
        layer-by-ROI table: ``table.pivot(index="layer", columns="roi", values="mean")``.
    """
    frames = []
    for name, item in _named(scores):
        frame = summarize_rois(item, atlas, metric=metric, alpha=alpha, level=level)
        backbone, _, layer = name.rpartition("/")  # "timm/resnet18/layer1" -> "timm/resnet18", "layer1"
        frame["model"], frame["backbone"], frame["layer"] = name, backbone, layer
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table["rank"] = table.groupby("roi")["mean"].rank(ascending=False, method="min")
    front = ["model", "backbone", "layer", "roi"]
    return table[front + [c for c in table.columns if c not in front]]


def best_model_per_roi(
    scores: Mapping[str, EncodingScores] | Sequence[EncodingScores],
    atlas: str,
    *,
    metric: str = "r2_normalized",
    level: float = 0.95,
) -> pd.DataFrame:
    """The best model of every ROI, and whether the data decide it.

    The best model has the highest ROI mean of ``metric``; the runner-up the
    second highest. The difference of their ROI means is recomputed on the
    same bootstrap resamples of the test stimuli for both models (paired
    bootstrap, :attr:`EncodingScores.bootstrap`). The best model is
    *decided* when the lower end of the ``level`` bias-corrected percentile interval of that
    difference is above 0, and *undecided* when the interval includes 0 (or
    when the models carry no paired bootstrap).

    Parameters
    ----------
    scores : mapping of name -> EncodingScores, or sequence of EncodingScores
    atlas : str
        ROI atlas (``roi:<atlas>`` unit column).
    metric : str
    level : float
        Coverage of the intervals.

    Returns
    -------
    pandas.DataFrame
        One row per ROI with a scored unit: ``roi, n_units, n_scored, best_model,
        mean, ci_low, ci_high, runner_up, runner_up_mean, difference,
        difference_ci_low, difference_ci_high, decided`` (bool) and ``verdict``
        (text).
    """
    items = dict(_named(scores))
    table = compare_models(items, atlas, metric=metric, level=level)
    rows = []
    for roi, group in table.groupby("roi", sort=False):
        ranked = group.dropna(subset=["mean"]).sort_values("mean", ascending=False, kind="stable")
        if ranked.empty:
            continue
        best = ranked.iloc[0]
        row = {"roi": roi, "n_units": int(best["n_units"]), "n_scored": int(best["n_scored"]),
               "best_model": best["model"], "mean": best["mean"], "ci_low": best["ci_low"], "ci_high": best["ci_high"],
               "runner_up": None, "runner_up_mean": np.nan, "difference": np.nan,
               "difference_ci_low": np.nan, "difference_ci_high": np.nan, "decided": False, "verdict": "only model"}
        if len(ranked) > 1:
            second = ranked.iloc[1]
            row.update(runner_up=second["model"], runner_up_mean=second["mean"],
                       difference=best["mean"] - second["mean"])
            a, b = items[best["model"]].bootstrap, items[second["model"]].bootstrap
            if a is None or b is None or not a.pairs_with(b):
                row["verdict"] = "undecided: no paired bootstrap"
            else:
                from .bootstrap import paired_difference_interval

                low, high = paired_difference_interval(
                    a.distribution(metric, atlas, roi), b.distribution(metric, atlas, roi),
                    a.estimate(metric, atlas, roi) - b.estimate(metric, atlas, roi), level=level)
                decided = bool(np.isfinite(low) and low > 0)
                row.update(difference_ci_low=low, difference_ci_high=high, decided=decided,
                           verdict="decided" if decided else "undecided: CI includes 0")
        rows.append(row)
    return pd.DataFrame(rows)
