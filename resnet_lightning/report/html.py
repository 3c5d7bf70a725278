"""The page every report is: one HTML file with its images inside it (data URIs), no script, no network.

It opens from a laptop or a cluster's shared disk in any browser, copied anywhere on its own.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #1d1d1f; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
h3 { font-size: 1.05em; margin-bottom: 0.3em; }
.sub { color: #666; margin-top: 0; }
.model { font-size: 1.05em; background: #f3f6fa; padding: 0.6em 0.9em; border-radius: 4px; }
.note { color: #666; font-style: italic; }
pre { white-space: pre-wrap; word-break: break-all; background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 0.85em; border-radius: 4px; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
.wide { overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f6fa; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
.gallery figure { display: inline-block; width: 48%; margin-right: 1%; vertical-align: top; }
figcaption { color: #666; font-size: 0.85em; }
"""


def escape(value: Any) -> str:
    """``value`` as text safe inside HTML (quotes too)."""
    return html.escape(str(value), quote=True)


def page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    """A whole HTML document: the title, a line under it, and the sections in order."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n<p class=\"sub\">{escape(subtitle)}</p>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )


def section(heading: str, *parts: str) -> str:
    """An ``<h2>`` section holding ``parts`` (already HTML)."""
    return f"<section>\n<h2>{escape(heading)}</h2>\n" + "\n".join(parts) + "\n</section>"


def note(text: str) -> str:
    """A quiet line saying why something is not there."""
    return f"<p class=\"note\">{escape(text)}</p>"


def paragraph(text: str, css: str = "") -> str:
    """A paragraph of plain text."""
    return f"<p class=\"{css}\">{escape(text)}</p>" if css else f"<p>{escape(text)}</p>"


def preformatted(text: str) -> str:
    """Text shown as it is (a YAML file, a command line)."""
    return f"<pre>{escape(text)}</pre>"


def collapsed(summary: str, content: str) -> str:
    """Content shown when its summary line is clicked (HTML's own ``<details>``: no script)."""
    return f"<details><summary>{escape(summary)}</summary>\n{content}\n</details>"


def image(png: bytes, caption: str) -> str:
    """A PNG embedded as a ``data:`` URI, with its caption."""
    data = base64.b64encode(png).decode("ascii")
    return (
        f"<figure><img src=\"data:image/png;base64,{data}\" alt=\"{escape(caption)}\">"
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], raw_last: bool = False) -> str:
    """A table with a header row; empty cells for missing values. ``raw_last``: the last column is HTML already (a link)."""
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)

    def cells(row: Sequence[Any]) -> str:
        texts = [escape("" if v is None else v) for v in row]
        if raw_last and row:
            texts[-1] = str(row[-1])
        return "".join(f"<td>{t}</td>" for t in texts)

    body = "\n".join(f"<tr>{cells(row)}</tr>" for row in rows)
    return f"<div class=\"wide\"><table>\n<tr>{head}</tr>\n{body}\n</table></div>"


def figure_png(figure: Any) -> bytes:
    """A ``matplotlib.figure.Figure`` (made without pyplot: no backend chosen, nothing to close) as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def number(value: Any) -> str:
    """A metric for a table: 4 significant digits for floats, the rest as written."""
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        return "" if value is None else str(value)
    if as_float.is_integer() and abs(as_float) < 1e15:
        return str(int(as_float))
    return f"{as_float:.4g}"
