"""Sections of the encoding report: the opening summary, the model comparison, variance partitions.

Each builder writes its tables and figures through the caller's output writer
(``outputs._Outputs``) and returns a :class:`neurodec.viz.ReportSection`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ._report_methods import alpha_distribution, methods_paragraphs, unit_counts
from .compare import best_layer, best_model_per_roi, compare_models
from .partition import VariancePartition
from .scores import EncodingScores

__all__: list[str] = []


def short_names(names: Sequence[str]) -> tuple[list[str], str]:
    """Model names without their shared "backbone/" prefix, and that prefix (e.g. the backbone)."""
    prefix = os.path.commonprefix([str(n) for n in names])
    prefix = prefix[: prefix.rfind("/") + 1]
    if len(names) < 2 or not prefix or any(len(n) == len(prefix) for n in names):
        return [str(n) for n in names], ""
    return [str(n)[len(prefix) :] for n in names], prefix.rstrip("/")


def combined_comparison(
    named: Mapping[str, EncodingScores], atlases: Sequence[str], *, metric: str, alpha: float, level: float = 0.95
) -> pd.DataFrame:
    """:func:`compare_models` over every atlas, stacked with an ``atlas`` and a ``label`` column.

    ``label`` is the ROI name, prefixed with its atlas ("atlas:roi") where
    the same name occurs in several atlases.
    """
    frames = []
    for atlas in atlases:
        frame = compare_models(named, atlas, metric=metric, alpha=alpha, level=level)
        frame.insert(0, "atlas", atlas)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    repeated = table.groupby("roi")["atlas"].transform("nunique") > 1
    table.insert(table.columns.get_loc("roi") + 1, "label", np.where(repeated, table["atlas"] + ":" + table["roi"], table["roi"]))
    return table


def best_per_roi(named: Mapping[str, EncodingScores], atlases: Sequence[str], metric: str, level: float) -> pd.DataFrame:
    """:func:`best_model_per_roi` over every atlas, as the report shows it."""
    frames = []
    for atlas in atlases:
        frame = best_model_per_roi(named, atlas, metric=metric, level=level)
        frame.insert(0, "atlas", atlas)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    return pd.DataFrame(
        {
            "atlas": table["atlas"],
            "roi": table["roi"],
            "units (scored)": [f"{a} ({b})" for a, b in zip(table["n_units"], table["n_scored"])],
            "best model": table["best_model"],
            f"mean {metric} [{level:.0%} CI]": [_ci(m, lo, hi) for m, lo, hi in
                                                zip(table["mean"], table["ci_low"], table["ci_high"])],
            "runner-up": table["runner_up"],
            f"difference [{level:.0%} CI]": [_ci(m, lo, hi) for m, lo, hi in zip(
                table["difference"], table["difference_ci_low"], table["difference_ci_high"])],
            "verdict": table["verdict"],
        }
    )


def _ci(value: float, low: float, high: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{value:.3f} [no interval]"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def overall_means(named: Mapping[str, EncodingScores], metric: str, level: float) -> pd.DataFrame:
    """Every model's mean ``metric`` over all scored units, with its bootstrap interval."""
    rows = []
    for name, scores in named.items():
        values = scores.metric(metric)
        finite = np.isfinite(values)
        low, high = (scores.bootstrap.interval(metric, "", "all", level=level) if scores.bootstrap is not None
                     else (np.nan, np.nan))
        mean = float(values[finite].mean()) if finite.any() else np.nan
        rows.append({"model": name, "units with a finite score": int(finite.sum()),
                     f"mean {metric} [{level:.0%} CI]": _ci(mean, low, high),
                     f"median {metric}": float(np.median(values[finite])) if finite.any() else np.nan})
    return pd.DataFrame(rows)


def best_unit_counts(named: Mapping[str, EncodingScores], metric: str) -> pd.DataFrame:
    """Units whose highest ``metric`` comes from each model, plus those where no model has one; sums to all units."""
    index, _ = best_layer(named, metric=metric)
    counts = np.bincount(index[index >= 0], minlength=len(named))
    n_none = int((index < 0).sum())
    total = len(index)
    frame = pd.DataFrame({"model": list(named), "units": counts, "fraction of all units": counts / total})
    extra = pd.DataFrame({"model": [f"none (no model has a finite {metric})", "total"], "units": [n_none, total],
                          "fraction of all units": [n_none / total, 1.0]})
    return pd.concat([frame, extra], ignore_index=True)


def summary_section(named: Mapping[str, EncodingScores], metric: str, atlases: Sequence[str], key_files, *,
                    data_description: str | None, level: float):
    """The report's opening section: what was fit on what, how many units count, and which model wins where."""
    from ..viz import ReportSection

    first = next(iter(named.values()))
    counts = unit_counts(named, metric)
    scored = int((_status_array(first) == "scored").sum())
    facts = pd.DataFrame(
        {
            "": ["subject", "space", "modality", "data", "units (scored)", "test stimuli", "models", "summary metric"],
            "value": [
                first.subject, first.space or "n/a", first.modality, data_description or "not described",
                f"{first.n_units} ({scored})", str(first.n_test) if first.n_test else "n/a", ", ".join(named),
                _metric_text(metric),
            ],
        }
    )
    short, backbone = short_names(list(named))
    of = f" ({backbone} models)" if backbone else ""
    section = ReportSection(
        title="Summary",
        text="What was fit and how, in the Methods section. Intervals are bootstrap confidence intervals over the "
        "test stimuli; a best model is 'decided' only when the interval of its paired difference to the runner-up "
        "excludes 0.",
        tables={"Analysis": facts,
                f"Units: where every unit went (the rows down to 'scored' add up to 'units'){of}":
                    _shortened(counts, named, short)},
        files=list(key_files),
    )
    section.tables[f"Mean {metric} over all units with a finite score{of}"] = _shortened(
        overall_means(named, metric, level), named, short)
    if len(named) > 1 and atlases:
        section.tables[f"Best model per ROI (mean {metric}){of}"] = _shortened(
            best_per_roi(named, atlases, metric, level), named, short)
    if len(named) > 1:
        section.tables[f"Units best predicted by each model (highest {metric}; not a significance test){of}"] = (
            _shortened(best_unit_counts(named, metric), named, short))
    return section


def _shortened(frame: pd.DataFrame, named: Mapping[str, EncodingScores], short: Sequence[str]) -> pd.DataFrame:
    """``frame`` with model names (in cells and column names) without their shared backbone prefix."""
    mapping = dict(zip(named, short))
    frame = frame.rename(columns=mapping)
    for column in ("model", "best model", "runner-up"):
        if column in frame.columns:
            frame[column] = frame[column].map(lambda v: mapping.get(v, v))
    return frame


def methods_section(named: Mapping[str, EncodingScores], metric: str, *, data_description: str | None,
                    level: float):
    """The Methods: data, split, features, model, scores, uncertainty, software; and the chosen alphas."""
    from ..viz import ReportSection

    section = ReportSection(
        title="Methods",
        text="\n\n".join(methods_paragraphs(named, metric=metric, data_description=data_description, level=level)),
    )
    alphas = alpha_distribution(named)
    if alphas is not None:
        short, backbone = short_names(list(named))
        of = f" ({backbone} models)" if backbone else ""
        caption = f"Units that chose each alpha (cross-validated), per model{of}"
        section.tables[caption] = _shortened(alphas, named, short)
    return section


def _status_array(scores: EncodingScores) -> np.ndarray:
    return scores.status if scores.status is not None else np.where(np.isfinite(scores.r2), "scored", "").astype(object)


def _metric_text(metric: str) -> str:
    meaning = {
        "r2_normalized": "held-out R2 divided by the noise ceiling",
        "r_normalized": "held-out r divided by the square root of the noise ceiling",
        "r2": "held-out coefficient of determination",
        "r": "held-out Pearson correlation",
    }
    return f"{metric} ({meaning[metric]})" if metric in meaning else metric


def comparison_section(named, metric: str, atlases: Sequence[str], alpha: float, out, has_space: bool, *,
                       level: float = 0.95):
    """Best-model map, combined model-by-ROI table and its figures; returns (section, table or None)."""
    from ..viz import ReportSection, plot_heatmap, plot_roi_bars

    first = next(iter(named.values()))
    section = ReportSection(
        title="Model comparison",
        text=f"Models compared by {_metric_text(metric)}. The best-model map gives, for every unit, the model that "
        "predicts it best (its 0-based position in the models table).",
    )
    index, _ = best_layer(named, metric=metric)
    legend = pd.DataFrame({"index": range(len(named)), "model": list(named)})
    out.table(legend, "models", desc="bestmodel")
    section.tables["Models"] = legend
    if has_space:
        best = np.where(index >= 0, index, np.nan)
        levels = {str(i): name for i, name in enumerate(named)}
        out.map(best, first, out.describe(first, "bestmodel", None, Levels=levels, Metric=metric,
                                          Model=list(named)), desc="bestmodel", stat=metric)
        if out.draw:
            from ..viz import map_kind, plot_volume_map

            if map_kind(first.units) == "volume":
                labels, backbone = short_names(list(named))
                title = f"Best model per voxel (highest {metric}; no significance test)" + (
                    f", {backbone}" if backbone else "")
                image, name = out.underlay if out.underlay is not None else (None, "")
                out.figure(plot_volume_map(best, first.units, first.info, title=title, categories=labels,
                                           label="best model", underlay=image, underlay_name=name),
                           desc="bestmodel", stat=metric)
    if not atlases:
        out.flush_into(section)
        return section, None
    table = combined_comparison(named, atlases, metric=metric, alpha=alpha, level=level)
    out.table(table, "rois", desc="comparison", atlas=atlases[0] if len(atlases) == 1 else None, stat=metric)
    labels = list(dict.fromkeys(table["label"]))
    wide = table.pivot(index="model", columns="label", values="mean").loc[list(named), labels].rename_axis(columns=None)
    section.tables[f"Mean {metric} per model and ROI ({', '.join(atlases)})"] = wide.reset_index()
    if out.draw:
        short, backbone = short_names(list(named))
        rows = table.assign(roi=table["label"], model=table["model"].map(dict(zip(named, short))))
        out.figure(plot_roi_bars(rows, title=f"Mean {metric} per ROI", ylabel=f"mean {metric}", legend_title=backbone,
                                 group="atlas"), desc="roibars", stat=metric)
        wide.index = short
        out.figure(
            plot_heatmap(wide, label=f"mean {metric}", title=f"Mean {metric} per model and ROI ({', '.join(atlases)})",
                         xlabel="ROI", ylabel=backbone or "model"),
            desc="modelbyroi", stat=metric,
        )
    out.flush_into(section)
    return section, table


def partition_section(partition: VariancePartition, like: EncodingScores, atlases: Sequence[str], out, has_space: bool):
    """Maps and tables of a variance partition between two feature spaces."""
    from ..viz import ReportSection

    a, b = partition.names
    section = ReportSection(
        title=f"Variance partition: {a} vs {b}",
        text=f"Held-out R2 unique to {a} (R2_joint - R2_{b}), unique to {b}, and shared (R2_{a} + R2_{b} - R2_joint).",
    )
    parts = {f"unique{a}": partition.unique_a, f"unique{b}": partition.unique_b, "shared": partition.shared}
    if has_space:
        for stat, values in parts.items():
            out.map(values, like, out.describe(like, stat, None, SpaceA=a, SpaceB=b), desc="partition", stat=stat)
    frame = pd.concat([like.units.reset_index(drop=True), partition.to_frame()], axis=1)
    out.table(frame, "partition", spaceA=a, spaceB=b)
    for atlas in atlases:
        labels = like.units[f"roi:{atlas}"].astype("string").fillna("")
        keep = ~labels.isin(["", "Unknown"]).to_numpy()
        summary = partition.to_frame()[keep].groupby(labels[keep].to_numpy()).mean().rename_axis("roi").reset_index()
        section.tables[f"Mean partition per ROI ({atlas})"] = summary
    out.flush_into(section)
    return section
