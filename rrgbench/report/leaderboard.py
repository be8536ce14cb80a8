"""Leaderboards built from run records (``results.json``) only: the public entry points.

``rrgbench leaderboard --runs RUNS --out OUT`` writes, for every dataset with records below ``RUNS``,
``OUT/<dataset>/``: ``leaderboard.md`` and a self-contained ``leaderboard.html`` (ranking by the headline
metric with sd over seeds, single-run CI and paired tests against the top row; language, clinical and cost
sections; report diversity with the degenerate-model flag; CE F1 per observation; ablations against their
base; learning curves; how significance was tested; environment; footnotes for every n/a), CSV files,
plots, and the records themselves (so the report rebuilds byte for byte from ``OUT/<dataset>/records``).

The work is split by concern: :mod:`~rrgbench.report.records` (reading, name checks, rows),
:mod:`~rrgbench.report.board` (cells, sections, flags, curves), :mod:`~rrgbench.report.significance`
(paired tests, Holm), :mod:`~rrgbench.report.tables` (the document), :mod:`~rrgbench.report.markdown`,
:mod:`~rrgbench.report.html`, :mod:`~rrgbench.report.csvfiles`, :mod:`~rrgbench.report.plots`,
:mod:`~rrgbench.report.writing` (files, records folder) and :mod:`~rrgbench.report.check` (completeness).
"""

from __future__ import annotations

from rrgbench.report.board import EFFICIENCY_KEYS, Board, ablation_families, build_board
from rrgbench.report.check import check_complete, parse_tables
from rrgbench.report.plots import PLOTS, pareto_front
from rrgbench.report.records import load_records, portable, records_by_dataset
from rrgbench.report.writing import REPORT_FILES, build_leaderboards, build_reports, report_files, write_report

__all__ = ["EFFICIENCY_KEYS", "PLOTS", "REPORT_FILES", "Board", "ablation_families", "build_board",
           "build_leaderboards", "build_reports", "check_complete", "load_records", "pareto_front",
           "parse_tables", "portable", "records_by_dataset", "report_files", "write_report"]
