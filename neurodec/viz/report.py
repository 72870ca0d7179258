"""A self-contained HTML report: figures embedded as base64 PNG, tables as HTML, links to files.

The report is one file that opens anywhere (no external assets); links to the
maps and tables it summarizes are relative, so the folder can be moved whole.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import os
from pathlib import Path

import pandas as pd

from .._io import write_text_atomic
from .figures import figure_to_png

__all__ = ["ReportSection", "write_html_report"]

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: 0.2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #bbb; padding-bottom: 0.1em; }
h3 { font-size: 1em; margin: 1.2em 0 0.3em; color: #444; }
nav { background: #f6f6f6; border: 1px solid #ddd; padding: 0.5em 1em; font-size: 0.9em; }
nav ol { margin: 0.3em 0; padding-left: 1.5em; columns: 2; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.3em 0 1em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
th { white-space: nowrap; }
td { max-width: 48em; }
th { background: #eee; } tbody tr:nth-child(even) { background: #fafafa; }
img { max-width: 100%; display: block; margin: 1em 0; }
details { margin: 0.5em 0; } summary { cursor: pointer; color: #335; }
ul.files { font-family: ui-monospace, monospace; font-size: 0.8em; }
"""


@dataclasses.dataclass
class ReportSection:
    """One section of an HTML report.

    Parameters
    ----------
    title : str
    text : str
        Plain text (escaped); blank lines separate paragraphs.
    figures : list
        matplotlib figures or PNG bytes, embedded in order.
    tables : dict
        caption -> pandas.DataFrame, rendered as HTML tables.
    files : list of path-like
        Files to link to (made relative to the report's folder).
    collapsed : bool
        Fold the section's tables away (HTML ``<details>``) so long
        per-model sections do not bury the summary; figures stay visible.
    """

    title: str
    text: str = ""
    figures: list = dataclasses.field(default_factory=list)
    tables: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)
    files: list[str | os.PathLike] = dataclasses.field(default_factory=list)
    collapsed: bool = False


def _image_tag(figure) -> str:
    png = figure if isinstance(figure, bytes) else figure_to_png(figure)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _relative(path: str | os.PathLike, start: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), start.resolve())).as_posix()


def write_html_report(
    path: str | os.PathLike, sections: list[ReportSection], *, title: str = "neurodec report"
) -> Path:
    """Write a self-contained HTML report atomically.

    Parameters
    ----------
    path : path-like
        Destination ``.html`` file.
    sections : list of ReportSection
    title : str

    Returns
    -------
    Path
        The written report.
    """
    path = Path(path)
    anchors = [f"section-{n}" for n in range(len(sections))]
    contents = "".join(
        f'<li><a href="#{anchor}">{html.escape(section.title)}</a></li>' for anchor, section in zip(anchors, sections)
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<nav><strong>Contents</strong><ol>{contents}</ol></nav>" if len(sections) > 1 else "",
    ]
    for anchor, section in zip(anchors, sections):
        parts.append(f'<h2 id="{anchor}">{html.escape(section.title)}</h2>')
        parts.extend(f"<p>{html.escape(p.strip())}</p>" for p in section.text.split("\n\n") if p.strip())
        parts.extend(_image_tag(fig) for fig in section.figures)
        tables = []
        for caption, table in section.tables.items():
            tables.append(f"<h3>{html.escape(caption)}</h3>")
            rendered = table.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="n/a", border=0)
            tables.append(f'<div class="scroll">{rendered}</div>')
        if tables and section.collapsed:
            tables = [f"<details><summary>Tables ({len(section.tables)})</summary>", *tables, "</details>"]
        parts.extend(tables)
        if section.files:
            links = "".join(
                f'<li><a href="{html.escape(rel)}">{html.escape(rel)}</a></li>'
                for rel in (_relative(f, path.parent) for f in section.files)
            )
            shown = "" if section.collapsed else " open"
            parts.append(f'<details{shown}><summary>Files ({len(section.files)})</summary><ul class="files">{links}</ul></details>')
    parts.append("</body></html>")
    return write_text_atomic(path, "\n".join(parts) + "\n")
