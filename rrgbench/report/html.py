"""The HTML writer: one self-contained ``leaderboard.html`` (inline CSS, plots as base64 PNG).

Every piece of text that reaches the page goes through :func:`escape` (cells, headers, paragraphs, titles,
footnotes, alt texts): a model name, an override or a generated report cannot inject markup. Tables sit in
scroll containers that fit the window; the first column (the model) stays pinned (``position: sticky``)
while a wide table scrolls sideways.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping

from rrgbench.report.tables import Document, Shown, Table, one_line

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1400px;color:#222;
padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
.scroll{display:inline-block;vertical-align:top;max-width:100%;overflow-x:auto;margin:.5rem 0;border:1px solid #ddd}
table{border-collapse:separate;border-spacing:0;font-size:.82rem}
th,td{border-right:1px solid #e5e5e5;border-bottom:1px solid #e5e5e5;padding:.25rem .45rem;text-align:right;
background:#fff}
th{background:#f3f4f6;vertical-align:bottom}td span{white-space:nowrap}
th:first-child,td:first-child{position:sticky;left:0;z-index:1;text-align:left;border-right:2px solid #ccc;
min-width:9rem;max-width:16rem}
th:first-child{background:#f3f4f6;z-index:2}
tr:nth-child(even) td{background:#fafafa}
.na{color:#999}p,li{font-size:.9rem;color:#333;max-width:70rem}code{font-size:.85em}
img{max-width:100%;border:1px solid #eee;margin:.5rem 0}
"""


def escape(text: object) -> str:
    """Text as HTML (markup escaped, quotes too); the one escaping function of the page."""
    return html.escape(str(text), quote=True)


def paragraph(text: str) -> str:
    """A plain-text paragraph, escaped, with `code` spans rendered."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(one_line(text)))


def cell(shown: Shown) -> str:
    """A cell's parts as unbreakable spans (a cell may wrap between the value and its ``± sd``)."""
    note = f'<sup><a href="#fn-{escape(shown.note)}">{escape(shown.note)}</a></sup>' if shown.note else ""
    if shown.na:
        return f'<span class="na">n/a{note}</span>'
    text = f"<span>{escape(shown.text)}</span>" + (f" <span>{escape(shown.extra)}</span>" if shown.extra else "")
    return (f"<b>{text}</b>" if shown.bold else text) + note


def label(shown: Shown) -> str:
    """The first column: the row's name, free to wrap at its spaces."""
    return escape(shown.text)


def table(found: Table, section: str = "") -> str:
    head = "".join(f"<th>{escape(h).replace('_', '_<wbr>')}</th>" for h in found.header)  # long keys may wrap
    body = "".join("<tr>" + f"<td>{label(row[0])}</td>" + "".join(f"<td>{cell(c)}</td>" for c in row[1:]) + "</tr>"
                   for row in found.rows)
    return (f'<div class="scroll" data-section="{escape(section)}"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def page(doc: Document, images: Mapping[str, bytes]) -> str:
    """The whole document as one page."""
    parts = [f"<h1>{escape(doc.title)}</h1>", *(f"<p>{paragraph(p)}</p>" for p in doc.intro)]
    for section in doc.sections:
        parts.append(f"<h2>{escape(section.title)}</h2>")
        parts += [f"<p>{paragraph(p)}</p>" for p in section.text]
        if section.table is not None:
            parts.append(table(section.table, section.title))
        parts += [f"<p>{paragraph(p)}</p>" for p in section.after]
        if section.items:
            parts.append("<ul>" + "".join(f"<li>{paragraph(item)}</li>" for item in section.items) + "</ul>")
        for name, alt in section.images:
            encoded = base64.b64encode(images[name]).decode("ascii")
            parts.append(f'<img alt="{escape(alt)}" src="data:image/png;base64,{encoded}">')
    if doc.notes:
        parts.append("<h2>Notes</h2><ol>" + "".join(
            f'<li id="fn-{escape(label)}"><b>{escape(label)}</b>: {paragraph(reason)}</li>'
            for label, reason in doc.notes) + "</ol>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape('rrgbench ' + doc.title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
