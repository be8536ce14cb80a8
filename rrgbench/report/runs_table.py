"""``rrgbench.load_runs(DIR)``: every run record below a folder as one pandas DataFrame, one row per record.

Columns, in this order:

* identity: ``model``, ``dataset``, ``seed``, ``run_id``, ``kind`` (training, evaluation, external),
  ``created``, ``profile``, ``ablation_of``, ``path`` (the run folder);
* how the clinical metrics were labelled: ``labeler``, ``uncertain_mapping`` (from the record's protocol);
* the configuration, flattened: ``config.<section>.<option>`` (``config.train.epochs``) and
  ``config.components.<kind>``; absent for records where no model ran (``kind`` external);
* every metric: ``<key>`` (value), ``<key>_ci_low``, ``<key>_ci_high`` (95% bootstrap CI) and
  ``<key>_unavailable`` (the reason where there is no value; a metric is never 0 for want of a value);
* the efficiency figures of the leaderboards, same names and units as their ``runs.csv``
  (:data:`rrgbench.report.leaderboard.EFFICIENCY_COLUMNS`: ``params_m``, ``train_samples_per_s``,
  ``latency_ms``, ``throughput``, ``peak_memory_mib``, ``memory_share_pct``, ``memory_overhead_pct``).

A value a record does not have is missing (NaN / None) in its row. Records are read with
:func:`rrgbench.record.load_records`; an unreadable ``results.json`` is an error naming it unless
``strict=False``, when it is left out with a warning that names it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from rrgbench.record import RunRecord, load_records

IDENTITY = ("model", "dataset", "seed", "run_id", "kind", "created", "profile", "ablation_of")


def config_columns(record: RunRecord) -> dict[str, Any]:
    """``config.<section>.<option>`` and ``config.components.<kind>`` of a record's configuration."""
    config = record.config or {}
    columns = {f"config.components.{kind}": name for kind, name in (config.get("components") or {}).items()}
    for section, values in (config.get("sections") or {}).items():
        columns.update({f"config.{section}.{key}": value for key, value in (values or {}).items()})
    return columns


def metric_columns(record: RunRecord) -> dict[str, Any]:
    """Value, CI bounds and the reason for a missing value, of every metric of a record."""
    columns: dict[str, Any] = {}
    for key, entry in record.metrics.items():
        ci = entry.ci95 if entry.ci95 and len(entry.ci95) == 2 else (None, None)
        columns.update({key: entry.value, f"{key}_ci_low": ci[0], f"{key}_ci_high": ci[1],
                        f"{key}_unavailable": entry.unavailable if entry.value is None else None})
    return columns


def efficiency_columns(record: RunRecord) -> dict[str, float | None]:
    """The leaderboard's efficiency figures of a record (None where it has none)."""
    from rrgbench.report.leaderboard import EFFICIENCY_COLUMNS

    return {column.key: column.getter(record)[0] for column in EFFICIENCY_COLUMNS if column.getter is not None}


def run_parts(record: RunRecord, folder: Path) -> list[dict[str, Any]]:
    """One record's columns in four groups: identity, configuration, metrics, efficiency."""
    clinical = record.protocol.metric_groups.get("clinical") or {}
    identity: dict[str, Any] = {name: getattr(record, name) for name in IDENTITY}
    identity.update(path=str(folder), labeler=clinical.get("labeler"),
                    uncertain_mapping=clinical.get("uncertain_mapping"))
    return [identity, config_columns(record), metric_columns(record), efficiency_columns(record)]


def load_runs(root: str | Path, *, strict: bool = True) -> Any:
    """Every ``results.json`` at or below ``root`` as a pandas DataFrame, one row per run, in path order."""
    import pandas as pd

    found = load_records(root, strict=strict)
    for problem in found.problems:
        warnings.warn(f"load_runs: left out {problem}", stacklevel=2)
    parts = [run_parts(record, path.parent) for record, path in zip(found.records, found.paths, strict=True)]
    head = [*IDENTITY, "path", "labeler", "uncertain_mapping"]
    columns = head + [key for group in range(1, 4) for key in dict.fromkeys(k for p in parts for k in p[group])]
    return pd.DataFrame([{k: v for group in p for k, v in group.items()} for p in parts], columns=columns)
