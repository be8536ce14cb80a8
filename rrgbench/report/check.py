"""Checking a written report: every expected model has a row, every metric a column or an explained absence.

CI and the suite runner use :func:`check_complete` on ``OUT/<dataset>/leaderboard.md``: every report file
must exist; the ranking must have a row for every expected model (``model`` or ``model (...)``); every
expected metric key must be a column of the language, clinical or other-metrics table, or be listed in the
line that names the columns n/a for every model; the cost table must hold every efficiency figure the
same way; every cell of those tables must be a number or ``n/a`` with a defined footnote.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from rrgbench.report.board import EFFICIENCY_COLUMNS
from rrgbench.report.tables import HIDDEN_PREFIX
from rrgbench.report.writing import REPORT_FILES

_NUMBER = re.compile(r"^(\*\*)?-?[\d,]+(\.\d+)?( ± [\d,]+(\.\d+)?)?(\*\*)?(\[\^[\w.-]+\])?$")
_NA = re.compile(r"^n/a\[\^([\w.-]+)\]$")
METRIC_SECTIONS = ("Language", "Clinical", "Other metrics")
Parsed = tuple[list[str], list[list[str]]]


def split_row(line: str) -> list[str]:
    """The cells of one pipe-table line (``\\|`` is a pipe inside a cell)."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", inner)]


def parse_tables(text: str) -> list[Parsed]:
    """Header and rows of every pipe table in a Markdown text."""
    tables, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append(split_row(line))
        elif current:
            rows = [r for r in current[1:] if not all(set(c) <= {"-", ":"} for c in r)]
            tables.append((current[0], rows))
            current = []
    return tables


def sections(text: str) -> dict[str, str]:
    """``## Title`` -> the text of that section."""
    found, title, lines = {}, "", []
    for line in text.splitlines():
        if line.startswith("## "):
            found[title] = "\n".join(lines)
            title, lines = line[3:].strip(), []
        else:
            lines.append(line)
    found[title] = "\n".join(lines)
    return found


def hidden_keys(text: str) -> set[str]:
    """Keys named in the 'n/a for every model' lines."""
    return {key for line in text.splitlines() if line.startswith(HIDDEN_PREFIX)
            for key in re.findall(r"`([^`]+)`", line)}


def _metric_header(header: str) -> str | None:
    return header.rsplit(" ", 1)[0] if header.endswith(("↑", "↓")) else None


def check_complete(out: Path, expected: Mapping[str, Sequence[str]], metrics: Sequence[str] = ()) -> list[str]:
    """Problems with the reports under ``out`` (empty when complete); ``expected``: dataset -> models that must
    have a row; ``metrics``: keys that must be a column (or be named as n/a for every model)."""
    problems = []
    for dataset, models in expected.items():
        folder = Path(out) / dataset
        missing = [name for name in REPORT_FILES if not (folder / name).is_file()]
        problems += [f"{dataset}: {name} is missing" for name in missing]
        if "leaderboard.md" not in missing:
            problems += _check_text(dataset, (folder / "leaderboard.md").read_text(encoding="utf-8"), models, metrics)
    return problems


def _check_text(dataset: str, text: str, models: Sequence[str], metrics: Sequence[str]) -> list[str]:
    found = sections(text)
    defined = set(re.findall(r"^\[\^([\w.-]+)\]:", text, flags=re.MULTILINE))
    ranking = parse_tables(found.get("Ranking", ""))
    if not ranking:
        return [f"{dataset}: leaderboard.md has no ranking table"]
    problems = _rows(dataset, "ranking", ranking[0], models)
    shown, hidden = set(), hidden_keys(text)
    for name in (*METRIC_SECTIONS, "Cost"):
        for table in parse_tables(found.get(name, "")):
            problems += _rows(dataset, name.lower(), table, models) + _cells(dataset, name.lower(), table, defined)
            shown |= {key for h in table[0] if (key := _metric_header(h))}
    problems += [f"{dataset}: no column for metric '{m}'" for m in metrics if m not in shown and m not in hidden]
    problems += [f"{dataset}: cost table has no column '{c.header}'" for c in EFFICIENCY_COLUMNS
                 if c.header not in shown and c.key not in hidden]
    return problems


def _rows(dataset: str, name: str, table: Parsed, models: Sequence[str]) -> list[str]:
    labels = [row[0] for row in table[1]]
    return [f"{dataset}: {name} table has no row for model '{model}'" for model in models
            if not any(label == model or label.startswith(model + " (") for label in labels)]


def _cells(dataset: str, name: str, table: Parsed, defined: set[str]) -> list[str]:
    header, rows = table
    problems = []
    for row in rows:
        if len(row) != len(header):
            problems.append(f"{dataset}: {name} row '{row[0]}' has {len(row)} cells for {len(header)} columns")
            continue
        for column, cell in zip(header, row, strict=True):
            if _metric_header(column) is None:
                continue
            na = _NA.match(cell)
            if na and na.group(1) not in defined:
                problems.append(f"{dataset}: {name} '{row[0]}' / '{column}': footnote [^{na.group(1)}] undefined")
            elif not na and not _NUMBER.match(cell):
                problems.append(f"{dataset}: {name} '{row[0]}' / '{column}': '{cell}' is neither a value nor n/a")
    return problems
