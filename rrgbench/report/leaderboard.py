"""Leaderboards built from run records (``results.json``) only.

For every dataset with records below ``RUNS``, ``OUT/<dataset>/`` receives:

``leaderboard.md``
    a quality table (one row per model; every metric with ↑/↓; the best value in bold; a column
    naming the labeler that produced the clinical-efficacy metrics), an efficiency table
    (parameters, training samples/s, latency per study at batch 1, throughput, peak memory, the
    memory's share of the forward pass and its overhead against the no-memory variant), an ablation
    table (each ``<base>-<variant>`` model against ``<base>``), and the environment the runs came from.
    Values are ``mean ± std`` over seeds when a row has several runs, and ``value ± half-width of the
    95% bootstrap CI`` when it has one. Unavailable values read ``n/a[^key]`` with a footnote giving
    the reason (never 0, never dropped).
``leaderboard.csv`` / ``runs.csv``
    the same numbers, machine-readable: one row per model (mean, error, error kind, count, note per
    column), and one row per run.
``leaderboard.html``
    one self-contained page (inline CSS, the plots embedded as base64 PNG).
``metrics.png``, ``quality_vs_latency.png``, ``retrieval_overhead.png``, ``ablations.png``
    metric bars with error bars; quality against latency with the Pareto front; the memory's share of
    the forward pass against the memory size N_m; the ablation deltas against the base model. A plot
    without data says so instead of being left out, so every report has the same files.
``records/<model>/<run>/results.json``
    the run records the report was built from, so ``rrgbench leaderboard --runs OUT/<dataset>/records``
    rebuilds every file above byte for byte without the runs folder (checkpoints and predictions stay
    with the runs). Records are read with the user's home folder written ``~`` (:func:`portable`), so
    no report names the machine it was built on.

Rows: runs of one model whose configurations differ only in the seed form one row. Runs of the same
model with different configurations (e.g. a memory-size sweep) get separate rows, labelled with the
overrides that tell them apart: ``mcsam (memory.size=1024)``. Ablation families are found from the
names alone: a row of model ``mcsam-no-sam`` is an ablation of ``mcsam`` when ``mcsam`` has a row too.

:func:`check_complete` verifies a written report (every expected model has a row, every metric and
efficiency column holds a value or an explained ``n/a``); CI and the suite runner use it.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import re
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rrgbench.io import atomic_write, write_text
from rrgbench.record import RunRecord
from rrgbench.record import load_records as read_records

PLOT_METRICS = ("bleu_1", "bleu_4", "meteor", "rouge_l", "cider", "ce_f1_micro", "ce_f1_macro", "radgraph_f1")
PLOTS = ("metrics.png", "quality_vs_latency.png", "retrieval_overhead.png", "ablations.png")
RECORDS_FOLDER = "records"
REPORT_FILES = ("leaderboard.md", "leaderboard.csv", "runs.csv", "leaderboard.html", *PLOTS)
Record = RunRecord


# -- columns ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """One table column: a metric of ``results.json`` or an efficiency figure."""

    key: str
    header: str
    higher_is_better: bool
    group: str  # "quality" or "efficiency"
    digits: int = 4
    getter: Callable[[Record], tuple[float | None, str | None]] | None = None

    @property
    def title(self) -> str:
        return f"{self.header} {'↑' if self.higher_is_better else '↓'}"


def _dig(record: Record, *path: str) -> Any:
    value: Any = record
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _efficiency_reason(record: Record) -> str:
    if record.efficiency.unavailable:
        return record.efficiency.unavailable
    return "not measured in this record (older schema or measurement switched off)"


def _efficiency_getter(path: tuple[str, ...], scale: float = 1.0, reason_path: tuple[str, ...] | None = None,
                       fallback: tuple[str, ...] | None = None) -> Callable[[Record], tuple[float | None, str | None]]:
    def get(record: Record) -> tuple[float | None, str | None]:
        eff = record.to_json()["efficiency"]
        value = _dig(eff, *path)
        if value is None and fallback is not None:
            value = _dig(eff, *fallback)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value) * scale, None
        reason = _dig(eff, *reason_path) if reason_path else None
        errors = [e for i in range(1, len(path)) if (e := _dig(eff, *path[:i], "error"))]
        return None, str(reason or (f"measurement failed: {errors[0]}" if errors else _efficiency_reason(record)))

    return get


def _peak_memory(record: Record) -> tuple[float | None, str | None]:
    value = record.efficiency.peak_memory_bytes
    if value is not None:
        return value / 2**20, None
    return None, _efficiency_reason(record)


EFFICIENCY_COLUMNS = (
    Column("params_m", "params (M)", False, "efficiency", 2,
           _efficiency_getter(("parameters", "total"), 1e-6)),
    Column("train_samples_per_s", "train samples/s", True, "efficiency", 1,
           _efficiency_getter(("train", "samples_per_second"))),
    Column("latency_ms", "latency b1 (ms)", False, "efficiency", 1,
           _efficiency_getter(("inference", "latency_batch1", "seconds", "median"), 1e3,
                              reason_path=("inference", "unavailable"))),
    Column("throughput", "throughput (studies/s)", True, "efficiency", 2,
           _efficiency_getter(("inference", "throughput", "studies_per_second"),
                              reason_path=("inference", "unavailable"))),
    Column("peak_memory_mib", "peak memory (MiB)", False, "efficiency", 0, _peak_memory),
    Column("memory_share_pct", "memory share of forward (%)", False, "efficiency", 1,
           _efficiency_getter(("retrieval", "share_of_forward"), 100.0, reason_path=("retrieval", "unavailable"))),
    Column("memory_overhead_pct", "decode overhead vs no memory (%)", False, "efficiency", 1,
           _efficiency_getter(("retrieval", "vs_no_memory", "decode_overhead"), 100.0,
                              reason_path=("retrieval", "vs_no_memory", "unavailable"))),
)
EFFICIENCY_KEYS = tuple(c.key for c in EFFICIENCY_COLUMNS)


# -- records and rows -------------------------------------------------------------------------------
def load_records(runs: Path) -> list[Record]:
    """Every run record below ``runs`` (home folder written ``~``); an unreadable one is an error naming it."""
    return [RunRecord.from_json(portable(record.to_json())) for record in read_records(runs).records]


def portable(value: Any, home: str | None = None) -> Any:
    """``value`` with the user's home folder written ``~`` in every string (paths in reasons, dataset folders),
    so published reports and kept records name no machine; applying it twice changes nothing."""
    home = str(Path.home()) if home is None else home
    if isinstance(value, dict):
        return {key: portable(item, home) for key, item in value.items()}
    if isinstance(value, list):
        return [portable(item, home) for item in value]
    if isinstance(value, str) and len(home) > 1:
        return re.sub(re.escape(home) + r"(?!\w)", "~", value)
    return value


def variant_key(record: Record) -> str:
    """Fingerprint of everything in the configuration but the seed: runs that differ only by seed share it."""
    config = {k: v for k, v in (record.config or {}).items() if k not in ("seed", "overrides", "sources")}
    sections = dict(config.get("sections") or {})
    sections.pop("efficiency", None)
    config["sections"] = sections
    text = json.dumps([record.model, record.profile, config], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def row_labels(records: Sequence[Record]) -> dict[str, str]:
    """variant key -> row label: the model name, plus what tells variants of one model apart."""
    by_model: dict[str, dict[str, Record]] = defaultdict(dict)
    for record in records:
        by_model[record.model].setdefault(variant_key(record), record)
    labels = {}
    for model, variants in by_model.items():
        if len(variants) == 1:
            labels.update({key: model for key in variants})
            continue
        overrides = {key: _overrides(r) for key, r in variants.items()}
        differing = sorted({k for o in overrides.values() for k in o
                            if len({str(x.get(k)) for x in overrides.values()}) > 1})
        parts = {key: [f"{k}={overrides[key][k]}" for k in differing if k in overrides[key]] for key in variants}
        for key, record in variants.items():
            if not parts[key] and _profiles_differ(variants):
                parts[key] = [f"profile={record.profile}"]
        plain = [key for key in variants if not parts[key]]
        for key in variants:
            if parts[key]:
                labels[key] = f"{model} ({', '.join(parts[key])})"
            else:  # the one variant without distinguishing overrides is the model's default configuration
                labels[key] = model if len(plain) == 1 else f"{model} (config {key[:6]})"
    return labels


def _overrides(record: Record) -> dict[str, Any]:
    return record.user_overrides


def _profiles_differ(variants: Mapping[str, Record]) -> bool:
    return len({r.profile for r in variants.values()}) > 1


def metric_columns(records: Sequence[Record]) -> list[Column]:
    """Quality columns: every metric key of the records, in the order the records list them."""
    keys: list[str] = []
    for record in records:
        keys.extend(k for k in record.metrics if k not in keys)
    columns = []
    for key in keys:
        higher = next((r.metrics[key].higher_is_better for r in records if key in r.metrics), True)
        columns.append(Column(key, key, bool(higher), "quality", 4))
    return columns


# -- aggregation --------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One row x column: the aggregate over the row's runs."""

    mean: float | None = None
    err: float | None = None  # the ± shown: std over seeds, or the CI half-width for one run
    low: float | None = None  # error-bar ends for plots
    high: float | None = None
    kind: str = ""  # "std", "ci95" or "" (no error available)
    n: int = 0  # runs with a value
    runs: int = 0
    reason: str | None = None  # why the value is unavailable (or partly so)


def _observe(record: Record, column: Column) -> tuple[float | None, tuple[float, float] | None, str | None]:
    """A record's value, CI and reason for one column."""
    if column.group == "efficiency":
        assert column.getter is not None
        value, reason = column.getter(record)
        return value, None, reason
    entry = record.metrics.get(column.key)
    if entry is None:
        return None, None, "not computed in this run (metric not registered at the time)"
    value = entry.value
    if value is None:
        return None, None, entry.unavailable or "not computed"
    ci = entry.ci95
    return float(value), (float(ci[0]), float(ci[1])) if ci and None not in ci else None, None


def aggregate(records: Sequence[Record], column: Column) -> Cell:
    """Mean ± std over seeds, or value ± CI half-width for a single run."""
    observed = [_observe(r, column) for r in records]
    values = [v for v, _, _ in observed if v is not None]
    reasons = sorted({r for v, _, r in observed if v is None and r})
    cell = Cell(runs=len(records), n=len(values))
    if not values:
        cell.reason = "; ".join(reasons) or "not computed"
        return cell
    if len(values) < len(records):
        cell.reason = f"{len(records) - len(values)} of {len(records)} runs without a value: " + "; ".join(reasons)
    cell.mean = sum(values) / len(values)
    if len(values) > 1:
        std = math.sqrt(sum((v - cell.mean) ** 2 for v in values) / (len(values) - 1))
        cell.err, cell.kind, cell.low, cell.high = std, "std", cell.mean - std, cell.mean + std
    else:
        ci = next((c for v, c, _ in observed if v is not None), None)
        if ci is not None:
            cell.err, cell.kind, cell.low, cell.high = (ci[1] - ci[0]) / 2, "ci95", ci[0], ci[1]
    return cell


@dataclass
class Board:
    """Everything one dataset's report shows, computed from its records."""

    dataset: str
    records: list[Record]
    rows: list[str] = field(default_factory=list)
    models: dict[str, str] = field(default_factory=dict)
    runs: dict[str, list[Record]] = field(default_factory=dict)
    quality: list[Column] = field(default_factory=list)
    efficiency: list[Column] = field(default_factory=list)
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)

    @property
    def columns(self) -> list[Column]:
        return [*self.quality, *self.efficiency]

    def best(self, column: Column) -> float | None:
        """The best displayed value of a column (rounded as shown, so visible ties are all bold)."""
        values = [round(c.mean, column.digits) for r in self.rows
                  if (c := self.cells[(r, column.key)]).mean is not None]
        if not values:
            return None
        return max(values) if column.higher_is_better else min(values)


def latest_per_seed(records: Sequence[Record]) -> list[Record]:
    """One record per configuration and seed: the most recently created (a rerun replaces the old run)."""
    latest: dict[tuple[str, Any], Record] = {}
    for record in records:
        key = (variant_key(record), record.seed)
        if key not in latest or record.created >= latest[key].created:
            latest[key] = record
    return list(latest.values())


def build_board(dataset: str, records: Sequence[Record]) -> Board:
    """Rows, columns and aggregated cells of one dataset (reruns of a seed count once: the latest)."""
    records = latest_per_seed(records)
    board = Board(dataset, list(records))
    labels = row_labels(records)
    for record in records:
        label = labels[variant_key(record)]
        board.runs.setdefault(label, []).append(record)
        board.models[label] = record.model
    board.rows = sorted(board.runs, key=lambda label: (board.models[label], label))
    board.quality, board.efficiency = metric_columns(records), list(EFFICIENCY_COLUMNS)
    for label in board.rows:
        for column in board.columns:
            board.cells[(label, column.key)] = aggregate(board.runs[label], column)
    return board


def labeler_of(records: Sequence[Record]) -> str:
    """Which labeler produced the clinical-efficacy metrics of these runs."""
    names = sorted({str(r.protocol.metric_groups["clinical"]["labeler"]) for r in records
                    if (r.protocol.metric_groups.get("clinical") or {}).get("labeler")})
    return ", ".join(names) if names else "n/a"


def seeds_of(records: Sequence[Record]) -> str:
    seeds = sorted({r.seed for r in records if r.seed is not None})
    return ",".join(str(s) for s in seeds) if seeds else "-"


# -- footnotes and formatting ---------------------------------------------------------------------------
class Footnotes:
    """Footnote labels per (column, reason): ``key`` for the first reason of a column, ``key-2`` ..."""

    def __init__(self) -> None:
        self.labels: dict[tuple[str, str], str] = {}
        self.count: dict[str, int] = defaultdict(int)

    def label(self, key: str, reason: str) -> str:
        if (key, reason) not in self.labels:
            self.count[key] += 1
            self.labels[(key, reason)] = key if self.count[key] == 1 else f"{key}-{self.count[key]}"
        return self.labels[(key, reason)]

    def items(self) -> list[tuple[str, str]]:
        return [(label, reason) for (_, reason), label in self.labels.items()]


def format_value(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}" if abs(value) >= 1000 else f"{value:.{digits}f}"


@dataclass
class CellText:
    value: str | None  # formatted mean, None for n/a
    err: str | None
    bold: bool
    note: str | None  # footnote label


def cell_text(board: Board, label: str, column: Column, notes: Footnotes) -> CellText:
    cell = board.cells[(label, column.key)]
    note = notes.label(column.key, cell.reason) if cell.reason else None
    if cell.mean is None:
        return CellText(None, None, False, note)
    best = board.best(column)
    err = format_value(cell.err, column.digits) if cell.err is not None else None
    return CellText(format_value(cell.mean, column.digits), err,
                    best is not None and round(cell.mean, column.digits) == best, note)


def markdown_cell(text: CellText) -> str:
    if text.value is None:
        return f"n/a[^{text.note}]"
    shown = f"**{text.value}**" if text.bold else text.value
    if text.err is not None:
        shown += f" ± {text.err}"
    return shown + (f"[^{text.note}]" if text.note else "")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|",
            *("| " + " | ".join(row) + " |" for row in rows)]


def quality_rows(board: Board, notes: Footnotes, render: Callable[[CellText], str]) -> list[list[str]]:
    return [[label, str(len(board.runs[label])), seeds_of(board.runs[label]), labeler_of(board.runs[label]),
             *(render(cell_text(board, label, c, notes)) for c in board.quality)] for label in board.rows]


def efficiency_rows(board: Board, notes: Footnotes, render: Callable[[CellText], str]) -> list[list[str]]:
    return [[label, *(render(cell_text(board, label, c, notes)) for c in board.efficiency)] for label in board.rows]


QUALITY_HEAD = ["model", "runs", "seeds", "CE labeler"]


# -- ablations ------------------------------------------------------------------------------------------
def ablation_families(board: Board) -> dict[str, list[str]]:
    """Base row -> variant rows, from model names: ``<base>-<variant>`` when ``<base>`` has a row."""
    plain = [label for label in board.rows if label == board.models[label]]
    families: dict[str, list[str]] = defaultdict(list)
    for label in plain:
        bases = [base for base in plain if label.startswith(base + "-")]
        if bases:
            families[max(bases, key=len)].append(label)
    return dict(families)


def ablation_metrics(board: Board) -> list[Column]:
    """Headline quality metrics with values, for ablation deltas."""
    chosen = [c for c in board.quality if c.key in PLOT_METRICS]
    return [c for c in chosen if any(board.cells[(r, c.key)].mean is not None for r in board.rows)]


def delta(board: Board, base: str, variant: str, column: Column) -> tuple[float | None, float | None]:
    """Variant minus base, and an approximate error (errors combined as if independent)."""
    a, b = board.cells[(variant, column.key)], board.cells[(base, column.key)]
    if a.mean is None or b.mean is None:
        return None, None
    err = math.sqrt((a.err or 0.0) ** 2 + (b.err or 0.0) ** 2) if (a.err is not None or b.err is not None) else None
    return a.mean - b.mean, err


def ablation_markdown(board: Board) -> list[str]:
    families, columns = ablation_families(board), ablation_metrics(board)
    if not families or not columns:
        return []
    lines = ["", "## Ablations", "",
             "Difference to the base model (variant − base); ± combines both rows' errors as if independent."]
    for base, variants in families.items():
        header = ["variant", *(f"Δ {c.key}" for c in columns)]
        rows = []
        for variant in variants:
            cells = []
            for column in columns:
                value, err = delta(board, base, variant, column)
                cells.append("n/a" if value is None else f"{value:+.4f}" + (f" ± {err:.4f}" if err else ""))
            rows.append([variant, *cells])
        lines += ["", f"Base: **{base}**", "", *_md_table(header, rows)]
    return lines


# -- environment ----------------------------------------------------------------------------------------
def environment_lines(records: Sequence[Record]) -> list[str]:
    devices = sorted({f"{r.environment.device} ({r.environment.device_name})" for r in records
                      if r.environment.device})
    threads = sorted({str(t) for r in records if (t := r.efficiency.device.get("torch_threads"))})
    commits = sorted({f"{c['commit'][:10]}{' (dirty)' if c.get('dirty') else ''}" for r in records
                      if isinstance(c := r.environment.git, Mapping) and c.get("commit")})
    profiles = sorted({str(r.profile) for r in records if r.profile})
    created = sorted(r.created for r in records if r.created)
    lines = ["", "## Environment", "", f"- runs: {len(records)}"
             + (f", created {created[0]} … {created[-1]}" if created else "")]
    lines.append(f"- devices: {', '.join(devices) or 'n/a'}" + (f"; torch threads: {', '.join(threads)}"
                                                                 if threads else ""))
    lines.append(f"- profiles: {', '.join(profiles) or 'n/a'}; git: {', '.join(commits) or 'n/a'}")
    return lines


# -- Markdown -----------------------------------------------------------------------------------------
LEGEND = ("Values: mean ± std over seeds when a row has several runs, value ± half-width of the 95% bootstrap CI "
          "when it has one. ↑ higher is better, ↓ lower is better; the best value of each column is in bold. "
          "`n/a` marks an unavailable value; its footnote gives the reason.")


def markdown(dataset: str, records: Sequence[Record], board: Board | None = None) -> str:
    """The Markdown report of one dataset."""
    board = board or build_board(dataset, records)
    notes = Footnotes()
    lines = [f"# Leaderboard: {dataset}", "", LEGEND, "", "## Quality", ""]
    lines += _md_table([*QUALITY_HEAD, *(c.title for c in board.quality)], quality_rows(board, notes, markdown_cell))
    lines += ["", "## Efficiency", "",
              "Latency: median seconds to generate one report at batch 1 with the run's decoding settings; "
              "throughput: studies/s on a test batch at the evaluation batch size; memory share: the memory "
              "modules' share of a teacher-forced forward pass; decode overhead: fixed-length decoding with "
              "memory against the no-memory counterpart recorded in each run (`efficiency.retrieval.vs_no_memory`).",
              ""]
    lines += _md_table(["model", *(c.title for c in board.efficiency)], efficiency_rows(board, notes, markdown_cell))
    lines += ablation_markdown(board)
    lines += environment_lines(board.records)
    if notes.items():
        lines.append("")
        lines.extend(f"[^{label}]: {_one_line(reason)}" for label, reason in notes.items())
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# -- CSV --------------------------------------------------------------------------------------------------
def summary_frame(board: Board) -> Any:
    """One row per model: mean, error, error kind, count and note of every column (pandas DataFrame)."""
    import pandas as pd

    rows = []
    for label in board.rows:
        row: dict[str, Any] = {"model": label, "recipe": board.models[label], "runs": len(board.runs[label]),
                               "seeds": seeds_of(board.runs[label]), "ce_labeler": labeler_of(board.runs[label])}
        for column in board.columns:
            cell = board.cells[(label, column.key)]
            row.update({column.key: cell.mean, f"{column.key}_err": cell.err, f"{column.key}_err_kind": cell.kind,
                        f"{column.key}_n": cell.n, f"{column.key}_note": cell.reason})
        rows.append(row)
    return pd.DataFrame(rows)


def runs_frame(board: Board) -> Any:
    """One row per run: every column's value (empty when unavailable)."""
    import pandas as pd

    rows = []
    for label in board.rows:
        for record in board.runs[label]:
            row: dict[str, Any] = {"model": label, "recipe": record.model, "seed": record.seed,
                                   "run_id": record.run_id, "profile": record.profile}
            row.update({c.key: _observe(record, c)[0] for c in board.columns})
            rows.append(row)
    return pd.DataFrame(rows)


def _write_csv(path: Path, frame: Any) -> None:
    write_text(path, frame.to_csv(index=False))


# -- plots ------------------------------------------------------------------------------------------------
def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed) with the seaborn theme."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt


def _figure(width: float, height: float) -> tuple[Any, Any]:
    return _pyplot().subplots(figsize=(width, height))


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _empty_plot(title: str, message: str) -> bytes:
    fig, ax = _figure(6, 2.5)
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=11, color="0.35")
    return _png(fig)


def _palette(n: int) -> list[Any]:
    import seaborn as sns

    return list(sns.color_palette("tab10" if n <= 10 else "husl", n))


def plot_metrics(board: Board) -> bytes:
    """One panel per headline metric: a bar per model with its error bar (std or 95% CI)."""
    columns = ablation_metrics(board)
    if not columns:
        return _empty_plot("Metrics", "no metric has a value in these runs")
    import seaborn as sns

    plt = _pyplot()
    n_cols = min(4, len(columns))
    n_rows = math.ceil(len(columns) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols, 0.32 * len(board.rows) * n_rows + 1.6 * n_rows),
                             squeeze=False)
    colors = dict(zip(board.rows, _palette(len(board.rows)), strict=True))
    for index, (ax, column) in enumerate(zip(axes.flat, columns, strict=False)):
        cells = [board.cells[(r, column.key)] for r in board.rows]
        y = list(range(len(board.rows)))
        means = [c.mean if c.mean is not None else 0.0 for c in cells]
        lower = [max(c.mean - c.low, 0.0) if c.low is not None and c.mean is not None else 0.0 for c in cells]
        upper = [max(c.high - c.mean, 0.0) if c.high is not None and c.mean is not None else 0.0 for c in cells]
        ax.barh(y, means, xerr=[lower, upper], color=[colors[r] for r in board.rows], capsize=2,
                error_kw={"elinewidth": 0.8})
        for i, cell in enumerate(cells):
            if cell.mean is None:
                ax.text(0, i, " n/a", va="center", fontsize=8, color="0.4")
        ax.set_yticks(y, board.rows if index % n_cols == 0 else [""] * len(y), fontsize=8)
        ax.invert_yaxis()
        ax.set_title(column.title, fontsize=10)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    sns.despine(fig=fig, left=True)
    fig.suptitle(f"{board.dataset}: metrics (error bars: std over seeds or 95% bootstrap CI)", fontsize=11)
    return _png(fig)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both (lower x, higher y), by increasing x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best_y = [], -math.inf
    for i in order:
        if points[i][1] > best_y:
            front.append(i)
            best_y = points[i][1]
    return front


def headline_metrics(board: Board) -> list[Column]:
    """The quality metrics plotted against latency: BLEU-4 and CE micro-F1 when they have values."""
    with_values = ablation_metrics(board)
    chosen = [c for c in with_values if c.key in ("bleu_4", "ce_f1_micro")]
    return chosen or with_values[:1]


def plot_quality_latency(board: Board) -> bytes:
    """Headline quality against latency per study at batch 1, with the Pareto front, one panel per metric."""
    metrics = headline_metrics(board)
    panels = []
    for metric in metrics:
        points = [(board.cells[(r, "latency_ms")].mean, board.cells[(r, metric.key)].mean, r) for r in board.rows]
        points = [p for p in points if p[0] is not None and p[1] is not None]
        if points:
            panels.append((metric, points))
    if not panels:
        return _empty_plot("Quality vs latency", "no run has both a quality metric and a latency measurement")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.8), squeeze=False)
    colors = dict(zip(board.rows, _palette(len(board.rows)), strict=True))
    for ax, (metric, points) in zip(axes[0], panels, strict=True):
        for i, (x, y, label) in enumerate(sorted(points)):
            ax.scatter([x], [y], color=colors[label], s=40, zorder=3)
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4 if i % 2 else -10), fontsize=7)
        xy = [(p[0], p[1] if metric.higher_is_better else -p[1]) for p in points]
        front = pareto_front(xy)
        front_x, front_y = [points[i][0] for i in front], [points[i][1] for i in front]
        ax.step(front_x, front_y, where="post", color="0.3", linestyle="--", linewidth=1, zorder=2)
        ax.scatter(front_x, front_y, s=130, facecolors="none", edgecolors="0.2", label="Pareto front", zorder=4)
        if max(p[0] for p in points) > 20 * min(p[0] for p in points):
            ax.set_xscale("log")
        ax.set_xlabel("latency per study at batch 1 (ms) ↓")
        ax.set_ylabel(metric.title)
        ax.set_title(f"{board.dataset}: {metric.key} vs latency")
        ax.legend(loc="best", fontsize=8)
    return _png(fig)


def plot_retrieval(board: Board) -> bytes:
    """The memory's share of the forward pass (and of generation) against the memory size, per run."""
    points = []
    for label in board.rows:
        for record in board.runs[label]:
            retrieval = record.efficiency.retrieval
            size = retrieval.memory_size if retrieval else None
            forward = retrieval.share_of_forward if retrieval else None
            generate = retrieval.share_of_generate if retrieval else None
            if isinstance(size, int) and isinstance(forward, (int, float)):
                points.append((label, size, 100 * forward, 100 * generate if generate is not None else None))
    if not points:
        return _empty_plot("Retrieval overhead vs memory size", "no run with a memory component and a memory size")
    fig, ax = _figure(7.5, 4.5)
    names = sorted({p[0] for p in points})
    colors = dict(zip(names, _palette(len(names)), strict=True))
    for name in names:
        mine = sorted((p for p in points if p[0] == name), key=lambda p: p[1])
        ax.plot([p[1] for p in mine], [p[2] for p in mine], color=colors[name], marker="o", label=name,
                linewidth=0.8 if len({p[1] for p in mine}) > 1 else 0)
        with_generate = [p for p in mine if p[3] is not None]
        ax.scatter([p[1] for p in with_generate], [p[3] for p in with_generate], color=colors[name], marker="x")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("memory size N_m (slots)")
    ax.set_ylabel("memory share of time (%) ↓")
    ax.set_title(f"{board.dataset}: retrieval overhead (o: forward pass, x: generation at batch 1)")
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def plot_ablations(board: Board) -> bytes:
    """Per ablation family: each variant's delta to the base on the headline metrics."""
    families, columns = ablation_families(board), ablation_metrics(board)
    if not families or not columns:
        return _empty_plot("Ablations", "no ablation family (<base>-<variant> next to <base>) in these runs")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(families), figsize=(6.5 * len(families), 0.5 * len(columns) * 2 + 1.5),
                             squeeze=False)
    for ax, (base, variants) in zip(axes[0], families.items(), strict=True):
        height = 0.8 / max(len(variants), 1)
        colors = _palette(len(variants))
        for j, variant in enumerate(variants):
            ys, xs, errs = [], [], []
            for i, column in enumerate(columns):
                value, err = delta(board, base, variant, column)
                ys.append(i + j * height - 0.4 + height / 2)
                xs.append(value if value is not None else 0.0)
                errs.append(err or 0.0)
            ax.barh(ys, xs, height=height, xerr=errs, color=colors[j], label=variant, capsize=2,
                    error_kw={"elinewidth": 0.7})
        ax.axvline(0, color="0.2", linewidth=0.8)
        ax.set_yticks(range(len(columns)), [c.key for c in columns], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(f"Δ vs {base} (variant − base)")
        ax.set_title(f"{board.dataset}: ablations of {base}", fontsize=10)
        ax.legend(fontsize=7, loc="best")
    return _png(fig)


def plots(board: Board) -> dict[str, bytes]:
    """Every plot of the report, as PNG bytes, by file name."""
    return {"metrics.png": plot_metrics(board), "quality_vs_latency.png": plot_quality_latency(board),
            "retrieval_overhead.png": plot_retrieval(board), "ablations.png": plot_ablations(board)}


# -- HTML -------------------------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1400px;color:#222;
padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.82rem;margin:.5rem 0;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:.25rem .45rem;text-align:right;white-space:nowrap}
th{background:#f3f4f6;position:sticky;top:0}td:first-child,th:first-child{text-align:left}
tr:nth-child(even){background:#fafafa}.na{color:#999}.err{color:#777;font-size:.75rem}
.legend,.notes{font-size:.85rem;color:#444}img{max-width:100%;border:1px solid #eee;margin:.5rem 0}
"""


def html_cell(text: CellText) -> str:
    note = (f'<sup><a href="#fn-{html.escape(text.note)}">{html.escape(text.note)}</a></sup>'
            if text.note else "")
    if text.value is None:
        return f'<span class="na">n/a</span>{note}'
    value = f"<b>{text.value}</b>" if text.bold else text.value
    err = f' <span class="err">± {text.err}</span>' if text.err is not None else ""
    return value + err + note


def _html_table(header: Sequence[str], rows: Iterable[Sequence[str]], escape_cells: int = 1) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c) if i < escape_cells else c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_page(board: Board, images: Mapping[str, bytes]) -> str:
    """A self-contained page: tables, footnotes, environment and the plots inlined."""
    notes = Footnotes()
    quality = _html_table([*QUALITY_HEAD, *(c.title for c in board.quality)],
                          quality_rows(board, notes, html_cell), escape_cells=len(QUALITY_HEAD))
    efficiency = _html_table(["model", *(c.title for c in board.efficiency)], efficiency_rows(board, notes, html_cell))
    parts = [f"<h1>Leaderboard: {html.escape(board.dataset)}</h1>",
             f'<p class="legend">{html.escape(LEGEND)}</p>', "<h2>Quality</h2>", quality,
             "<h2>Efficiency</h2>", efficiency]
    ablations = ablation_markdown(board)
    if ablations:
        parts.append("<h2>Ablations</h2>" + _markdown_tables_to_html(ablations))
    parts.append("<h2>Plots</h2>")
    for name, data in images.items():
        encoded = base64.b64encode(data).decode("ascii")
        parts.append(f'<img alt="{html.escape(name)}" src="data:image/png;base64,{encoded}">')
    env = [line[2:] for line in environment_lines(board.records) if line.startswith("- ")]
    parts.append("<h2>Environment</h2><ul>" + "".join(f"<li>{html.escape(e)}</li>" for e in env) + "</ul>")
    if notes.items():
        parts.append('<h2>Notes</h2><ol class="notes">' + "".join(
            f'<li id="fn-{html.escape(label)}"><b>{html.escape(label)}</b>: {html.escape(_one_line(reason))}</li>'
            for label, reason in notes.items()) + "</ol>")
    title = html.escape(f"rrgbench leaderboard: {board.dataset}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def _markdown_tables_to_html(lines: Sequence[str]) -> str:
    """The ablation section's Markdown (paragraphs and pipe tables) as HTML."""
    out, table = [], []
    for line in [*lines, ""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                table.append([c.strip() for c in line.strip("|").split("|")])
            continue
        if table:
            out.append(_html_table(table[0], table[1:]))
            table = []
        if line and not line.startswith("#"):
            out.append(f"<p>{html.escape(line).replace('**', '')}</p>")
    return "".join(out)


# -- writing ------------------------------------------------------------------------------------------------
def write_report(dataset: str, records: Sequence[Record], folder: Path, with_plots: bool = True) -> list[Path]:
    """Every file of one dataset's report under ``folder``; returns their paths (Markdown first)."""
    board = build_board(dataset, records)
    folder = Path(folder)
    written = [folder / "leaderboard.md"]
    write_text(written[0], markdown(dataset, records, board))
    for name, frame in (("leaderboard.csv", summary_frame(board)), ("runs.csv", runs_frame(board))):
        _write_csv(folder / name, frame)
        written.append(folder / name)
    images = plots(board) if with_plots else {}
    for name, data in images.items():
        atomic_write(folder / name, lambda handle, data=data: handle.write(data), binary=True)
        written.append(folder / name)
    write_text(folder / "leaderboard.html", html_page(board, images))
    written.append(folder / "leaderboard.html")
    write_records(records, folder / RECORDS_FOLDER)
    return written


def write_records(records: Sequence[Record], folder: Path) -> None:
    """Replace ``folder`` with one ``<model>/<run>/results.json`` per record (records are already in memory,
    so ``folder`` may be the very folder they were read from)."""
    shutil.rmtree(folder, ignore_errors=True)
    taken: set[Path] = set()
    for record in records:
        base = folder / _safe_name(record.model) / _safe_name(record.run_id or "run")
        path, n = base, 1
        while path in taken:  # two records with one run id (hand-made or copied records)
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        taken.add(path)
        write_text(path / "results.json", json.dumps(record.to_json(), indent=1) + "\n")


def _safe_name(text: str) -> str:
    return re.sub(r"[^\w.-]", "_", text)


def records_by_dataset(runs: Path) -> dict[str, list[Record]]:
    by_dataset: dict[str, list[Record]] = defaultdict(list)
    for record in load_records(runs):
        by_dataset[record.dataset].append(record)
    return dict(sorted(by_dataset.items()))


def build_reports(runs: Path, out: Path, with_plots: bool = True) -> dict[str, list[Path]]:
    """Every report file for every dataset with run records under ``runs``, by dataset."""
    return {dataset: write_report(dataset, records, Path(out) / dataset, with_plots)
            for dataset, records in records_by_dataset(runs).items()}


def build_leaderboards(runs: Path, out: Path, with_plots: bool = True) -> list[Path]:
    """Write every dataset's report under ``OUT/<dataset>/``; returns the ``leaderboard.md`` paths."""
    return [paths[0] for paths in build_reports(runs, out, with_plots).values()]


# -- completeness check --------------------------------------------------------------------------------------
_NUMBER = re.compile(r"^\*{0,2}-?[\d,]+(\.\d+)?\*{0,2}( ± [\d,]+(\.\d+)?)?(\[\^[\w.-]+\])?$")
_NA = re.compile(r"^n/a\[\^([\w.-]+)\]$")


def parse_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Header and rows of every pipe table in a Markdown text."""
    tables, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif current:
            rows = [r for r in current[1:] if not all(set(c) <= {"-", ":"} for c in r)]
            tables.append((current[0], rows))
            current = []
    return tables


def check_complete(out: Path, expected: Mapping[str, Sequence[str]], metrics: Sequence[str] = ()) -> list[str]:
    """Problems with the reports under ``out`` (empty when complete).

    ``expected`` maps each dataset to the models that must have a row (``model`` or ``model (...)``);
    ``metrics`` lists metric keys that must have a column. Every cell of the quality and efficiency
    tables must hold a number or ``n/a`` with a defined footnote, and every report file must exist.
    """
    problems = []
    for dataset, models in expected.items():
        folder = Path(out) / dataset
        missing = [name for name in REPORT_FILES if not (folder / name).is_file()]
        problems += [f"{dataset}: {name} is missing" for name in missing]
        if "leaderboard.md" in missing:
            continue
        text = (folder / "leaderboard.md").read_text(encoding="utf-8")
        tables = [t for t in parse_tables(text) if t[0] and t[0][0] == "model"]
        if len(tables) < 2:
            problems.append(f"{dataset}: leaderboard.md lacks the quality and efficiency tables")
            continue
        defined = set(re.findall(r"^\[\^([\w.-]+)\]:", text, flags=re.MULTILINE))
        for name, (header, rows) in zip(("quality", "efficiency"), tables[:2], strict=True):
            problems += _check_table(dataset, name, header, rows, models, defined)
        columns = {h.rsplit(" ", 1)[0] for h in tables[0][0]}
        problems += [f"{dataset}: quality table has no column for metric '{m}'" for m in metrics if m not in columns]
        eff_columns = {h.rsplit(" ", 1)[0] for h in tables[1][0]}
        problems += [f"{dataset}: efficiency table has no column '{c.header}'" for c in EFFICIENCY_COLUMNS
                     if c.header not in eff_columns]
    return problems


def _check_table(dataset: str, name: str, header: list[str], rows: list[list[str]], models: Sequence[str],
                 defined: set[str]) -> list[str]:
    problems = []
    labels = [row[0] for row in rows]
    for model in models:
        if not any(label == model or label.startswith(model + " (") for label in labels):
            problems.append(f"{dataset}: {name} table has no row for model '{model}'")
    first_value = len(QUALITY_HEAD) if name == "quality" else 1
    for row in rows:
        if len(row) != len(header):
            problems.append(f"{dataset}: {name} row '{row[0]}' has {len(row)} cells for {len(header)} columns")
            continue
        for column, cell in zip(header[first_value:], row[first_value:], strict=True):
            na = _NA.match(cell)
            if na and na.group(1) not in defined:
                problems.append(f"{dataset}: {name} '{row[0]}' / '{column}': footnote [^{na.group(1)}] undefined")
            elif not na and not _NUMBER.match(cell):
                problems.append(f"{dataset}: {name} '{row[0]}' / '{column}': '{cell}' is neither a value nor n/a")
    return problems
