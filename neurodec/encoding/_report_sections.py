"""Sections of the encoding report: the opening summary, the model comparison, variance partitions.

Each builder writes its tables and figures through the caller's output writer
(``outputs._Outputs``) and returns a :class:`neurodec.viz.ReportSection`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .compare import best_layer, compare_models
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
    named: Mapping[str, EncodingScores], atlases: Sequence[str], *, metric: str, alpha: float
) -> pd.DataFrame:
    """:func:`compare_models` over every atlas, stacked with an ``atlas`` and a ``label`` column.

    ``label`` is the ROI name, prefixed with its atlas ("atlas:roi") where
    the same name occurs in several atlases.
    """
    frames = []
    for atlas in atlases:
        frame = compare_models(named, atlas, metric=metric, alpha=alpha)
        frame.insert(0, "atlas", atlas)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    repeated = table.groupby("roi")["atlas"].transform("nunique") > 1
    table.insert(table.columns.get_loc("roi") + 1, "label", np.where(repeated, table["atlas"] + ":" + table["roi"], table["roi"]))
    return table


def best_per_roi(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The best model of every ROI of a :func:`combined_comparison` table, in the table's ROI order."""
    scored = table.dropna(subset=["mean"])
    best = scored.loc[scored.groupby("label", sort=False)["mean"].idxmax()]
    second = scored.groupby("label", sort=False)["mean"].apply(lambda v: v.nlargest(2).iloc[-1] if len(v) > 1 else np.nan)
    return pd.DataFrame(
        {
            "atlas": best["atlas"].to_numpy(),
            "roi": best["roi"].to_numpy(),
            "n_units": best["n_units"].to_numpy(),
            "best model": best["model"].to_numpy(),
            f"mean {metric}": best["mean"].to_numpy(),
            "margin over 2nd": best["mean"].to_numpy() - second.loc[best["label"]].to_numpy(),
            "noise ceiling": best["mean_noise_ceiling"].to_numpy(),
        }
    )


def summary_section(named: Mapping[str, EncodingScores], metric: str, comparison: pd.DataFrame | None, key_files):
    """The report's opening section: what was fit on what, and which model wins where."""
    from ..viz import ReportSection

    first = next(iter(named.values()))
    scored = int(np.isfinite(first.r2).sum())
    facts = pd.DataFrame(
        {
            "": ["subject", "space", "modality", "units (scored)", "test stimuli", "models", "summary metric"],
            "value": [
                first.subject, first.space or "n/a", first.modality, f"{first.n_units} ({scored})",
                str(first.n_test) if first.n_test else "n/a", ", ".join(named), _metric_text(metric),
            ],
        }
    )
    section = ReportSection(title="Summary", tables={"Analysis": facts}, files=list(key_files))
    if len(named) > 1:
        index, _ = best_layer(named, metric=metric)
        counts = np.bincount(index[index >= 0], minlength=len(named))
        section.tables["Units best predicted by each model"] = pd.DataFrame(
            {"model": list(named), "units": counts, "fraction": counts / max(int(counts.sum()), 1)}
        )
    if comparison is not None:
        section.tables[f"Best model per ROI (mean {metric})"] = best_per_roi(comparison, metric)
    return section


def _metric_text(metric: str) -> str:
    meaning = {
        "r2_normalized": "held-out R2 divided by the noise ceiling",
        "r_normalized": "held-out r divided by the square root of the noise ceiling",
        "r2": "held-out coefficient of determination",
        "r": "held-out Pearson correlation",
    }
    return f"{metric} ({meaning[metric]})" if metric in meaning else metric


def comparison_section(named, metric: str, atlases: Sequence[str], alpha: float, out, has_space: bool):
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
        out.map(best, first, desc="bestmodel", stat=metric)
        if out.draw:
            from ..viz import map_kind, plot_volume_map

            if map_kind(first.units) == "volume":
                labels, backbone = short_names(list(named))
                title = f"Best model per voxel ({metric})" + (f", {backbone}" if backbone else "")
                out.figure(plot_volume_map(best, first.units, first.info, title=title, categories=labels),
                           desc="bestmodel", stat=metric)
    if not atlases:
        out.flush_into(section)
        return section, None
    table = combined_comparison(named, atlases, metric=metric, alpha=alpha)
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
            out.map(values, like, desc="partition", stat=stat)
    frame = pd.concat([like.units.reset_index(drop=True), partition.to_frame()], axis=1)
    out.table(frame, "partition", spaceA=a, spaceB=b)
    for atlas in atlases:
        labels = like.units[f"roi:{atlas}"].astype("string").fillna("")
        keep = ~labels.isin(["", "Unknown"]).to_numpy()
        summary = partition.to_frame()[keep].groupby(labels[keep].to_numpy()).mean().rename_axis("roi").reset_index()
        section.tables[f"Mean partition per ROI ({atlas})"] = summary
    out.flush_into(section)
    return section
