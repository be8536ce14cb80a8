"""The CSV files of a report, all through one writer that neutralises spreadsheet formulas.

``leaderboard.csv``: one row per model (rank order): for every column its mean, sd over seeds, the mean
half-width of one run's 95% CI, the number of runs with a value and the reason for a missing one; the
degenerate flag; the paired test against the top row. ``runs.csv``: one row per run. ``per_observation.csv``:
CE F1 per model and observation. ``significance.csv``: every paired comparison with its raw and
Holm-adjusted p-value.

:func:`csv_text` is the only CSV writer: a text cell beginning with ``=``, ``+``, ``-``, ``@`` (or a tab or
carriage return) is prefixed with ``'`` so that a spreadsheet shows it instead of evaluating it; numbers
are written with Python's shortest round-trip representation, missing values as empty cells.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

from rrgbench.report.board import Board
from rrgbench.report.records import labeler_of, seeds_of

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, int):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """CSV of ``rows`` under ``header`` (every cell through :func:`csv_value`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_value(h) for h in header])
    writer.writerows([csv_value(v) for v in row] for row in rows)
    return buffer.getvalue()


def _dicts(rows: Sequence[dict[str, Any]]) -> str:
    header = list(dict.fromkeys(key for row in rows for key in row))
    return csv_text(header, [[row.get(key) for key in header] for row in rows])


def summary_csv(board: Board) -> str:
    rows = []
    for rank, label in enumerate(board.rows, 1):
        runs, found = board.runs[label], board.diversity[label]
        row: dict[str, Any] = {"model": label, "recipe": board.models[label], "rank": rank, "runs": len(runs),
                               "seeds": seeds_of(runs), "ce_labeler": labeler_of(runs), "degenerate": found.degenerate,
                               "distinct_share": found.distinct_share,
                               "most_frequent_share": found.most_frequent_share}
        for column in board.columns:
            cell = board.cells[(label, column.key)]
            row.update({column.key: cell.mean, f"{column.key}_sd": cell.sd, f"{column.key}_ci95_half": cell.ci_half,
                        f"{column.key}_n": cell.n, f"{column.key}_note": cell.reason})
        for key in board.tested:
            test = board.tests.vs_best.get((label, key)) if board.tests else None
            row.update({f"{key}_vs_best_delta": test.delta if test else None,
                        f"{key}_vs_best_p_holm": test.p_holm if test else None,
                        f"{key}_vs_best_note": test.note if test else None})
        rows.append(row)
    return _dicts(rows)


def runs_csv(board: Board) -> str:
    from rrgbench.report.board import observe

    rows = []
    for label in board.rows:
        for record in board.runs[label]:
            row: dict[str, Any] = {"model": label, "recipe": record.model, "seed": record.seed,
                                   "run_id": record.run_id, "kind": record.kind, "profile": record.profile}
            row.update({c.key: observe(record, c)[0] for c in board.columns})
            if record.predictions is not None:
                row["most_frequent_share"] = record.predictions.most_frequent_share
            rows.append(row)
    return _dicts(rows)


def per_observation_csv(board: Board) -> str:
    rows = [[label, observation, *found] for label in board.rows
            for observation, found in board.per_observation[label].items()]
    return csv_text(["model", "observation", "f1_mean", "f1_sd", "support"], rows)


def significance_csv(board: Board) -> str:
    header = ["comparison", "a", "b", "metric", "delta", "ci95_low", "ci95_high", "p", "p_holm", "significant",
              "units", "paired_on", "note"]
    rows = []
    if board.tests is not None:
        tests = board.tests
        found = [("vs #1", label, tests.best, key, test) for (label, key), test in tests.vs_best.items()]
        found += [("ablation", variant, base, key, test) for (base, variant, key), test in tests.ablations.items()]
        for kind, a, b, key, test in found:
            low, high = test.ci95 if test.ci95 else (None, None)
            rows.append([kind, a, b, key, test.delta, low, high, test.p, test.p_holm, test.significant, test.units,
                         test.paired_on, test.note])
    return csv_text(header, rows)
