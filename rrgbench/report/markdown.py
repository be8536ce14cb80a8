"""The Markdown writer: renders a report document (:mod:`rrgbench.report.tables`) as ``leaderboard.md``.

Cells are escaped for pipe tables (``|`` -> ``\\|``, whitespace folded to one line); an unavailable value
reads ``n/a[^label]`` with a footnote giving the reason; images are linked by their file name, next to
the Markdown file.
"""

from __future__ import annotations

from rrgbench.report.tables import Document, Shown, Table, one_line


def escape(text: str) -> str:
    """Text safe inside a pipe-table cell: one line, pipes escaped."""
    return one_line(text).replace("|", "\\|")


def cell(shown: Shown) -> str:
    note = f"[^{shown.note}]" if shown.note else ""
    if shown.na:
        return "n/a" + note
    text = escape(shown.text + (f" {shown.extra}" if shown.extra else ""))
    return (f"**{text}**" if shown.bold and text else text) + note


def table(found: Table) -> list[str]:
    return ["| " + " | ".join(escape(h) for h in found.header) + " |",
            "|" + "|".join(["---"] * len(found.header)) + "|",
            *("| " + " | ".join(cell(c) for c in row) + " |" for row in found.rows)]


def markdown(doc: Document) -> str:
    """The whole document as Markdown."""
    lines = [f"# {one_line(doc.title)}"]
    for paragraph in doc.intro:
        lines += ["", one_line(paragraph)]
    for section in doc.sections:
        lines += ["", f"## {section.title}"]
        for paragraph in section.text:
            lines += ["", one_line(paragraph)]
        if section.table is not None:
            lines += ["", *table(section.table)]
        for paragraph in section.after:
            lines += ["", one_line(paragraph)]
        if section.items:
            lines += ["", *(f"- {one_line(item)}" for item in section.items)]
        for name, alt in section.images:
            lines += ["", f"![{alt}]({name})"]
    if doc.notes:
        lines.append("")
        lines += [f"[^{label}]: {one_line(reason)}" for label, reason in doc.notes]
    return "\n".join(lines) + "\n"
