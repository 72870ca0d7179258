"""Brain maps, figures and reports: score maps in the subject's space, ROI plots, HTML reports.

Names are imported on first access so ``import neurodec.viz`` stays light
(nibabel, nilearn and matplotlib load only when a map or figure is made).
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "find_underlay": "maps",
    "map_kind": "maps",
    "surface_from_units": "maps",
    "volume_from_units": "maps",
    "write_surface_maps": "maps",
    "write_volume_map": "maps",
    "figure_to_png": "figures",
    "plot_heatmap": "figures",
    "plot_roi_bars": "figures",
    "plot_surface_map": "figures",
    "plot_volume_map": "figures",
    "ReportSection": "report",
    "write_html_report": "report",
    "bids_filename": "derivatives",
    "bids_subject_label": "derivatives",
    "derivatives_folder": "derivatives",
    "sidecar_path": "derivatives",
    "write_sidecar": "derivatives",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
