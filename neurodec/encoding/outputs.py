"""Everything a finished encoding analysis writes: maps, tables, figures and an HTML report.

Outputs go to a BIDS-derivatives folder, ``<root>/derivatives/neurodec/sub-<label>/``:

- ``func/`` (or ``meg/``, ``ieeg/``): score maps in the subject's space
  (NIfTI for volume data, one MGH per hemisphere for surface data), a
  per-unit score table and per-ROI summaries (CSV) for every model, and,
  with several models, the comparison table and a best-model-per-unit map;
- ``figures/``: PNG figures (maps, ROI bars, model-by-ROI heatmap);
- ``sub-<label>_desc-encoding_report.html``: one self-contained report
  that embeds the figures and tables and links every file above.

Every file is written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_path, write_text_atomic
from .._logging import get_logger
from .compare import best_layer, compare_models, summarize_rois
from .partition import VariancePartition
from .scores import EncodingScores

__all__ = ["write_encoding_outputs"]

logger = get_logger(__name__)

_DATATYPES = {"fmri": "func", "meg": "meg", "ieeg": "ieeg", "eeg": "eeg"}


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    return write_text_atomic(path, frame.to_csv(index=False))


def _available(scores: EncodingScores, metric: str) -> np.ndarray | None:
    """The metric's values, or None (logged) when it is missing or all-NaN."""
    try:
        values = scores.metric(metric)
    except ValueError as exc:
        logger.info("Skipping the %s map of %s: %s", metric, scores.name, exc)
        return None
    if not np.isfinite(values).any():
        logger.info("Skipping the %s map of %s: no unit has a finite value.", metric, scores.name)
        return None
    return values


def _plotted_metric(scores: EncodingScores, preferred: str) -> str:
    return preferred if _available(scores, preferred) is not None else "r2"


def _describe(scores: EncodingScores) -> str:
    scored = np.isfinite(scores.r2)
    text = (
        f"Subject {scores.subject}, space {scores.space or 'n/a'}: {scores.n_units} units, "
        f"{int(scored.sum())} scored on {scores.n_test} repeat-averaged test stimuli. "
        f"Median r = {np.nanmedian(scores.r):.3f}, median R2 = {np.nanmedian(scores.r2):.3f}."
        if scored.any()
        else f"Subject {scores.subject}: no unit could be scored."
    )
    if np.isfinite(scores.noise_ceiling).any():
        text += f" Median noise ceiling {np.nanmedian(scores.noise_ceiling):.3f}; normalized R2 = R2 / NC."
    return text


def _write_map(values: np.ndarray, scores: EncodingScores, folder: Path, **entities: object) -> list[Path]:
    from ..viz import bids_filename, map_kind, write_surface_maps, write_volume_map

    if map_kind(scores.units) == "volume":
        name = bids_filename(scores.subject, "statmap", ".nii.gz", space=scores.space or None, **entities)
        return [write_volume_map(values, scores.units, scores.info, folder / name)]
    name = bids_filename(scores.subject, "statmap", ".mgh", hemi="L", space=scores.space or None, **entities)
    template = str(folder / name.replace("_hemi-L_", "_hemi-{hemi}_"))
    return list(write_surface_maps(values, scores.units, scores.info, template).values())


def _map_figure(values: np.ndarray, scores: EncodingScores, title: str):
    from ..viz import map_kind, plot_surface_map, plot_volume_map

    if map_kind(scores.units) == "volume":
        # A glass brain needs a template space; subject spaces get slices of their own volume.
        kind = "glass" if "mni" in scores.space.lower() else "stat"
        return plot_volume_map(values, scores.units, scores.info, title=title, kind=kind)
    return plot_surface_map(values, scores.units, scores.info, title=title)


def write_encoding_outputs(
    scores: EncodingScores | Mapping[str, EncodingScores] | Sequence[EncodingScores],
    root: str | os.PathLike,
    *,
    atlas: str | None = None,
    metrics: Sequence[str] = ("r", "r2", "r2_normalized"),
    figure_metric: str = "r2_normalized",
    alpha: float = 0.05,
    figures: bool = True,
    report: bool = True,
    partitions: Sequence[VariancePartition] = (),
    title: str | None = None,
) -> dict[str, list[Path]]:
    """Write score maps, tables, figures and an HTML report for one subject.

    Parameters
    ----------
    scores : EncodingScores, or mapping name -> EncodingScores, or sequence
        One subject's scores under one or several models (e.g. layers of
        backbones named "backbone/layer"); all must cover the same units.
    root : path-like
        Study folder; outputs go under ``<root>/derivatives/neurodec``.
    atlas : str, optional
        ROI atlas (``roi:<atlas>`` unit column) for ROI summaries and the
        model comparison; None skips them.
    metrics : sequence of str
        Scores written as maps (see :meth:`EncodingScores.metric`); metrics
        that are unavailable (no noise ceiling, no permutations) or all-NaN are
        skipped with a log message.
    figure_metric : str
        Score drawn in figures and summarized per ROI; falls back to "r2"
        when it has no finite value (e.g. no noise ceiling).
    alpha : float
        FDR level for the fraction of significant units in ROI summaries.
    figures, report : bool
        Draw PNG figures; write the HTML report (embeds the figures).
    partitions : sequence of VariancePartition
        Variance partitions (of the same units) to write as maps of the unique
        and shared variance, with a per-ROI table when ``atlas`` is given.
        Split R^2 of banded models (``EncodingScores.split_r2``) are written
        as maps of their own.
    title : str, optional
        Report title.

    Returns
    -------
    dict
        "maps", "tables", "figures", "report" -> list of written paths.
    """
    from ..viz import ReportSection, bids_filename, derivatives_folder, write_html_report

    if isinstance(scores, EncodingScores):
        named = {scores.name: scores}
    else:
        named = dict(scores) if isinstance(scores, Mapping) else {s.name: s for s in scores}
    if not named:
        raise ValueError("'scores' is empty; pass at least one EncodingScores.")
    first = next(iter(named.values()))
    folder = derivatives_folder(root, first.subject, datatype=_DATATYPES.get(first.modality, first.modality))
    has_space = _has_space(first.units)
    out = _Outputs(first.subject, folder, draw=figures and has_space)
    sections = []
    for name, item in named.items():
        metric = _plotted_metric(item, figure_metric)
        section = ReportSection(title=f"Model {name}", text=_describe(item))
        out.table(item.to_frame(), "scores", space=item.space or None, model=name)
        for map_metric in metrics if has_space else ():
            values = _available(item, map_metric)
            if values is not None:
                out.map(values, item, model=name, stat=map_metric)
        if out.draw:
            out.figure(_map_figure(item.metric(metric), item, f"{name}: {metric}"), model=name, stat=metric)
        if atlas is not None:
            summary = summarize_rois(item, atlas, metric=metric, alpha=alpha)
            out.table(summary, "rois", model=name, atlas=atlas, stat=metric)
            section.tables[f"{metric} per ROI ({atlas})"] = summary
        if item.split_r2 is not None and has_space:
            for band, values in zip(item.space_names or [], item.split_r2):
                out.map(values, item, model=name, stat="splitr2", band=band)
        out.flush_into(section)
        sections.append(section)
    for partition in partitions:
        sections.append(_partition_section(partition, first, atlas, out, has_space))
    if len(named) > 1:
        sections.append(_comparison(named, figure_metric, atlas, alpha, out, has_space))
    if report:
        path = folder.parent / bids_filename(first.subject, "report", ".html", desc="encoding")
        out.written["report"].append(
            write_html_report(path, sections, title=title or f"Encoding models, {first.subject}")
        )
    return out.written


def _has_space(units: pd.DataFrame) -> bool:
    from ..viz import map_kind

    try:
        map_kind(units)
    except ValueError:
        logger.info("The units have no voxel/vertex coordinates: no brain maps or map figures are written.")
        return False
    return True


class _Outputs:
    """Names, writes and remembers the files of one subject's outputs."""

    def __init__(self, subject: str, folder: Path, *, draw: bool) -> None:
        self.subject, self.folder, self.draw = subject, folder, draw
        self.written: dict[str, list[Path]] = {"maps": [], "tables": [], "figures": [], "report": []}
        self.pending_files: list[Path] = []
        self.pending_figures: list[bytes] = []

    def table(self, frame: pd.DataFrame, suffix: str, **entities: object) -> None:
        from ..viz import bids_filename

        path = _write_csv(frame, self.folder / bids_filename(self.subject, suffix, ".csv", **entities))
        self.written["tables"].append(path)
        self.pending_files.append(path)

    def map(self, values: np.ndarray, scores: EncodingScores, **entities: object) -> None:
        paths = _write_map(values, scores, self.folder, **entities)
        self.written["maps"] += paths
        self.pending_files += paths

    def figure(self, figure, **entities: object) -> None:
        from ..viz import bids_filename, figure_to_png

        png = figure_to_png(figure)
        path = self.folder.parent / "figures" / bids_filename(self.subject, "figure", ".png", **entities)
        with atomic_path(path) as tmp:
            tmp.write_bytes(png)
        self.written["figures"].append(path)
        self.pending_files.append(path)
        self.pending_figures.append(png)

    def flush_into(self, section) -> None:
        section.files += self.pending_files
        section.figures += self.pending_figures
        self.pending_files, self.pending_figures = [], []


def _comparison(named, figure_metric, atlas, alpha, out: _Outputs, has_space: bool):
    from ..viz import ReportSection, plot_heatmap, plot_roi_bars

    first = next(iter(named.values()))
    metric = figure_metric if all(_available(s, figure_metric) is not None for s in named.values()) else "r2"
    section = ReportSection(
        title="Model comparison",
        text=f"Best model per unit by {metric}: the best-model map holds the model's 0-based position in the "
        "models table.",
    )
    index, _ = best_layer(named, metric=metric)
    legend = pd.DataFrame({"index": range(len(named)), "model": list(named)})
    out.table(legend, "models", desc="bestmodel")
    section.tables["Models"] = legend
    if has_space:
        out.map(np.where(index >= 0, index, np.nan), first, desc="bestmodel", stat=metric)
    if atlas is not None:
        table = compare_models(named, atlas, metric=metric, alpha=alpha)
        out.table(table, "rois", desc="comparison", atlas=atlas, stat=metric)
        wide = table.pivot(index="model", columns="roi", values="mean").loc[list(named)]
        section.tables[f"Mean {metric} per model and ROI ({atlas})"] = wide.reset_index()
        if out.draw:
            out.figure(plot_roi_bars(table, title=f"{metric} per ROI", ylabel=f"mean {metric}"), desc="roibars", stat=metric)
            out.figure(plot_heatmap(wide, label=f"mean {metric}", title=f"{metric} per model and ROI"),
                       desc="modelbyroi", stat=metric)
    out.flush_into(section)
    return section


def _partition_section(partition: VariancePartition, like: EncodingScores, atlas, out: _Outputs, has_space: bool):
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
    if atlas is not None:
        labels = like.units[f"roi:{atlas}"].astype("string").fillna("")
        keep = ~labels.isin(["", "Unknown"]).to_numpy()
        summary = partition.to_frame()[keep].groupby(labels[keep].to_numpy()).mean().rename_axis("roi").reset_index()
        section.tables[f"Mean partition per ROI ({atlas})"] = summary
    out.flush_into(section)
    return section
