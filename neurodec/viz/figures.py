"""Figures of encoding results: brain maps (nilearn), ROI bars and layer-by-ROI heatmaps.

All figures are drawn on matplotlib's Agg canvas (no display needed) and
returned as ``matplotlib.figure.Figure``; :func:`figure_to_png` turns one into
PNG bytes for files or HTML reports.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
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
    threshold: float | None = None,
    vmax: float | None = None,
    cmap: str = "cold_hot",
):
    """A volume score map: nilearn's slice view ("stat") or glass brain ("glass").

    Parameters
    ----------
    values : array of shape (n_units,)
    units, info
        Voxel indices and space (see :func:`neurodec.viz.volume_from_units`).
    title : str
    kind : {"stat", "glass"}
        "stat": axial slices of the map in its own space without a
        background (subject spaces have no template to put under it);
        "glass": a maximum-intensity glass brain, meaningful for maps in MNI space.
    threshold, vmax : float, optional
        Values below ``threshold`` (default: any nonzero value is shown) are
        transparent; colour scale up to ``vmax``
        (default: the 99th percentile of finite values).
    cmap : str
        Colormap; the default diverging "cold_hot" (nilearn) shows negative scores (worse than the
        mean) in blue and positive in red, on a scale symmetric around 0.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from nilearn import plotting

    if kind not in ("stat", "glass"):
        raise ValueError(f"The 'kind' parameter must be 'stat' or 'glass'. Got {kind!r} instead.")
    import nibabel as nib

    image = volume_from_units(values, units, info)
    # nilearn draws 0 as transparent; NaN (outside the units) must become 0 for that.
    image = nib.Nifti1Image(np.nan_to_num(image.get_fdata(dtype=np.float32), nan=0.0), image.affine)
    threshold = 1e-6 if threshold is None else threshold
    vmax = _color_limit(values, vmax)
    figure = _new_figure((8, 3), layout=None)
    if kind == "glass":
        plotting.plot_glass_brain(
            image, figure=figure, title=title, threshold=threshold, vmax=vmax, cmap=cmap, colorbar=True, plot_abs=False
        )
    else:
        n_slices = min(6, image.shape[2])
        plotting.plot_stat_map(
            image, bg_img=None, figure=figure, title=title, threshold=threshold, vmax=vmax, cmap=cmap,
            display_mode="z", cut_coords=n_slices, colorbar=True,
        )
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
):
    """An fsaverage score map on nilearn's inflated fsaverage5 surfaces, lateral and medial views.

    Parameters
    ----------
    values : array of shape (n_units,)
    units, info
        Hemisphere/vertex of each unit and ``info["n_vertices"]`` (see
        :func:`neurodec.viz.surface_from_units`).
    title, threshold, vmax, cmap
        As in :func:`plot_volume_map`.

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
    figure = _new_figure((4 * len(hemis), 6), layout=None)
    axes = figure.subplots(2, len(hemis), subplot_kw={"projection": "3d"}, squeeze=False)
    for col, (hemi, data) in enumerate(hemis.items()):
        side = "left" if hemi == "lh" else "right"
        stat = np.nan_to_num(data[:_FSAVERAGE5_VERTICES], nan=0.0)
        for row, view in enumerate(("lateral", "medial")):
            plotting.plot_surf_stat_map(
                surf_mesh=mesh["inflated"].parts[side], stat_map=stat, bg_map=sulc.data.parts[side],
                hemi=side, view=view, threshold=threshold, vmax=vmax, cmap=cmap, colorbar=row == 0,
                figure=figure, axes=axes[row, col], title=f"{title} {hemi}" if row == 0 else None,
            )
    return figure


def _is_power_of_4(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0 and (n.bit_length() - 1) % 2 == 0


def plot_roi_bars(summary: pd.DataFrame, *, value: str = "mean", title: str = "", ylabel: str | None = None):
    """Bar plot of an ROI summary: one group of bars per ROI, one bar per model.

    Parameters
    ----------
    summary : pandas.DataFrame
        With columns ``roi``, ``model`` and ``value`` (e.g. the output of
        :func:`neurodec.encoding.summarize_rois` or ``compare_models``).
    value : str
        Column to plot.
    title, ylabel : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    missing = [c for c in ("roi", "model", value) if c not in summary.columns]
    if missing:
        raise ValueError(f"The ROI summary lacks column(s) {missing}; got columns {list(summary.columns)}.")
    table = summary.pivot_table(index="roi", columns="model", values=value, sort=False)
    figure = _new_figure((max(4.0, 0.6 * table.size + 1.5), 3.5))
    ax = figure.subplots()
    width = 0.8 / table.shape[1]
    x = np.arange(table.shape[0])
    for n, model in enumerate(table.columns):
        ax.bar(x + (n - (table.shape[1] - 1) / 2) * width, table[model].to_numpy(), width, label=str(model))
    ax.set_xticks(x, table.index, rotation=45, ha="right")
    ax.axhline(0, color="k", linewidth=0.8)
    ax.set_ylabel(ylabel or value)
    ax.set_title(title)
    if table.shape[1] > 1:
        ax.legend(fontsize="small", frameon=False)
    return figure


def plot_heatmap(table: pd.DataFrame, *, title: str = "", cmap: str = "viridis", label: str = ""):
    """Heatmap of a table, e.g. layers (rows) by ROIs (columns), with values written in the cells.

    Parameters
    ----------
    table : pandas.DataFrame
        Numeric; index and columns label the axes.
    title, cmap, label : str
        Figure title, colormap and colour-bar label.

    Returns
    -------
    matplotlib.figure.Figure
    """
    values = table.to_numpy(dtype=np.float64)
    figure = _new_figure((1.2 + 0.8 * values.shape[1], 1.0 + 0.45 * values.shape[0]))
    ax = figure.subplots()
    im = ax.imshow(values, cmap=cmap, aspect="auto")
    ax.set_xticks(range(values.shape[1]), [str(c) for c in table.columns], rotation=45, ha="right")
    ax.set_yticks(range(values.shape[0]), [str(i) for i in table.index])
    low, high = im.get_clim()
    for (r, c), v in np.ndenumerate(values):
        if np.isfinite(v):
            # Dark text on the bright end of the colormap, light text on the dark end.
            bright = high > low and (v - low) / (high - low) > 0.6
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="k" if bright else "w")
    figure.colorbar(im, ax=ax, label=label)
    ax.set_title(title)
    return figure
