"""Everything a finished encoding analysis writes: maps, tables, figures and an HTML report.

Outputs go to a BIDS-derivatives folder, ``<root>/derivatives/neurodec/sub-<label>/``:

- ``func/`` (or ``meg/``, ``ieeg/``): score maps in the subject's space
  (NIfTI for volume data, one MGH per hemisphere for surface data), a
  per-unit score table and per-ROI summaries (CSV, one per ROI atlas) for
  every model, and, with several models, a best-model-per-unit map and one
  model-by-ROI comparison table over the ROIs of all atlases;
- ``figures/``: PNG figures (maps, best-model map, ROI bars per atlas,
  model-by-ROI heatmap);
- ``sub-<label>_desc-encoding_report.html``: one self-contained report
  that opens with a summary (subject, space, units, models, best model per
  ROI), embeds the figures and tables and links every file above.

Surface maps are drawn on nilearn's fsaverage5 meshes; pycortex flatmaps are
not made (pycortex is not a dependency).

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
from ._report_sections import comparison_section, partition_section, summary_section
from .compare import summarize_rois
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


def _atlases(atlas: str | Sequence[str] | None) -> tuple[str, ...]:
    if atlas is None:
        return ()
    atlases = (atlas,) if isinstance(atlas, str) else tuple(atlas)
    if not all(isinstance(a, str) and a for a in atlases) or len(set(atlases)) != len(atlases):
        raise ValueError(f"'atlas' must be an ROI atlas name or a list of distinct names. Got {atlas!r} instead.")
    return atlases


def write_encoding_outputs(
    scores: EncodingScores | Mapping[str, EncodingScores] | Sequence[EncodingScores],
    root: str | os.PathLike,
    *,
    atlas: str | Sequence[str] | None = None,
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
    atlas : str or sequence of str, optional
        ROI atlases (``roi:<atlas>`` unit columns), e.g.
        ``["prf-visualrois", "floc-faces", "floc-places"]``: one ROI summary
        per model and atlas, and one model comparison over the ROIs of all
        atlases (a label that occurs in several atlases is written
        "atlas:label"). None skips ROI summaries.
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
        and shared variance, with per-ROI tables for the atlases.
        Split R^2 of banded models (``EncodingScores.split_r2``) are written
        as maps of their own.
    title : str, optional
        Report title.

    Returns
    -------
    dict
        "maps", "tables", "figures", "report" -> list of written paths.
    """
    from ..viz import bids_filename, derivatives_folder, write_html_report

    if isinstance(scores, EncodingScores):
        named = {scores.name: scores}
    else:
        named = dict(scores) if isinstance(scores, Mapping) else {s.name: s for s in scores}
    if not named:
        raise ValueError("'scores' is empty; pass at least one EncodingScores.")
    atlases = _atlases(atlas)
    first = next(iter(named.values()))
    folder = derivatives_folder(root, first.subject, datatype=_DATATYPES.get(first.modality, first.modality))
    has_space = _has_space(first.units)
    out = _Outputs(first.subject, folder, draw=figures and has_space)
    model_sections = [_model_section(name, item, atlases, metrics, figure_metric, alpha, out, has_space)
                      for name, item in named.items()]
    sections, comparison = [], None
    metric = figure_metric if all(_available(s, figure_metric) is not None for s in named.values()) else "r2"
    if len(named) > 1:
        section, comparison = comparison_section(named, metric, atlases, alpha, out, has_space)
        sections.append(section)
    sections += [partition_section(p, first, atlases, out, has_space) for p in partitions]
    key_files = [p for p in out.written["maps"] + out.written["tables"] if "desc-bestmodel" in p.name
                 or "desc-comparison" in p.name]
    sections = [summary_section(named, metric, comparison, key_files)] + sections + model_sections
    if report:
        path = folder.parent / bids_filename(first.subject, "report", ".html", desc="encoding")
        out.written["report"].append(
            write_html_report(path, sections, title=title or f"Encoding models, {first.subject}")
        )
    return out.written


def _model_section(name, item: EncodingScores, atlases, metrics, figure_metric, alpha, out: "_Outputs", has_space):
    """One model's maps, per-unit table and per-atlas ROI summaries."""
    from ..viz import ReportSection

    metric = _plotted_metric(item, figure_metric)
    section = ReportSection(title=f"Model {name}", text=_describe(item), collapsed=True)
    out.table(item.to_frame(), "scores", space=item.space or None, model=name)
    for map_metric in metrics if has_space else ():
        values = _available(item, map_metric)
        if values is not None:
            out.map(values, item, model=name, stat=map_metric)
    if out.draw:
        out.figure(_map_figure(item.metric(metric), item, f"{name}: {metric}"), model=name, stat=metric)
    for atlas in atlases:
        summary = summarize_rois(item, atlas, metric=metric, alpha=alpha)
        out.table(summary, "rois", model=name, atlas=atlas, stat=metric)
        section.tables[f"{metric} per ROI ({atlas})"] = summary
    if item.split_r2 is not None and has_space:
        for band, values in zip(item.space_names or [], item.split_r2):
            out.map(values, item, model=name, stat="splitr2", band=band)
    out.flush_into(section)
    return section


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
