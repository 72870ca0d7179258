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
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #eee; } img { max-width: 100%; display: block; margin: 1em 0; }
ul.files { font-family: monospace; font-size: 0.85em; }
"""


@dataclasses.dataclass
class ReportSection:
    """One section of an HTML report.

    Parameters
    ----------
    title : str
    text : str
        A paragraph of plain text (escaped).
    figures : list
        matplotlib figures or PNG bytes, embedded in order.
    tables : dict
        caption -> pandas.DataFrame, rendered as HTML tables.
    files : list of path-like
        Files to link to (made relative to the report's folder).
    """

    title: str
    text: str = ""
    figures: list = dataclasses.field(default_factory=list)
    tables: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)
    files: list[str | os.PathLike] = dataclasses.field(default_factory=list)


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
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            parts.append(f"<p>{html.escape(section.text)}</p>")
        parts.extend(_image_tag(fig) for fig in section.figures)
        for caption, table in section.tables.items():
            parts.append(f"<h3>{html.escape(caption)}</h3>")
            parts.append(table.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="NaN", border=0))
        if section.files:
            links = "".join(
                f'<li><a href="{html.escape(rel)}">{html.escape(rel)}</a></li>'
                for rel in (_relative(f, path.parent) for f in section.files)
            )
            parts.append(f'<ul class="files">{links}</ul>')
    parts.append("</body></html>")
    return write_text_atomic(path, "\n".join(parts) + "\n")
