"""Figures draw on Agg from the tables the encoding API returns; the HTML report is self-contained."""

import base64

import numpy as np
import pandas as pd
import pytest

from neurodec.viz import ReportSection, figure_to_png, plot_heatmap, plot_roi_bars, plot_surface_map, write_html_report


def test_roi_bars_and_heatmap_are_pngs():
    summary = pd.DataFrame({"model": ["a", "a", "b", "b"], "roi": ["V1", "FFA", "V1", "FFA"], "mean": [0.5, 0.1, 0.2, 0.4]})
    bars = plot_roi_bars(summary, title="R2 per ROI")
    assert len(bars.axes[0].patches) == 4
    heights = sorted(p.get_height() for p in bars.axes[0].patches)
    np.testing.assert_allclose(heights, [0.1, 0.2, 0.4, 0.5])
    heat = plot_heatmap(summary.pivot(index="model", columns="roi", values="mean"), label="R2")
    assert figure_to_png(heat).startswith(b"\x89PNG")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['median'\]"):
        plot_roi_bars(summary, value="median")


def test_surface_plot_needs_an_fsaverage_space():
    units = pd.DataFrame({"hemi": ["lh"], "vertex": [3]})
    with pytest.raises(ValueError, match="fsaverage5/6/7"):
        plot_surface_map([1.0], units, {"n_vertices": 5000})


def test_report_embeds_figures_and_links_files(tmp_path):
    table_path = tmp_path / "sub-01" / "func" / "scores.csv"
    table_path.parent.mkdir(parents=True)
    table_path.write_text("a\n1\n")
    png = figure_to_png(plot_heatmap(pd.DataFrame([[1.0]], index=["x"], columns=["y"])))
    section = ReportSection(title="Model <A>", text="r & R2", figures=[png],
                            tables={"summary": pd.DataFrame({"roi": ["V1"], "mean": [0.123456]})}, files=[table_path])
    report = write_html_report(tmp_path / "sub-01" / "report.html", [section], title="Encoding")
    html = report.read_text()
    assert "Model &lt;A&gt;" in html and "r &amp; R2" in html and "0.123" in html
    assert 'href="func/scores.csv"' in html
    encoded = html.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(encoded) == png
    assert "http" not in html  # no external assets
