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


def _inside_figure(figure) -> bool:
    """Every title, tick label and legend text lies within the figure (nothing clipped)."""
    import warnings

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "constrained_layout not applied"
        figure_to_png(figure)
        canvas = FigureCanvasAgg(figure)
        canvas.draw()
    renderer = canvas.get_renderer()
    box = figure.bbox
    texts = [ax.title for ax in figure.axes]
    for axis in (a for ax in figure.axes for a in (ax.xaxis, ax.yaxis)):
        # Matplotlib lists ticks just beyond the axis range without drawing them.
        low, high = sorted(axis.get_view_interval())
        texts += [label for loc, label in zip(axis.get_ticklocs(), axis.get_ticklabels()) if low <= loc <= high]
    texts += [figure._suptitle] if figure.get_suptitle() else []
    texts += [t for legend in figure.legends for t in legend.get_texts()]
    extents = [t.get_window_extent(renderer) for t in texts if t.get_text()]
    return bool(extents) and all(
        e.x0 >= box.x0 - 1 and e.x1 <= box.x1 + 1 and e.y0 >= box.y0 - 1 and e.y1 <= box.y1 + 1 for e in extents
    )


@pytest.mark.parametrize("n_cols", [1, 3, 18])
def test_heatmap_size_follows_the_table_and_keeps_labels_inside(n_cols):
    rows = [f"backbone/layer{i}" for i in range(4)]
    columns = [f"atlas-{c}:ROI-name-{c}" for c in range(n_cols)]
    table = pd.DataFrame(np.arange(4 * n_cols, dtype=float).reshape(4, n_cols), index=rows, columns=columns)
    title = "Mean r2_normalized per model and ROI (prf-visualrois, floc-faces, floc-places, streams)"
    figure = plot_heatmap(table, title=title, label="R2", xlabel="ROI", ylabel="model")
    width, height = figure.get_size_inches()
    assert width >= 5.0 and (n_cols < 10 or width > 12) and height < 5
    assert _inside_figure(figure)
    assert figure.get_suptitle().replace("\n", " ") == title
    # The best row of every column is written in bold.
    bold = [t for t in figure.axes[0].texts if t.get_fontweight() == "bold"]
    assert len(bold) == n_cols and all(t.get_text() == f"{3 * n_cols + c:.2f}" for c, t in enumerate(bold))


def test_heatmap_and_bars_grow_with_the_table():
    def table(n_rows, n_cols):
        return pd.DataFrame(np.ones((n_rows, n_cols)), index=[f"l{i}" for i in range(n_rows)],
                            columns=[f"R{c}" for c in range(n_cols)])

    small, wide, tall = (plot_heatmap(table(*shape)).get_size_inches() for shape in ((2, 2), (2, 20), (20, 2)))
    assert wide[0] > small[0] + 10 and tall[1] > small[1] + 6
    summary = lambda n: pd.DataFrame({"model": np.repeat(["a", "b", "c"], n), "roi": [f"ROI{i}" for i in range(n)] * 3,
                                      "mean": np.linspace(0, 1, 3 * n)})
    few, many = plot_roi_bars(summary(2), title="t"), plot_roi_bars(summary(15), title="A long title " * 8)
    assert many.get_size_inches()[0] > few.get_size_inches()[0] + 8
    assert _inside_figure(few) and _inside_figure(many)
    grouped = summary(3).assign(atlas=np.tile(["floc-faces", "floc-faces", "prf-visualrois"], 3))
    figure = plot_roi_bars(grouped, group="atlas", title="per atlas")
    assert [ax.get_title() for ax in figure.axes] == ["floc-faces", "prf-visualrois"]
    assert [len(ax.patches) for ax in figure.axes] == [6, 3]
    assert figure.axes[1].patches[2].get_height() == pytest.approx(grouped["mean"].iloc[8])
    assert _inside_figure(figure)
