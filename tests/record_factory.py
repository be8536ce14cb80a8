"""Hand-made run records for tests: valid version-2 records with only the fields a test cares about."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rrgbench.record import (
    Bootstrap,
    Efficiency,
    Environment,
    MetricValue,
    Protocol,
    RunRecord,
    write_record,
)


def metric(value: float | None, ci: tuple[float, float] | None = None, higher: bool = True,
           unavailable: str | None = None, group: str | None = None) -> MetricValue:
    return MetricValue(value=value, higher_is_better=higher, group=group, ci95=list(ci) if ci else None,
                       unavailable=unavailable if value is None else None)


def make_record(model: str = "m", dataset: str = "synthetic", *, metrics: dict[str, Any] | None = None,
                seed: int | None = 0, kind: str = "training", labeler: str = "chexpert-rules",
                config: dict[str, Any] | None = None, created: str = "2026-11-30T00:00:00+0000",
                run_id: str | None = None, **fields: Any) -> RunRecord:
    """A record; ``metrics`` values may be MetricValue, a number, or a dict of MetricValue fields."""
    values = {}
    for key, entry in (metrics or {}).items():
        if isinstance(entry, MetricValue):
            values[key] = entry
        elif isinstance(entry, dict):
            values[key] = MetricValue(**entry)
        else:
            values[key] = metric(entry)
    protocol = Protocol(cleaning="iu-xray", references="cleaned", bootstrap=Bootstrap(resamples=100, seed=0),
                        metric_groups={"clinical": {"labeler": labeler, "uncertain_mapping": "r2gen"}})
    environment = Environment(packages={}, python="3.11", platform="test", device="cpu")
    return RunRecord(kind=kind, run_id=run_id or f"{model}-s{seed}", model=model, dataset=dataset, metrics=values,
                     protocol=protocol, environment=environment, created=created, seed=seed,
                     config=config if config is not None else {"overrides": {}},
                     efficiency=fields.pop("efficiency", Efficiency()), **fields)


def save(folder: Path, record: RunRecord) -> Path:
    write_record(folder / "results.json", record)
    return folder
