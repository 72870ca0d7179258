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

__all__ = ["best_layer", "compare_models", "summarize_rois"]


def _roi_labels(scores: EncodingScores, atlas: str) -> pd.Series:
    column = f"roi:{atlas}"
    if column not in scores.units.columns:
        atlases = sorted(c[4:] for c in scores.units.columns if c.startswith("roi:"))
        raise ValueError(f"Unknown ROI atlas {atlas!r} for scores {scores.name!r}; atlases present: {atlases}.")
    return scores.units[column].astype("string").fillna("")


def summarize_rois(
    scores: EncodingScores,
    atlas: str,
    *,
    metric: str = "r2_normalized",
    alpha: float = 0.05,
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

    Returns
    -------
    pandas.DataFrame
        One row per ROI label (sorted): ``model, roi, n_units, n_scored`` (units
        with a finite score), ``mean, median`` of the metric over scored
        units, ``mean_noise_ceiling`` and ``fraction_significant`` (share of
        scored units with q <= alpha; NaN without permutation p-values).
    """
    labels = _roi_labels(scores, atlas)
    values = scores.metric(metric)
    significant = scores.significant(alpha) if scores.q_values is not None else None
    rows = []
    for roi in sorted(set(labels) - {"", "Unknown"}):
        mask = (labels == roi).to_numpy()
        scored = mask & np.isfinite(values)
        n_scored = int(scored.sum())
        rows.append(
            {
                "model": scores.name,
                "roi": roi,
                "n_units": int(mask.sum()),
                "n_scored": n_scored,
                "mean": float(values[scored].mean()) if n_scored else np.nan,
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
) -> pd.DataFrame:
    """Model-comparison table: every model's (backbone/layer's) ROI summary, stacked.

    Parameters
    ----------
    scores : mapping of name -> EncodingScores, or sequence of EncodingScores
        Names of the form "backbone/layer" are split into the ``backbone``
        and ``layer`` columns (a name without "/" is a backbone with layer "").
    atlas : str
        ROI atlas (``roi:<atlas>`` unit column).
    metric, alpha
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
        frame = summarize_rois(item, atlas, metric=metric, alpha=alpha)
        backbone, _, layer = name.partition("/")
        frame["model"], frame["backbone"], frame["layer"] = name, backbone, layer
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table["rank"] = table.groupby("roi")["mean"].rank(ascending=False, method="min")
    front = ["model", "backbone", "layer", "roi"]
    return table[front + [c for c in table.columns if c not in front]]
