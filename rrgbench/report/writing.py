"""Writing a dataset's report folder: every file computed first, then written; the records folder swapped last.

``OUT/<dataset>/`` receives ``leaderboard.md``, ``leaderboard.html``, the CSV files
(:mod:`rrgbench.report.csvfiles`), the plots (:mod:`rrgbench.report.plots`) and
``records/<model>/<run>/results.json``: the records the report was built from, so ``rrgbench leaderboard
--runs OUT/<dataset>/records`` rebuilds every file byte for byte without the runs folder.

Nothing is written before everything was computed (a bad record, a failing plot or test leaves the old
report untouched). Each file is replaced atomically; the records folder is written next to the old one and
swapped in by renames only after every other file was written, so the folder the records were read from
is never deleted before its replacement exists. Dataset, model and run names were checked when the
records were read (:func:`rrgbench.report.records.check_names`): nothing is written outside ``OUT``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rrgbench.io import atomic_write
from rrgbench.record import RESULTS_FILE, RunRecord, write_record
from rrgbench.report import csvfiles
from rrgbench.report.board import build_board, record_order
from rrgbench.report.html import page
from rrgbench.report.markdown import markdown
from rrgbench.report.plots import PLOTS, plots, with_data
from rrgbench.report.records import records_by_dataset
from rrgbench.report.tables import document
from rrgbench.run.layout import safe_name

RECORDS_FOLDER = "records"
CSV_FILES = ("leaderboard.csv", "runs.csv", "per_observation.csv", "significance.csv")
REPORT_FILES = ("leaderboard.md", "leaderboard.html", *CSV_FILES, *PLOTS)


def report_files(dataset: str, records: Sequence[RunRecord], *, with_plots: bool = True, sort: str | None = None,
                 registry: Any = None) -> dict[str, bytes]:
    """Every file of one dataset's report (name -> content), computed in memory."""
    board = build_board(dataset, records, sort=sort, registry=registry)
    images = plots(board) if with_plots else {}
    doc = document(board, with_data(images))
    texts = {"leaderboard.md": markdown(doc), "leaderboard.html": page(doc, images),
             "leaderboard.csv": csvfiles.summary_csv(board), "runs.csv": csvfiles.runs_csv(board),
             "per_observation.csv": csvfiles.per_observation_csv(board),
             "significance.csv": csvfiles.significance_csv(board)}
    return {**{name: text.encode("utf-8") for name, text in texts.items()}, **images}


def write_report(dataset: str, records: Sequence[RunRecord], folder: Path, *, with_plots: bool = True,
                 sort: str | None = None, registry: Any = None) -> list[Path]:
    """Every file of one dataset's report under ``folder``; returns their paths (Markdown first)."""
    files = report_files(dataset, records, with_plots=with_plots, sort=sort, registry=registry)
    return write_files(Path(folder), files, records)


def write_files(folder: Path, files: dict[str, bytes], records: Sequence[RunRecord]) -> list[Path]:
    """Write computed report files (each atomically), then swap in the records folder."""
    written = []
    for name, data in files.items():
        atomic_write(folder / name, lambda handle, data=data: handle.write(data), binary=True)
        written.append(folder / name)
    replace_records(records, folder / RECORDS_FOLDER)
    return written


def replace_records(records: Sequence[RunRecord], folder: Path) -> None:
    """Replace ``folder`` with one ``<model>/<run>/results.json`` per record: written to a sibling first, then
    swapped in by renames (``folder`` may be the very folder the records were read from)."""
    folder = Path(folder)
    fresh = folder.with_name(f".{folder.name}.new-{os.getpid()}")
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    for leftover in (fresh, old):
        shutil.rmtree(leftover, ignore_errors=True)
    taken: set[Path] = set()
    for record in sorted(records, key=record_order):
        base = fresh / safe_name(record.model, "model") / safe_name(record.run_id, "run id")
        path, n = base, 1
        while path in taken:  # two records with one run id (hand-made or copied records)
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        taken.add(path)
        write_record(path / RESULTS_FILE, record, indent=1)
    fresh.mkdir(parents=True, exist_ok=True)
    if folder.exists():
        folder.rename(old)
    fresh.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def build_reports(runs: Path, out: Path, *, with_plots: bool = True, sort: str | None = None,
                  registry: Any = None) -> dict[str, list[Path]]:
    """Every report file for every dataset with run records under ``runs``, by dataset.

    Every record is read (and checked) and every report computed before the first file is written."""
    found = records_by_dataset(runs)
    computed = {dataset: report_files(dataset, records, with_plots=with_plots, sort=sort, registry=registry)
                for dataset, records in found.items()}
    return {dataset: write_files(Path(out) / safe_name(dataset, "dataset"), files, found[dataset])
            for dataset, files in computed.items()}


def build_leaderboards(runs: Path, out: Path, *, with_plots: bool = True) -> list[Path]:
    """Write every dataset's report under ``OUT/<dataset>/``; returns the ``leaderboard.md`` paths."""
    return [paths[0] for paths in build_reports(runs, out, with_plots=with_plots).values()]
