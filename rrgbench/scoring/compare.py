"""Comparing two systems: paired significance tests between two runs, and mean ± std over seeds.

``compare_runs`` reads both runs' ``predictions.jsonl``, aligns them by id (refusing when the id sets or the
references differ: a paired test needs the same studies scored against the same references), rescores both
with the same metric groups and settings (so a change of labeler or metric code cannot bias the comparison),
and runs one paired test per metric key:

* ``bootstrap`` (default): :func:`rrgbench.metrics.statistics.paired_bootstrap_test`;
* ``randomization``: :func:`rrgbench.metrics.statistics.approximate_randomization_test` for the p-value. The
  95% CI of the difference always comes from the paired bootstrap. Metrics whose aggregate a randomization
  test cannot recompute (the CE metrics' resamplers are opaque) get no p-value, with the reason.

Both report ``delta = A - B``. A metric unavailable for either run gets a row with the reason and no numbers.

Multi-seed: a folder holding several runs (each a folder with ``results.json``) is summarised per metric as
mean, sample std and count over its runs (:func:`aggregate_seeds`, from the records, nothing rescored). The
paired test needs two single runs; ``rrgbench compare --seeds A_DIR B_DIR`` prints the seed table instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rrgbench.errors import DataError, UnknownNameError, did_you_mean
from rrgbench.metrics.base import MetricResult
from rrgbench.record import RESULTS_FILE, RunRecord
from rrgbench.record import load_records as read_records
from rrgbench.scoring.engine import ScoringContext, score
from rrgbench.scoring.external import duplicates, examples, read_jsonl_rows

TESTS = ("bootstrap", "randomization")
PREDICTIONS_FILE = "predictions.jsonl"


@dataclass(frozen=True)
class RunPredictions:
    """One run's decoded test set: ids, predictions and references, in file order."""

    path: Path
    ids: list[str]
    predictions: list[str]
    references: list[str]


@dataclass(frozen=True)
class ComparisonRow:
    """One metric of a paired comparison; numbers are None when ``note`` says why."""

    metric: str
    a: float | None
    b: float | None
    delta: float | None
    ci95: tuple[float, float] | None
    p_value: float | None
    higher_is_better: bool = True
    note: str | None = None


# ---------------------------------------------------------------------------------------------- runs


def run_dirs(path: str | Path, marker: str = PREDICTIONS_FILE) -> list[Path]:
    """``path`` itself when it holds ``marker``, else every folder below it that does (sorted)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"run folder not found: {path}")
    if (path / marker).is_file():
        return [path]
    return sorted(found.parent for found in path.rglob(marker))


def load_predictions(run: str | Path) -> RunPredictions:
    """A run's ``predictions.jsonl`` (rows with id, prediction, reference)."""
    run = Path(run)
    file = run / PREDICTIONS_FILE
    if not file.is_file():
        raise DataError(f"{run} has no {PREDICTIONS_FILE}")
    try:
        _, rows = read_jsonl_rows(file, required=("id", "prediction", "reference"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {file}: {exc}") from None
    ids = [str(row["id"]) for row in rows]
    duplicated = sorted(duplicates(ids))
    if duplicated:
        raise DataError(f"{file}: {len(duplicated)} duplicated ids (first: {examples(duplicated)})")
    return RunPredictions(run, ids, [str(r["prediction"]) for r in rows], [str(r["reference"]) for r in rows])


def single_run(path: str | Path) -> RunPredictions:
    """The one run at or below ``path``; DataError when there are none or several."""
    found = run_dirs(path)
    if not found:
        raise DataError(f"no {PREDICTIONS_FILE} at or below {path}")
    if len(found) > 1:
        raise DataError(f"{path} holds {len(found)} runs; pass one run folder for a paired test, or --seeds for "
                        "mean ± std over the runs of each folder")
    return load_predictions(found[0])


def align_runs(a: RunPredictions, b: RunPredictions) -> tuple[list[str], list[str], list[str], list[str]]:
    """ids, predictions of A, predictions of B (reordered to A's order), references; refuses any mismatch."""
    only_a = [i for i in a.ids if i not in set(b.ids)]
    only_b = [i for i in b.ids if i not in set(a.ids)]
    if only_a or only_b:
        raise DataError(
            f"the runs scored different studies: {len(only_a)} only in A (first: {examples(only_a)}), "
            f"{len(only_b)} only in B (first: {examples(only_b)}); a paired test needs the same test set"
        )
    position = {study: k for k, study in enumerate(b.ids)}
    preds_b = [b.predictions[position[i]] for i in a.ids]
    refs_b = [b.references[position[i]] for i in a.ids]
    differ = [i for i, ra, rb in zip(a.ids, a.references, refs_b, strict=True) if ra != rb]
    if differ:
        raise DataError(f"{len(differ)} studies have different references in the two runs (first: "
                        f"{examples(differ)}); compare runs scored against the same cleaned references")
    return list(a.ids), list(a.predictions), preds_b, list(a.references)


# ---------------------------------------------------------------------------------------------- tests


def paired_row(key: str, a: MetricResult, b: MetricResult, test: str, n_resamples: int,
               seed: int) -> ComparisonRow:
    """The paired comparison of one metric (see the module docstring)."""
    from rrgbench.metrics.statistics import approximate_randomization_test, paired_bootstrap_test

    if a.value is None or b.value is None:
        reason = a.unavailable if a.value is None else b.unavailable
        return ComparisonRow(key, a.value, b.value, None, None, None, a.higher_is_better, reason or "unavailable")
    boot = paired_bootstrap_test(a, b, n_resamples=n_resamples, seed=seed)
    p_value, note = boot["p_value"], None
    if test == "randomization":
        try:
            p_value = approximate_randomization_test(a, b, n_trials=n_resamples, seed=seed)["p_value"]
        except ValueError:
            p_value, note = None, "no randomization p-value: this metric's resampler is opaque (use bootstrap)"
    return ComparisonRow(key, a.value, b.value, boot["delta"], tuple(boot["ci95"]), p_value,
                         a.higher_is_better, note)


def compare_runs(a: RunPredictions, b: RunPredictions, context: ScoringContext, *,
                 metrics: Sequence[str] | None = None, test: str = "bootstrap",
                 n_resamples: int = 1000, seed: int = 0) -> list[ComparisonRow]:
    """Rescore both runs with the same settings and test A against B per metric key."""
    if test not in TESTS:
        raise UnknownNameError(f"unknown test '{test}'{did_you_mean(test, TESTS)}; known: {', '.join(TESTS)}")
    _, preds_a, preds_b, refs = align_runs(a, b)
    if metrics:  # only the groups with a wanted key run; an unknown key is refused here
        context = replace(context, wanted=frozenset(metrics)).check()
    scores_a = score(preds_a, refs, context, with_ci=False).results
    scores_b = score(preds_b, refs, context, with_ci=False).results
    keys = list(metrics) if metrics else list(scores_a)
    absent = MetricResult.missing("not computed")
    return [paired_row(key, scores_a.get(key, absent), scores_b.get(key, absent), test, n_resamples, seed)
            for key in keys]


# ---------------------------------------------------------------------------------------------- seeds


def aggregate_seeds(records: Iterable[RunRecord]) -> dict[str, tuple[float, float, int]]:
    """Per metric key: (mean, sample std, n) over the records where it has a value.

    Keys unavailable in every record are left out (their reason is in the records). The std of a single
    value is 0 (:func:`rrgbench.metrics.statistics.mean_std`).
    """
    from rrgbench.metrics.statistics import mean_std

    values: dict[str, list[float]] = {}
    for record in records:
        for key, entry in record.metrics.items():
            values.setdefault(key, [])
            if entry.value is not None:
                values[key].append(float(entry.value))
    return {key: (*mean_std(found), len(found)) for key, found in values.items() if found}


def load_records(path: str | Path) -> list[RunRecord]:
    """The run records at or below ``path`` (one per run); an unreadable one is an error naming it."""
    records = read_records(path).records
    if not records:
        raise DataError(f"no {RESULTS_FILE} at or below {path}")
    return records


# ---------------------------------------------------------------------------------------------- output


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def format_comparison(rows: Sequence[ComparisonRow], label_a: str = "A", label_b: str = "B") -> str:
    """A fixed-width table: metric, A, B, delta, 95% CI of delta, p-value; reasons as footnotes."""
    header = ["metric", label_a, label_b, "delta", "95% CI of delta", "p"]
    lines, notes = [], []
    for row in rows:
        ci = "n/a" if row.ci95 is None else f"[{row.ci95[0]:+.4f}, {row.ci95[1]:+.4f}]"
        delta = "n/a" if row.delta is None else f"{row.delta:+.4f}"
        arrow = "↑" if row.higher_is_better else "↓"
        marker = ""
        if row.note:
            if row.note not in notes:
                notes.append(row.note)
            marker = f" [{notes.index(row.note) + 1}]"
        lines.append([f"{row.metric} {arrow}{marker}", _number(row.a), _number(row.b), delta, ci,
                      _number(row.p_value)])
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    text = [" | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [header, *lines]]
    text.insert(1, "-+-".join("-" * w for w in widths))
    text.extend(f"[{k}] {note}" for k, note in enumerate(notes, start=1))
    return "\n".join(text)


def format_seeds(summaries: dict[str, dict[str, tuple[float, float, int]]]) -> str:
    """Per metric, ``mean ± std (n)`` of each labelled folder's runs."""
    labels = list(summaries)
    keys = list(dict.fromkeys(key for summary in summaries.values() for key in summary))
    header = ["metric", *labels]
    lines = []
    for key in keys:
        cells = [key]
        for label in labels:
            found = summaries[label].get(key)
            cells.append("n/a" if found is None else f"{found[0]:.4f} ± {found[1]:.4f} ({found[2]})")
        lines.append(cells)
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    text = [" | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [header, *lines]]
    text.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(text)


def rows_as_json(rows: Sequence[ComparisonRow]) -> list[dict[str, Any]]:
    """The comparison as JSON-able dicts."""
    return [asdict(row) for row in rows]
