"""Everything a finished encoding analysis writes: maps, tables, figures and an HTML report.

Outputs go to a BIDS-derivatives folder, ``<root>/derivatives/neurodec/sub-<label>/``:

- ``func/`` (or ``meg/``, ``ieeg/``): score maps in the subject's space
  (NIfTI for volume data, one MGH per hemisphere for surface data) and a
  map of every unit's cross-validated ridge penalty (``stat-alpha``), each
  with a JSON sidecar (what the map is, its unit, the model, the source
  data); a per-unit score table and per-ROI summaries with bootstrap
  confidence intervals (CSV, one per ROI atlas) for every model, and, with
  several models, a best-model-per-unit map and one model-by-ROI comparison
  table over the ROIs of all atlases;
- ``figures/``: PNG figures (maps, best-model map, ROI bars per atlas,
  model-by-ROI heatmap);
- ``sub-<label>_desc-encoding_report.html``: one self-contained report
  that opens with a summary (subject, data, units and where each went, best
  model per ROI with confidence intervals and whether the data decide it),
  a Methods section generated from the fitted models, embeds the figures
  and tables and links every file above.

Volume maps are drawn over the dataset's anatomical image where it has one
(:func:`neurodec.viz.find_underlay`); otherwise the figures say that no
underlay is available.

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
from ._report_methods import unit_counts
from ._report_sections import comparison_section, methods_section, partition_section, summary_section
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


#: Map statistics: (quantity, unit, description) for sidecars and colour-bar labels.
_QUANTITIES = {
    "r": ("Pearson r", "unitless correlation, -1 to 1",
          "Pearson correlation between predicted and measured repeat-averaged held-out test responses."),
    "r2": ("R2", "unitless fraction of variance; negative = worse than the test mean",
           "Coefficient of determination 1 - SS_res / SS_tot of predicted vs measured repeat-averaged test responses."),
    "r2_normalized": ("R2 / noise ceiling", "fraction of explainable variance, unitless",
                      "Held-out R2 divided by the unit's noise ceiling (NaN where the ceiling is not positive)."),
    "r_normalized": ("r / sqrt(noise ceiling)", "unitless",
                     "Held-out Pearson r divided by the square root of the unit's noise ceiling."),
    "noise_ceiling": ("noise ceiling", "fraction of variance of the repeat-averaged test responses, 0 to 1",
                      "Fraction of the variance of the repeat-averaged test responses a perfect model could explain."),
    "p_values": ("permutation p-value", "probability", "One-sided permutation p-value of r (shuffled test stimuli)."),
    "q_values": ("FDR q-value", "probability", "Benjamini-Hochberg adjusted permutation p-value across units."),
    "alpha": ("ridge alpha", "penalty on the squared weights of standardized features, unitless",
              "Ridge penalty chosen for each unit by cross-validation on the training split."),
    "splitr2": ("split R2", "unitless fraction of variance",
                "Banded ridge's held-out R2 attributed to one feature space (sums to the joint R2)."),
    "shared": ("shared R2", "unitless fraction of variance",
               "Held-out variance explained by both feature spaces: R2_a + R2_b - R2_joint."),
    "bestmodel": ("best model", "category: 0-based index into Levels",
                  "Model with the highest score of the unit (no significance test); NaN where no model has a "
                  "finite score."),
}


def _quantity(stat: str) -> tuple[str, str, str]:
    if stat.startswith("unique"):
        return (f"R2 unique to {stat[6:]}", "unitless fraction of variance",
                f"Held-out variance explained only by {stat[6:]}: R2_joint - R2 of the other space.")
    return _QUANTITIES.get(stat, (stat, "n/a", stat))


def _colorbar_label(stat: str) -> str:
    quantity, unit, _ = _quantity(stat)
    return f"{quantity} ({unit.split(';')[0]})"


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


def _map_figure(values: np.ndarray, scores: EncodingScores, title: str, *, label: str, underlay, **options):
    from ..viz import map_kind, plot_surface_map, plot_volume_map

    if map_kind(scores.units) == "volume":
        image, name = underlay if underlay is not None else (None, "")
        return plot_volume_map(values, scores.units, scores.info, title=title, kind="stat", label=label,
                               underlay=image, underlay_name=name, **options)
    return plot_surface_map(values, scores.units, scores.info, title=title, label=label,
                            **({"cmap": options["cmap"]} if "cmap" in options else {}))


def _sidecar(scores: EncodingScores, stat: str, model: str | None, **extra: object) -> dict:
    """The sidecar fields of one map: what it is, its unit, the model and the data it came from."""
    quantity, unit, description = _quantity(stat)
    info = scores.fit_info
    fit = {k: info[k] for k in ("model", "alphas", "cv", "n_train", "n_test", "average_repeats", "noise_ceiling")
           if k in info}
    sources = [str(scores.info["root"])] if scores.info.get("root") else []
    fields = {
        "Description": description, "Quantity": quantity, "Units": unit, "Stat": stat,
        "Model": model if model is not None else "n/a", "Subject": scores.subject, "Space": scores.space or "n/a",
        "Sources": sources or "n/a", "NTestStimuli": int(scores.n_test),
    }
    if fit:
        fields["Fit"] = fit
    if info.get("features") and model is not None:
        fields["Features"] = info["features"]
    fields.update(extra)
    return fields


def _resolve_underlay(underlay, scores: EncodingScores):
    """(image or path, description) of the anatomical underlay, or None."""
    from ..viz import find_underlay, map_kind

    if underlay is None or map_kind(scores.units) != "volume":
        return None
    if isinstance(underlay, str) and underlay == "auto":
        found = find_underlay(scores.info, scores.subject, scores.space)
        if found is None:
            logger.info("No anatomical underlay found for %s (%s); maps are drawn without one.", scores.subject,
                        scores.space)
        return found
    if isinstance(underlay, tuple):
        return underlay
    return underlay, Path(underlay).name if isinstance(underlay, (str, os.PathLike)) else "anatomical image"


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
    data_description: str | None = None,
    underlay: str | os.PathLike | None = "auto",
    level: float = 0.95,
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
    data_description : str, optional
        Free text on where the data come from, opening the report's Methods
        and shown in its summary, e.g. "Simulated subject in NSD's on-disk
        layout (neurodec demo): planted encoding model, not real fMRI." The
        report says when it was not given.
    underlay : "auto", path-like, nibabel image or None
        Anatomical image under volume map figures: "auto" uses the
        dataset's own where it has one (:func:`neurodec.viz.find_underlay`),
        a path or image is used as given (resampled to the map's grid),
        None draws none. Figures say when there is none.
    level : float
        Coverage of the bootstrap confidence intervals (and of the rule that
        calls a best model decided).

    Returns
    -------
    dict
        "maps", "sidecars", "tables", "figures", "report" -> list of written paths.
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
    out.underlay = _resolve_underlay(underlay, first) if has_space and figures else None
    model_sections = [_model_section(name, item, atlases, metrics, figure_metric, alpha, out, has_space, level)
                      for name, item in named.items()]
    sections = []
    metric = figure_metric if all(_available(s, figure_metric) is not None for s in named.values()) else "r2"
    if len(named) > 1:
        section, _ = comparison_section(named, metric, atlases, alpha, out, has_space, level=level)
        sections.append(section)
    sections += [partition_section(p, first, atlases, out, has_space) for p in partitions]
    out.table(unit_counts(named, metric), "counts", desc="units", stat=metric)
    out.pending_files.pop()  # linked from the summary, with the other key files
    key_files = [p for p in out.written["maps"] + out.written["tables"] if "desc-bestmodel" in p.name
                 or "desc-comparison" in p.name or "desc-units" in p.name]
    sections = [
        summary_section(named, metric, atlases, key_files, data_description=data_description, level=level),
        methods_section(named, metric, data_description=data_description, level=level),
    ] + sections + model_sections
    if report:
        path = folder.parent / bids_filename(first.subject, "report", ".html", desc="encoding")
        out.written["report"].append(
            write_html_report(path, sections, title=title or f"Encoding models, {first.subject}")
        )
    return out.written


def _model_section(name, item: EncodingScores, atlases, metrics, figure_metric, alpha, out: "_Outputs", has_space,
                   level):
    """One model's maps (scores, chosen alpha), per-unit table and per-atlas ROI summaries."""
    from ..viz import ReportSection

    metric = _plotted_metric(item, figure_metric)
    section = ReportSection(title=f"Model {name}", text=_describe(item), collapsed=True)
    out.table(item.to_frame(), "scores", space=item.space or None, model=name)
    for map_metric in metrics if has_space else ():
        values = _available(item, map_metric)
        if values is not None:
            out.map(values, item, _sidecar(item, map_metric, name), model=name, stat=map_metric)
    alphas = item.best_alphas if item.best_alphas is not None and np.isfinite(item.best_alphas).any() else None
    if alphas is not None and has_space:
        out.map(alphas, item, _sidecar(item, "alpha", name), model=name, stat="alpha")
    if out.draw:
        out.figure(_map_figure(item.metric(metric), item, f"{name}: {_quantity(metric)[0]}",
                               label=_colorbar_label(metric), underlay=out.underlay), model=name, stat=metric)
        if alphas is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_alpha = np.log10(alphas)
            out.figure(_map_figure(log_alpha, item, f"{name}: cross-validated ridge alpha per unit",
                                   label="log10 alpha (ridge penalty, unitless)", underlay=out.underlay,
                                   cmap="viridis", symmetric=False), model=name, stat="alpha")
    for atlas in atlases:
        summary = summarize_rois(item, atlas, metric=metric, alpha=alpha, level=level)
        out.table(summary, "rois", model=name, atlas=atlas, stat=metric)
        section.tables[f"{metric} per ROI ({atlas}), {level:.0%} bootstrap CI"] = summary
    if item.split_r2 is not None and has_space:
        for band, values in zip(item.space_names or [], item.split_r2):
            out.map(values, item, _sidecar(item, "splitr2", name, Band=band), model=name, stat="splitr2", band=band)
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
        self.written: dict[str, list[Path]] = {"maps": [], "sidecars": [], "tables": [], "figures": [], "report": []}
        self.underlay = None
        self.describe = _sidecar
        self.pending_files: list[Path] = []
        self.pending_figures: list[bytes] = []

    def table(self, frame: pd.DataFrame, suffix: str, **entities: object) -> None:
        from ..viz import bids_filename

        path = _write_csv(frame, self.folder / bids_filename(self.subject, suffix, ".csv", **entities))
        self.written["tables"].append(path)
        self.pending_files.append(path)

    def map(self, values: np.ndarray, scores: EncodingScores, sidecar: dict, **entities: object) -> None:
        """Write a map (one file, or one per hemisphere) and a JSON sidecar beside each file."""
        from ..viz import write_sidecar

        paths = _write_map(values, scores, self.folder, **entities)
        sidecars = []
        for path in paths:
            hemi = {"hemi-L": "left", "hemi-R": "right"}
            side = next((v for k, v in hemi.items() if k in path.name), None)
            sidecars.append(write_sidecar(path, {**sidecar, **({"Hemisphere": side} if side else {})}))
        self.written["maps"] += paths
        self.written["sidecars"] += sidecars
        self.pending_files += paths + sidecars

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
