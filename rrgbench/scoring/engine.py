"""Scoring predictions against references with every registered metric group, plus 95% bootstrap CIs.

Used by training runs and by ``rrgbench score`` alike, so a run's numbers and an external system's
numbers come out of the same code. A metric group that cannot run (no Java, no weights) yields its
keys as unavailable with the reason; nothing is ever reported as 0 for that reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rrgbench.errors import RRGBenchError, UnavailableError
from rrgbench.extension.plugins import Registry
from rrgbench.metrics.base import MetricResult


@dataclass
class ScoringContext:
    """Settings shared by metric groups (labeler for CE, bootstrap, where to write side tables)."""

    labeler: str = "chexpert-rules"
    uncertain: str = "r2gen"
    n_resamples: int = 1000
    seed: int = 0
    registry: Registry | None = None
    output_dir: Path | None = None
    skip: frozenset[str] = frozenset()  # metric keys the user chose not to compute (recorded as unavailable)
    protocol: dict[str, Any] = field(default_factory=dict)  # metric groups add what they used


@dataclass
class Scores:
    results: dict[str, MetricResult]
    records: dict[str, dict[str, Any]]
    protocol: dict[str, Any]

    def per_study(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        rows = []
        for i, study_id in enumerate(ids):
            row: dict[str, Any] = {"id": study_id}
            for key, result in self.results.items():
                if result.per_sample is not None:
                    row[key] = result.per_sample[i]
            rows.append(row)
        return rows


def metric_groups(registry: Registry, names: Sequence[str] | None = None) -> list[str]:
    return list(names) if names else registry.names("metric")


def score(predictions: Sequence[str], references: Sequence[str], context: ScoringContext,
          groups: Sequence[str] | None = None, with_ci: bool = True) -> Scores:
    """Every metric key of the chosen groups (default: all registered) with value, CI and reason."""
    if len(predictions) != len(references):
        raise RRGBenchError(f"{len(predictions)} predictions but {len(references)} references")
    registry = context.registry
    if registry is None:
        from rrgbench.extension.plugins import registry as default_registry

        registry = context.registry = default_registry()
    results: dict[str, MetricResult] = {}
    for name in metric_groups(registry, groups):
        entry = registry.get("metric", name)
        keys = tuple(entry.extra.get("keys", (name,)))
        if keys and all(key in context.skip for key in keys):
            results.update({key: _skipped(key) for key in keys})
            continue
        try:
            computed = entry.load()(list(predictions), list(references), context)
        except UnavailableError as exc:
            computed = {key: MetricResult.missing(str(exc)) for key in keys}
        computed.update({key: _skipped(key) for key in keys if key in context.skip})
        results.update(computed)
    records = {key: record(result, context, with_ci) for key, result in results.items()}
    return Scores(results, records, dict(context.protocol))


def _skipped(key: str) -> MetricResult:
    return MetricResult.missing(f"skipped on request (--skip {key})")


def record(result: MetricResult, context: ScoringContext, with_ci: bool) -> dict[str, Any]:
    """The results.json form of one metric."""
    from rrgbench.metrics.statistics import bootstrap_ci

    entry: dict[str, Any] = {"value": result.value, "higher_is_better": result.higher_is_better}
    if result.value is None:
        entry["unavailable"] = result.unavailable or "not computed"
        return entry
    if with_ci and (result.per_sample is not None or result.resample is not None):
        ci = bootstrap_ci(result, n_resamples=context.n_resamples, seed=context.seed)
        entry["ci95"] = list(ci) if ci is not None else None
    if result.details:
        entry["details"] = result.details
    return entry
