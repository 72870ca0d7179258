"""Figures of encoding results: brain maps (nilearn), ROI bars and layer-by-ROI heatmaps.

All figures are drawn on matplotlib's Agg canvas (no display needed) and
returned as ``matplotlib.figure.Figure``; :func:`figure_to_png` turns one into
PNG bytes for files or HTML reports.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._logging import get_logger
from .maps import surface_from_units, volume_from_units

__all__ = ["figure_to_png", "plot_heatmap", "plot_roi_bars", "plot_surface_map", "plot_volume_map"]

logger = get_logger(__name__)

#: Vertices of fsaverage5, the coarsest FreeSurfer icosahedron nilearn ships offline.
_FSAVERAGE5_VERTICES = 10242


def _new_figure(figsize: tuple[float, float], *, layout: str | None = "constrained"):
    from matplotlib.figure import Figure

    # A bare Figure uses the Agg canvas and never touches pyplot's global state.
    return Figure(figsize=figsize, layout=layout)


def _color_limit(values: np.ndarray, vmax: float | None) -> float:
    if vmax is not None:
        return float(vmax)
    finite = np.asarray(values, dtype=np.float64)
    finite = np.abs(finite[np.isfinite(finite)])
    return float(np.percentile(finite, 99)) if finite.size and finite.max() > 0 else 1.0


def _wrapped(title: str, width_in: float, *, fontsize: float = 11.0) -> str:
    """``title`` broken into lines that fit a figure ``width_in`` inches wide."""
    # A character of the default sans-serif font is about 0.55 em wide.
    return textwrap.fill(title, width=max(16, int(width_in * 72 / (0.55 * fontsize))), break_on_hyphens=False)


def _label_inches(labels: Sequence[object], *, fontsize: float = 9.0) -> float:
    """Approximate width in inches of the longest of ``labels`` in a font of ``fontsize`` points."""
    return max((len(str(label)) for label in labels), default=0) * 0.55 * fontsize / 72


def figure_to_png(figure, *, dpi: int = 100) -> bytes:
    """PNG bytes of a matplotlib figure."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def plot_volume_map(
    values: np.ndarray,
    units: pd.DataFrame,
    info: Mapping[str, Any],
    *,
    title: str = "",
    kind: str = "stat",
    categories: Sequence[str] | None = None,
    threshold: float | None = None,
    vmax: float | None = None,
    cmap: str = "RdBu_r",
    max_slices: int = 12,
    label: str = "",
    underlay: Any = None,
    underlay_name: str = "",
    symmetric: bool = True,
):
    """A volume map: a mosaic of axial slices ("stat") or nilearn's glass brain ("glass").

    Parameters
    ----------
    values : array of shape (n_units,)
        One value per unit; NaN where a unit has no value (e.g. no noise
        ceiling for a normalized score).
    units, info
        Voxel indices and space (see :func:`neurodec.viz.volume_from_units`).
    title : str
    kind : {"stat", "glass"}
        "stat": axial slices (RAS orientation, left on the left) of the box
        holding the units, with no template under them (subject spaces have
        none). Units are drawn in the colormap, units whose value is NaN in
        light grey, and everything outside the units in white, so unknown
        values stand apart from zero. "glass": a maximum-intensity glass
        brain, meaningful for maps in MNI space.
    categories : sequence of str, optional
        Draw a categorical map instead: ``values`` hold 0-based indices into
        ``categories`` (e.g. the best layer of every voxel), shown in distinct
        colours with a legend. Only with ``kind="stat"``.
    threshold : float, optional
        Glass brain only: values below it are transparent (default: any nonzero value).
    vmax : float, optional
        Colour scale from ``-vmax`` to ``vmax`` (default: the 99th percentile
        of the absolute finite values).
    cmap : str
        Colormap of scores; the default diverging "RdBu_r" shows negative
        scores (worse than the mean) in blue and positive in red around white 0.
    max_slices : int
        Most axial slices in the mosaic (evenly spaced over the units' extent).
    label : str
        Colour-bar label: the quantity and its unit, e.g. "R2 / noise ceiling
        (fraction of explainable variance)".
    underlay : nibabel image or path-like, optional
        Anatomical image (e.g. NSD's ``T1_to_func1pt8mm.nii.gz``) drawn in grey
        under the map ("stat" only); resampled to the map's grid when its grid
        differs. Without one the figure says that no anatomical underlay is
        available. Glass brains draw nilearn's MNI outline.
    underlay_name : str
        What the underlay is, written under the figure.
    symmetric : bool
        Colour scale from ``-vmax`` to ``vmax`` (scores); False scales from the
        finite minimum to maximum (e.g. log10 alpha) with a sequential colormap.

    Every slice panel is labelled with its orientation (L/R, A/P, radiological
    convention not used: left is on the left).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if kind not in ("stat", "glass"):
        raise ValueError(f"The 'kind' parameter must be 'stat' or 'glass'. Got {kind!r} instead.")
    if kind == "glass":
        if categories is not None:
            raise ValueError("A categorical map ('categories') needs kind='stat'; a glass brain shows intensities.")
        return _glass_brain(values, units, info, title=title, threshold=threshold, vmax=vmax, cmap=cmap, label=label)
    return _slice_mosaic(values, units, info, title=title, categories=categories, vmax=vmax, cmap=cmap,
                         max_slices=max_slices, label=label, underlay=underlay, underlay_name=underlay_name,
                         symmetric=symmetric)


def _glass_brain(values, units, info, *, title, threshold, vmax, cmap, label=""):
    import nibabel as nib
    from nilearn import plotting

    image = volume_from_units(values, units, info)
    # nilearn draws 0 as transparent; NaN (outside the units) must become 0 for that.
    image = nib.Nifti1Image(np.nan_to_num(image.get_fdata(dtype=np.float32), nan=0.0), image.affine)
    figure = _new_figure((8, 3), layout=None)
    display = plotting.plot_glass_brain(
        image, figure=figure, title=title, threshold=1e-6 if threshold is None else threshold,
        vmax=_color_limit(values, vmax), cmap=cmap, colorbar=True, plot_abs=False, annotate=True,
    )
    colorbar = getattr(display, "_cbar", None)
    if label and colorbar is not None:
        colorbar.set_label(label, fontsize=8)
    elif label:
        figure.text(0.99, 0.02, label, ha="right", fontsize=8)
    return figure


def _underlay_volume(underlay, reference) -> np.ndarray:
    """The underlay's data on the grid of ``reference`` (resampled when the grids differ)."""
    import nibabel as nib

    image = nib.load(underlay) if not hasattr(underlay, "get_fdata") else underlay
    image = nib.Nifti1Image(np.asanyarray(image.dataobj, dtype=np.float32).reshape(image.shape[:3]), image.affine)
    if image.shape[:3] != reference.shape[:3] or not np.allclose(image.affine, reference.affine, atol=1e-3):
        from nilearn.image import resample_img

        image = resample_img(image, target_affine=reference.affine, target_shape=reference.shape[:3],
                             interpolation="continuous", force_resample=True, copy_header=True)
    return np.asarray(image.get_fdata(dtype=np.float32))


def _orientation_labels(ax) -> None:
    style = {"fontsize": 6, "color": "0.25", "transform": ax.transAxes,
             "bbox": {"facecolor": "white", "edgecolor": "none", "alpha": 0.75, "pad": 0.6}}
    ax.text(0.02, 0.5, "L", ha="left", va="center", **style)
    ax.text(0.98, 0.5, "R", ha="right", va="center", **style)
    ax.text(0.5, 0.98, "A", ha="center", va="top", **style)
    ax.text(0.5, 0.02, "P", ha="center", va="bottom", **style)


def _slice_mosaic(values, units, info, *, title, categories, vmax, cmap, max_slices, label="", underlay=None,
                  underlay_name="", symmetric=True):
    import nibabel as nib
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    values = np.asarray(values, dtype=np.float64)
    # One 4-D image of (values, unit mask[, underlay]), turned to RAS so every slice reads left-to-right, front-up.
    stacked = volume_from_units(np.stack([values, np.ones_like(values)]), units, info)
    channels = stacked.get_fdata(dtype=np.float32)
    if underlay is not None:
        anatomy = _underlay_volume(underlay, stacked)
        channels = np.concatenate([channels, anatomy[..., None]], axis=3)
    image = nib.as_closest_canonical(nib.Nifti1Image(channels, stacked.affine))
    data = image.get_fdata(dtype=np.float32)
    volume, inside = data[..., 0], ~np.isnan(data[..., 1])
    anatomy = data[..., 2] if underlay is not None else None
    box = [np.flatnonzero(inside.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    (x0, x1), (y0, y1) = (box[0][[0, -1]]), (box[1][[0, -1]])
    if anatomy is not None:
        # Some anatomy around the units, for context.
        pad_x, pad_y = max(3, (x1 - x0) // 5), max(3, (y1 - y0) // 5)
        x0, x1 = max(0, x0 - pad_x), min(data.shape[0] - 1, x1 + pad_x)
        y0, y1 = max(0, y0 - pad_y), min(data.shape[1] - 1, y1 + pad_y)
    slices = box[2][np.unique(np.linspace(0, len(box[2]) - 1, min(max_slices, len(box[2]))).round().astype(int))]
    n_rows = -(-len(slices) // 6)
    n_cols = -(-len(slices) // n_rows)  # balanced rows: 8 slices are 2 x 4, not 6 + 2
    zooms = image.header.get_zooms()[:3]
    panel = 1.7
    aspect = (y1 - y0 + 1) * zooms[1] / ((x1 - x0 + 1) * zooms[0])
    side = 1.9 if categories is None else 0.4 + _label_inches(categories, fontsize=8) + 0.5
    width = n_cols * panel + side
    # The title spans the panels only: the colour bar or legend sits beside them.
    wrapped = _wrapped(title, n_cols * panel) if title else ""
    figure = _new_figure((width, n_rows * panel * aspect + 0.35 * (wrapped.count("\n") + 1) + 0.55))
    finite = values[np.isfinite(values)]
    if categories is not None:
        palette = colormaps["tab10" if len(categories) <= 10 else "tab20"].colors[: len(categories)]
        colormap, norm_args = ListedColormap(palette), {"vmin": -0.5, "vmax": len(categories) - 0.5}
    elif symmetric:
        limit = _color_limit(values, vmax)
        colormap, norm_args = colormaps[cmap], {"vmin": -limit, "vmax": limit}
    else:
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        colormap, norm_args = colormaps[cmap], {"vmin": low, "vmax": high if high > low else low + 1.0}
    colormap = colormap.with_extremes(bad=(0.0, 0.0, 0.0, 0.0))
    if anatomy is not None:
        box_anatomy = anatomy[x0 : x1 + 1, y0 : y1 + 1][..., slices]
        shown = box_anatomy[np.isfinite(box_anatomy) & (box_anatomy != 0)]
        gray = np.percentile(shown, [2, 98]) if shown.size else (0.0, 1.0)
    axes = figure.subplots(n_rows, n_cols, squeeze=False)
    for ax, k in zip(axes.ravel(), slices):
        box_inside = inside[x0 : x1 + 1, y0 : y1 + 1, k]
        box_values = volume[x0 : x1 + 1, y0 : y1 + 1, k]
        style = {"origin": "lower", "aspect": zooms[1] / zooms[0], "interpolation": "nearest"}
        if anatomy is not None:
            ax.imshow(anatomy[x0 : x1 + 1, y0 : y1 + 1, k].T, cmap="gray", vmin=gray[0], vmax=gray[1], **style)
            # Units without a value: a translucent white veil over the anatomy.
            veil = np.where(box_inside & np.isnan(box_values), 1.0, np.nan)
            ax.imshow(veil.T, cmap="gray", vmin=0, vmax=1, alpha=0.6, **style)
        else:
            # Grey under every unit shows through where its value is NaN; outside the units stays white.
            ax.imshow(np.where(box_inside, 0.82, np.nan).T, cmap="gray", vmin=0, vmax=1, **style)
        im = ax.imshow(box_values.T, cmap=colormap, **style, **norm_args)
        z = (image.affine @ np.array([0, 0, k, 1]))[2]
        ax.set_title(f"z = {int(round(z))} mm", fontsize=8)
        _orientation_labels(ax)
    for ax in axes.ravel():
        ax.set_xticks([]), ax.set_yticks([])
        ax.spines[:].set_color("0.8")
    for ax in axes.ravel()[len(slices) :]:
        ax.set_visible(False)
    missing = Patch(facecolor="0.82" if anatomy is None else "0.9", edgecolor="0.6", label="no value (NaN)")
    if categories is not None:
        handles = [Patch(facecolor=c, label=str(name)) for c, name in zip(palette, categories)] + [missing]
        figure.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    else:
        colorbar = figure.colorbar(im, ax=axes, shrink=0.8, aspect=25)
        if label:
            colorbar.set_label(_wrapped(label, 2.2, fontsize=8), fontsize=8)
        if np.isnan(values).any():
            figure.legend(handles=[missing], loc="outside right lower", fontsize=7, frameon=False)
    note = (f"Underlay: {underlay_name or 'anatomical image'}." if anatomy is not None
            else "No anatomical underlay available for this dataset: grey = units without a value, "
            "white = outside the units.")
    figure.text(0.005, 0.005, f"Axial slices, neurological view (left on the left). {note}", fontsize=6.5, color="0.3",
                ha="left", va="bottom")
    # Keep the note clear of the panels (constrained layout ignores figure texts).
    figure.get_layout_engine().set(rect=(0, 0.2 / figure.get_figheight(), 1, 1 - 0.2 / figure.get_figheight()))
    figure.suptitle(wrapped, fontsize=11, x=n_cols * panel / 2 / width)
    return figure


def plot_surface_map(
    values: np.ndarray,
    units: pd.DataFrame,
    info: Mapping[str, Any],
    *,
    title: str = "",
    threshold: float | None = None,
    vmax: float | None = None,
    cmap: str = "cold_hot",
    label: str = "",
):
    """An fsaverage score map on nilearn's inflated fsaverage5 surfaces, lateral and medial views.

    Parameters
    ----------
    values : array of shape (n_units,)
    units, info
        Hemisphere/vertex of each unit and ``info["n_vertices"]`` (see
        :func:`neurodec.viz.surface_from_units`).
    title, threshold, vmax
        As in :func:`plot_volume_map`.
    cmap : str
        Colormap; nilearn's "cold_hot" keeps values near 0 dark, apart from
        the grey sulcal background that shows where values are below ``threshold``.
    label : str
        Colour-bar label (quantity and unit). Every panel is labelled with its
        hemisphere and view; the underlay is fsaverage5's sulcal depth.

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    FreeSurfer's icosahedral surfaces are nested: the first 10242 vertices of
    fsaverage6 and fsaverage are the vertices of fsaverage5. Maps of any of
    these spaces are drawn on fsaverage5 (which nilearn ships, so no download
    is needed) from those first vertices.
    """
    from nilearn import datasets, plotting

    hemis = surface_from_units(values, units, info)
    n_vertices = {len(v) for v in hemis.values()}
    # Icosahedron orders: 10 * 4**k + 2 vertices; fsaverage5 is k = 5.
    nested = all(n >= _FSAVERAGE5_VERTICES and (n - 2) % 10 == 0 and _is_power_of_4((n - 2) // 10) for n in n_vertices)
    if not nested:
        raise ValueError(
            f"Surface maps can be drawn for fsaverage5/6/7 spaces only; this space has {sorted(n_vertices)} "
            "vertices per hemisphere."
        )
    mesh = datasets.load_fsaverage("fsaverage5")
    sulc = datasets.load_fsaverage_data(mesh="fsaverage5", data_type="sulcal")
    vmax = _color_limit(values, vmax)
    threshold = 1e-6 if threshold is None else threshold
    figure = _new_figure((4 * len(hemis), 5), layout=None)
    axes = figure.subplots(2, len(hemis), subplot_kw={"projection": "3d"}, squeeze=False)
    # 3-D axes keep wide margins around the mesh by default; the brains get the room instead.
    figure.subplots_adjust(left=0.0, right=0.92, bottom=0.05, top=0.9, wspace=0.0, hspace=0.0)
    for col, (hemi, data) in enumerate(hemis.items()):
        side = "left" if hemi == "lh" else "right"
        stat = np.nan_to_num(data[:_FSAVERAGE5_VERTICES], nan=0.0)
        for row, view in enumerate(("lateral", "medial")):
            plotting.plot_surf_stat_map(
                surf_mesh=mesh["inflated"].parts[side], stat_map=stat, bg_map=sulc.data.parts[side],
                hemi=side, view=view, threshold=threshold, vmax=vmax, cmap=cmap, colorbar=row == 0,
                figure=figure, axes=axes[row, col], title=None,
            )
            axes[row, col].text2D(0.5, 0.02, f"{side} hemisphere, {view}", transform=axes[row, col].transAxes,
                                  ha="center", fontsize=8, color="0.3")
    for extra in [ax for ax in figure.axes if ax not in set(axes.ravel())]:
        extra.set_ylabel(label, fontsize=8)  # nilearn's colour bars
    figure.suptitle(_wrapped(title, 4 * len(hemis)) if title else "", fontsize=11)
    figure.text(0.005, 0.005, "Inflated fsaverage5 surface; grey underlay: sulcal depth.", fontsize=6.5, color="0.3")
    return figure


def _is_power_of_4(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0 and (n.bit_length() - 1) % 2 == 0


def plot_roi_bars(
    summary: pd.DataFrame,
    *,
    value: str = "mean",
    title: str = "",
    ylabel: str | None = None,
    legend_title: str = "",
    group: str | None = None,
):
    """Bar plot of an ROI summary: one group of bars per ROI, one bar per model.

    The figure grows with the number of bars; models are coloured in their
    order along a sequential colormap (layers read from dark to light), with
    the legend outside the axes.

    Parameters
    ----------
    summary : pandas.DataFrame
        With columns ``roi``, ``model`` and ``value`` (e.g. the output of
        :func:`neurodec.encoding.summarize_rois` or ``compare_models``).
        With ``ci_low`` and ``ci_high`` columns, bars carry those intervals
        as error bars.
    value : str
        Column to plot.
    title, ylabel, legend_title : str
    group : str, optional
        Column splitting the ROIs into panels that share the y axis (e.g.
        "atlas"), each as wide as its number of ROIs and titled with its value.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib import colormaps

    missing = [c for c in ("roi", "model", value) + ((group,) if group else ()) if c not in summary.columns]
    if missing:
        raise ValueError(f"The ROI summary lacks column(s) {missing}; got columns {list(summary.columns)}.")
    groups = list(summary.groupby(group, sort=False)) if group else [("", summary)]
    tables = [(name, rows.pivot_table(index="roi", columns="model", values=value, sort=False)) for name, rows in groups]
    has_ci = {"ci_low", "ci_high"} <= set(summary.columns) and np.isfinite(summary[["ci_low", "ci_high"]]).any().all()
    intervals = [(rows.pivot_table(index="roi", columns="model", values="ci_low", sort=False, dropna=False),
                  rows.pivot_table(index="roi", columns="model", values="ci_high", sort=False, dropna=False))
                 if has_ci else None for _, rows in groups]
    models = list(dict.fromkeys(summary["model"]))
    rois = [roi for _, table in tables for roi in table.index]
    n_models = len(models)
    legend = _label_inches(models) + 0.8 if n_models > 1 else 0.0
    width = max(5.0, 1.2 + len(rois) * (0.22 * n_models + 0.35) + 0.3 * len(tables) + legend)
    rotate = _label_inches(rois) > 0.5
    figure = _new_figure((width, 3.2 + (_label_inches(rois) * 0.7 if rotate else 0.2) + (0.3 if group else 0)))
    axes = figure.subplots(1, len(tables), sharey=True, squeeze=False,
                           gridspec_kw={"width_ratios": [len(table) + 0.2 for _, table in tables]})[0]
    bar = 0.8 / n_models
    colors = colormaps["viridis"](np.linspace(0.0, 0.85, n_models)) if n_models > 1 else ["tab:blue"]
    for ax, (name, table), ci in zip(axes, tables, intervals):
        x = np.arange(len(table))
        for n, model in enumerate(models):
            heights = table[model].to_numpy() if model in table.columns else np.full(len(table), np.nan)
            offset = (n - (n_models - 1) / 2) * bar
            ax.bar(x + offset, heights, bar, label=str(model) if ax is axes[0] else None, color=colors[n])
            if ci is not None and model in ci[0].columns:
                low = ci[0][model].reindex(table.index).to_numpy()
                high = ci[1][model].reindex(table.index).to_numpy()
                err = np.vstack([heights - low, high - heights])
                ok = np.isfinite(err).all(axis=0)
                ax.errorbar((x + offset)[ok], heights[ok], yerr=err[:, ok], fmt="none", ecolor="k", elinewidth=0.8,
                            capsize=1.5)
        ax.set_xticks(x, [str(roi) for roi in table.index], rotation=45 if rotate else 0,
                      ha="right" if rotate else "center")
        ax.set_xlim(-0.6, len(table) - 0.4)
        ax.axhline(0, color="k", linewidth=0.8)
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_title(str(name), fontsize=9)
    axes[0].set_ylabel(ylabel or value)
    if has_ci:
        title = f"{title} (error bars: bootstrap CI)" if title else "error bars: bootstrap CI"
    figure.suptitle(_wrapped(title, width - legend), fontsize=11)
    if n_models > 1:
        figure.legend(loc="outside right upper", fontsize="small", frameon=False, title=legend_title or None,
                      title_fontsize="small")
    return figure


def plot_heatmap(
    table: pd.DataFrame,
    *,
    title: str = "",
    cmap: str = "viridis",
    label: str = "",
    xlabel: str = "",
    ylabel: str = "",
    highlight_max: bool = True,
):
    """Heatmap of a table, e.g. layers (rows) by ROIs (columns), with values written in the cells.

    The figure is sized from the table's shape and its labels, so a table of
    two columns or of thirty stays readable; long titles are wrapped.

    Parameters
    ----------
    table : pandas.DataFrame
        Numeric; index and columns label the axes.
    title, cmap, label : str
        Figure title, colormap and colour-bar label.
    xlabel, ylabel : str
        Axis labels (e.g. "ROI", and the backbone whose layers are the rows).
    highlight_max : bool
        Write the largest value of each column in bold and frame its cell
        (the best row, e.g. the best layer, of every ROI).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.patches import Rectangle

    values = table.to_numpy(dtype=np.float64)
    n_rows, n_cols = values.shape
    columns, rows = [str(c) for c in table.columns], [str(i) for i in table.index]
    rotate = _label_inches(columns, fontsize=9) > 0.6
    width = max(5.0, 0.4 + _label_inches(rows) + (0.3 if ylabel else 0) + 0.7 * n_cols + 1.4)
    bottom = (0.75 * _label_inches(columns) if rotate else 0.25) + (0.3 if xlabel else 0)
    wrapped = _wrapped(title, width - 0.4) if title else ""
    height = max(2.5, 0.5 + 0.25 * (wrapped.count("\n") + 1) + 0.42 * n_rows + bottom)
    figure = _new_figure((width, height))
    ax = figure.subplots()
    im = ax.imshow(values, cmap=cmap, aspect="auto")
    ax.set_xticks(range(n_cols), columns, rotation=45 if rotate else 0, ha="right" if rotate else "center",
                  rotation_mode="anchor" if rotate else "default", fontsize=9)
    ax.set_yticks(range(n_rows), rows, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    best = np.full(values.shape, False)
    if highlight_max:
        finite = np.isfinite(values)
        for c in np.flatnonzero(finite.any(axis=0)):
            best[np.nanargmax(values[:, c]), c] = True
    for (r, c), v in np.ndenumerate(values):
        if np.isfinite(v):
            # Black text on light cells, white on dark ones (relative luminance of the cell colour).
            red, green, blue, _ = im.cmap(im.norm(v))
            dark = 0.2126 * red + 0.7152 * green + 0.0722 * blue < 0.5
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=8, color="w" if dark else "k",
                    fontweight="bold" if best[r, c] else "normal")
        if best[r, c]:
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="w", linewidth=1.5))
    figure.colorbar(im, ax=ax, label=label, shrink=min(1.0, 0.4 + 0.15 * n_rows))
    # Centred on the figure, not the axes: the axes leave room for row labels and the colour bar.
    figure.suptitle(wrapped, fontsize=11)
    return figure
