"""What one dataset's leaderboard shows, computed from its records: rows, sections, cells, flags, curves.

Rows are sorted by the dataset's headline metric (the dataset's registered selection metric: CE micro-F1
on ``synthetic``, BLEU-4 on the real datasets; ``--sort KEY`` picks another column), unavailable values
last. Columns fall into sections: a metric's section is the one its key declares where it is registered
(:class:`rrgbench.metrics.base.MetricKey`); a key no longer registered falls back to its recorded group
(``nlg`` -> language, ``clinical`` and ``radgraph`` -> clinical, any other -> other); efficiency figures
form the cost section. A column that is n/a for every row is not shown; the section
lists it once with the reason (:attr:`Board.hidden`).

Every cell is one meaning: the mean over the row's runs, the sample standard deviation over seeds
(``sd``; None for one run) and, separately, the half-width of a single run's 95% bootstrap CI (mean over
the row's runs), so a reader never has to guess what a ``±`` stands for.

A model is flagged *degenerate* when the most frequent of its test reports accounts for at least
:data:`DEGENERATE_SHARE` of the studies (mean over its runs; from ``record.predictions``): it writes
(nearly) the same report for every study, so its clinical scores say nothing about reading images.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rrgbench.errors import ConfigError, did_you_mean
from rrgbench.record import RunRecord, dig
from rrgbench.report.records import labelers, latest_per_seed, row_labels, variant_key

SECTION_OF_GROUP = {"nlg": "language", "clinical": "clinical", "radgraph": "clinical"}  # keys no longer registered
HEADLINE_METRICS = ("ce_f1_micro", "bleu_4")  # the metrics tested for significance (the sort key first)
CURVE_METRICS = ("ce_f1_micro", "bleu_4")
DEGENERATE_SHARE = 0.5
"""Most-frequent-report share at or above which a model is flagged degenerate: with half of the studies
given one identical report, the model does not describe the image it reads for most studies."""

Getter = Callable[[RunRecord], tuple[float | None, str | None]]


# -- columns ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """One table column: a metric of the records or an efficiency figure."""

    key: str
    header: str
    higher_is_better: bool
    section: str  # language, clinical, other or cost
    digits: int = 4
    getter: Getter | None = None  # efficiency columns; metrics read record.metrics[key]

    @property
    def title(self) -> str:
        return f"{self.header} {'↑' if self.higher_is_better else '↓'}"


def _efficiency_reason(record: RunRecord) -> str:
    if record.efficiency.unavailable:
        return record.efficiency.unavailable
    return "not measured in this record (older schema or measurement switched off)"


def _efficiency_getter(path: tuple[str, ...], scale: float = 1.0,
                       reason_path: tuple[str, ...] | None = None) -> Getter:
    def get(record: RunRecord) -> tuple[float | None, str | None]:
        eff = dataclasses.asdict(record.efficiency)
        value = dig(eff, *path)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value) * scale, None
        reason = dig(eff, *reason_path) if reason_path else None
        errors = [e for i in range(1, len(path)) if (e := dig(eff, *path[:i], "error"))]
        return None, str(reason or (f"measurement failed: {errors[0]}" if errors else _efficiency_reason(record)))

    return get


def _peak_memory(record: RunRecord) -> tuple[float | None, str | None]:
    value = record.efficiency.peak_memory_bytes
    return (value / 2**20, None) if value is not None else (None, _efficiency_reason(record))


EFFICIENCY_COLUMNS = (
    Column("params_m", "params (M)", False, "cost", 2, _efficiency_getter(("parameters", "total"), 1e-6)),
    Column("train_samples_per_s", "train samples/s", True, "cost", 1,
           _efficiency_getter(("train", "samples_per_second"))),
    Column("latency_ms", "latency b1 (ms)", False, "cost", 1,
           _efficiency_getter(("inference", "latency_batch1", "seconds", "median"), 1e3,
                              reason_path=("inference", "unavailable"))),
    Column("throughput", "throughput (studies/s)", True, "cost", 2,
           _efficiency_getter(("inference", "throughput", "studies_per_second"),
                              reason_path=("inference", "unavailable"))),
    Column("peak_memory_mib", "peak memory (MiB)", False, "cost", 0, _peak_memory),
    Column("memory_share_pct", "memory share of forward (%)", False, "cost", 1,
           _efficiency_getter(("retrieval", "share_of_forward"), 100.0, reason_path=("retrieval", "unavailable"))),
    Column("memory_overhead_pct", "decode overhead vs no memory (%)", False, "cost", 1,
           _efficiency_getter(("retrieval", "vs_no_memory", "decode_overhead"), 100.0,
                              reason_path=("retrieval", "vs_no_memory", "unavailable"))),
)
EFFICIENCY_KEYS = tuple(c.key for c in EFFICIENCY_COLUMNS)


def metric_columns(records: Sequence[RunRecord], registry: Any) -> list[Column]:
    """Every metric key of the records, in the order the records list them, with its section."""
    from rrgbench.scoring.engine import all_keys

    keys: list[str] = []
    for record in records:
        keys.extend(k for k in record.metrics if k not in keys)
    declared = {name: key.section for name, (_, key) in all_keys(registry).items()}
    columns = []
    for key in keys:
        entry = next(r.metrics[key] for r in records if key in r.metrics)
        section = declared.get(key) or SECTION_OF_GROUP.get(entry.group or "", "other")
        columns.append(Column(key, key, bool(entry.higher_is_better), section, 4))
    return columns


# -- cells ------------------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One row x column: the aggregate over the row's runs."""

    mean: float | None = None
    sd: float | None = None  # sample std over the runs (None for one run)
    ci_half: float | None = None  # half-width of one run's 95% bootstrap CI (mean over the runs that have one)
    low: float | None = None  # error-bar ends for plots: mean ± sd, or the single run's CI
    high: float | None = None
    n: int = 0  # runs with a value
    runs: int = 0
    reason: str | None = None  # why the value is unavailable (or partly so)


def observe(record: RunRecord, column: Column) -> tuple[float | None, tuple[float, float] | None, str | None]:
    """A record's value, 95% CI and reason for one column."""
    if column.getter is not None:
        value, reason = column.getter(record)
        return value, None, reason
    entry = record.metrics.get(column.key)
    if entry is None:
        return None, None, "not computed in this run (metric not registered at the time)"
    if entry.value is None:
        return None, None, entry.unavailable or "not computed"
    ci = entry.ci95
    return float(entry.value), (float(ci[0]), float(ci[1])) if ci and None not in ci else None, None


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample std over runs (:func:`rrgbench.metrics.statistics.mean_std`); no sd for a single run."""
    from rrgbench.metrics.statistics import mean_std

    mean, sd = mean_std(values)
    return mean, sd if len(values) > 1 else None


def aggregate(records: Sequence[RunRecord], column: Column) -> Cell:
    """Mean, sd over seeds and the single-run CI half-width of one column over a row's runs."""
    observed = [observe(r, column) for r in records]
    values = [v for v, _, _ in observed if v is not None]
    reasons = sorted({r for v, _, r in observed if v is None and r})
    cell = Cell(runs=len(records), n=len(values))
    if not values:
        cell.reason = "; ".join(reasons) or "not computed"
        return cell
    if len(values) < len(records):
        cell.reason = f"{len(records) - len(values)} of {len(records)} runs without a value: " + "; ".join(reasons)
    cell.mean, cell.sd = mean_sd(values)
    halves = [(ci[1] - ci[0]) / 2 for v, ci, _ in observed if v is not None and ci is not None]
    cell.ci_half = sum(halves) / len(halves) if halves else None
    if cell.sd is not None:
        cell.low, cell.high = cell.mean - cell.sd, cell.mean + cell.sd
    elif len(values) == 1 and (ci := next((c for v, c, _ in observed if v is not None), None)) is not None:
        cell.low, cell.high = ci
    return cell


# -- flags, tables and curves --------------------------------------------------------------------------------
@dataclass
class Diversity:
    """How varied a row's test reports are (means over its runs with prediction statistics)."""

    runs: int
    distinct_share: float | None = None
    most_frequent_share: float | None = None
    most_frequent: str | None = None
    reason: str | None = None

    @property
    def degenerate(self) -> bool | None:
        return None if self.most_frequent_share is None else self.most_frequent_share >= DEGENERATE_SHARE


def diversity(records: Sequence[RunRecord]) -> Diversity:
    stats = [r.predictions for r in records if r.predictions is not None]
    if not stats:
        return Diversity(0, reason="no prediction statistics in these records (written before 2026-12)")
    top = max(stats, key=lambda s: s.most_frequent_share)
    return Diversity(len(stats), sum(s.distinct_share for s in stats) / len(stats),
                     sum(s.most_frequent_share for s in stats) / len(stats), top.most_frequent)


@dataclass
class Curve:
    """A row's validation curve of one metric: mean (and sd over seeds) at each validated step."""

    steps: list[int]
    seconds: list[float | None]
    mean: list[float]
    sd: list[float | None]


def curve(records: Sequence[RunRecord], metric: str) -> Curve | None:
    """The mean curve over the runs, at the steps every run with a history validated at."""
    per_run = []
    for record in records:
        history = record.validation.history if record.validation else []
        points = {p.step: (p.seconds, p.values.get(metric)) for p in history if p.values.get(metric) is not None}
        if points:
            per_run.append(points)
    if not per_run:
        return None
    steps = sorted(set.intersection(*(set(points) for points in per_run)))
    result = Curve([], [], [], [])
    for step in steps:
        mean, sd = mean_sd([float(points[step][1]) for points in per_run])  # type: ignore[arg-type]
        seconds = [points[step][0] for points in per_run if points[step][0] is not None]
        result.steps.append(step)
        result.seconds.append(sum(seconds) / len(seconds) if seconds else None)
        result.mean.append(mean)
        result.sd.append(sd)
    return result


def per_observation(records: Sequence[RunRecord]) -> dict[str, tuple[float, float | None, int | None]]:
    """observation -> (mean F1 over runs, sd, reference support of the first run) from tables.ce_per_observation."""
    values: dict[str, list[float]] = {}
    support: dict[str, int | None] = {}
    for record in records:
        for row in record.tables.get("ce_per_observation") or []:
            name, f1 = row.get("observation"), row.get("f1")
            if isinstance(name, str) and isinstance(f1, (int, float)):
                values.setdefault(name, []).append(float(f1))
                support.setdefault(name, row.get("support") if isinstance(row.get("support"), int) else None)
    return {name: (*mean_sd(found), support[name]) for name, found in values.items()}


# -- the board ---------------------------------------------------------------------------------------------
@dataclass
class Board:
    """Everything one dataset's report shows, computed from its records."""

    dataset: str
    records: list[RunRecord]
    sort: Column
    rows: list[str] = field(default_factory=list)  # sorted, best first
    models: dict[str, str] = field(default_factory=dict)  # row -> recipe name
    runs: dict[str, list[RunRecord]] = field(default_factory=dict)
    metrics: list[Column] = field(default_factory=list)  # every metric column, shown or not
    efficiency: list[Column] = field(default_factory=list)
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    tested: list[str] = field(default_factory=list)  # metric keys of the significance tests
    families: dict[str, list[str]] = field(default_factory=dict)  # ablation base row -> variant rows
    diversity: dict[str, Diversity] = field(default_factory=dict)
    observations: list[str] = field(default_factory=list)
    per_observation: dict[str, dict[str, tuple[float, float | None, int | None]]] = field(default_factory=dict)
    curves: dict[str, dict[str, Curve]] = field(default_factory=dict)
    tests: Any = None  # rrgbench.report.significance.Significance, when computed

    @property
    def columns(self) -> list[Column]:
        return [*self.metrics, *self.efficiency]

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)

    def has_values(self, column: Column) -> bool:
        return any(self.cells[(r, column.key)].mean is not None for r in self.rows)

    def section(self, name: str) -> list[Column]:
        """The shown columns of a section (those with a value in some row)."""
        return [c for c in self.columns if c.section == name and self.has_values(c)]

    def hidden(self, name: str) -> list[tuple[Column, str]]:
        """The section's columns that are n/a in every row, with the reason(s)."""
        out = []
        for column in self.columns:
            if column.section == name and not self.has_values(column):
                reasons = sorted({c.reason for r in self.rows if (c := self.cells[(r, column.key)]).reason})
                out.append((column, "; ".join(reasons) or "not computed"))
        return out

    def best(self, column: Column) -> float | None:
        """The best displayed value of a column (rounded as shown, so visible ties are all bold)."""
        values = [round(c.mean, column.digits) for r in self.rows
                  if (c := self.cells[(r, column.key)]).mean is not None]
        if not values:
            return None
        return max(values) if column.higher_is_better else min(values)

    @property
    def labelers(self) -> list[str]:
        return labelers(self.records)


def headline(dataset: str, columns: Sequence[Column], registry: Any, sort: str | None = None) -> Column:
    """The sort column: ``sort`` when given, else the dataset's registered selection metric, else BLEU-4."""
    by_key = {c.key: c for c in columns}
    if sort is not None:
        if sort not in by_key:
            raise ConfigError(f"--sort {sort!r}: no such column{did_you_mean(sort, by_key)}; "
                              f"known: {', '.join(by_key)}")
        return by_key[sort]
    wanted = "bleu_4"
    if dataset in registry.names("dataset"):
        defaults = registry.get("dataset", dataset).extra.get("defaults") or {}
        wanted = str(defaults.get("train.select_metric", wanted))
    for key in (wanted, "bleu_4"):
        if key in by_key:
            return by_key[key]
    return columns[0]


def ablation_families(board: Board) -> dict[str, list[str]]:
    """Base row -> variant rows: a plain row of a model whose records name ``ablation_of`` = a base that has a
    plain row (``record.ablation_of``; version-1 records get it from the reader)."""
    plain = [label for label in board.rows if label == board.models[label]]
    families: dict[str, list[str]] = {}
    for label in plain:
        base = next((r.ablation_of for r in board.runs[label] if r.ablation_of), None)
        if base in plain and base != label:
            families.setdefault(base, []).append(label)
    return {base: families[base] for base in plain if base in families}


def _sort_rows(board: Board) -> list[str]:
    """Best first by the sort column, ties broken by the headline metrics, unavailable values last."""
    by_key = {c.key: c for c in board.metrics}
    columns = [board.sort, *(by_key[k] for k in HEADLINE_METRICS if k in by_key and k != board.sort.key)]

    def key(label: str) -> tuple[Any, ...]:
        parts: list[Any] = []
        for column in columns:
            mean = board.cells[(label, column.key)].mean
            parts += [1, 0.0] if mean is None else [0, -mean if column.higher_is_better else mean]
        return (*parts, label)

    return sorted(board.runs, key=key)


def record_order(record: RunRecord) -> tuple[str, str, str, str]:
    """A fixed order of records, whatever folder they were read from (rebuilds are byte for byte)."""
    return (record.model, record.run_id, record.created, str(record.seed))


def build_board(dataset: str, records: Sequence[RunRecord], *, sort: str | None = None, registry: Any = None,
                significance: bool = True) -> Board:
    """Rows, columns, cells, flags and curves of one dataset (reruns of a seed count once: the latest);
    with ``significance`` the paired tests too (rescoring the records' studies). ``registry``: the plugins'
    registry, for the dataset's headline metric, metric sections and rescoring (default: the process's)."""
    if registry is None:
        from rrgbench.extension.plugins import registry as default_registry

        registry = default_registry()
    variants = sorted(latest_per_seed([(variant_key(r), r) for r in records]), key=lambda v: record_order(v[1]))
    records = [record for _, record in variants]
    labels = row_labels(variants)
    runs: dict[str, list[RunRecord]] = {}
    models: dict[str, str] = {}
    for variant, record in sorted(variants, key=lambda v: (str(v[1].seed), v[1].created, v[1].run_id)):  # by seed
        label = labels[variant]
        runs.setdefault(label, []).append(record)
        models[label] = record.model
    metrics = metric_columns(records, registry)
    efficiency = list(EFFICIENCY_COLUMNS)
    board = Board(dataset, list(records), headline(dataset, [*metrics, *efficiency], registry, sort),
                  models=models, runs=runs, metrics=metrics, efficiency=efficiency)
    for label in runs:
        for column in board.columns:
            board.cells[(label, column.key)] = aggregate(runs[label], column)
    board.rows = _sort_rows(board)
    first = [board.sort.key] if board.sort.getter is None else []
    board.tested = [k for k in dict.fromkeys([*first, *HEADLINE_METRICS])
                    if any(c.key == k and board.has_values(c) for c in metrics)][:2]
    board.families = ablation_families(board)
    for label in board.rows:
        board.diversity[label] = diversity(runs[label])
        board.per_observation[label] = per_observation(runs[label])
        found = {metric: c for metric in CURVE_METRICS if (c := curve(runs[label], metric)) is not None}
        if found:
            board.curves[label] = found
    board.observations = list(dict.fromkeys(o for label in board.rows for o in board.per_observation[label]))
    if significance:
        from rrgbench.report.significance import significance_tests

        board.tests = significance_tests(board, registry)
    return board
