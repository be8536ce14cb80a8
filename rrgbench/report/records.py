"""The records a leaderboard is built from: reading, checking the names used as paths, grouping into rows.

Every record below ``--runs`` is read strictly (an unreadable or truncated ``results.json`` is an error
naming it, and nothing is written). Names a report uses as folder names (dataset, model, run id) are
checked with :func:`rrgbench.run.layout.safe_name` before anything touches the file system: a record
whose dataset is ``../victim`` or ``/etc`` is refused in one line, never followed.

Records are read with the user's home folder written ``~`` (:func:`portable`), so no report names the
machine it was built on. Runs of one model whose configurations differ only in the seed form one row
(:func:`variant_key`); runs of the same model with different configurations (a memory-size sweep) get
separate rows labelled with the overrides that tell them apart: ``mcsam (memory.size=1024)``. A rerun of
a seed replaces the older record (:func:`latest_per_seed`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rrgbench.errors import ConfigError, DataError
from rrgbench.record import RunRecord
from rrgbench.record import load_records as read_records
from rrgbench.run.layout import safe_name


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


def check_names(record: RunRecord, where: str) -> None:
    """Refuse a record whose dataset, model or run id cannot be one folder name (DataError naming it)."""
    for what, name in (("dataset", record.dataset), ("model", record.model), ("run id", record.run_id)):
        try:
            safe_name(name, what)
        except ConfigError as exc:
            raise DataError(f"{where}: {exc}; the leaderboard was not written (fix or remove this record)") from None


def load_records(runs: Path) -> list[RunRecord]:
    """Every run record below ``runs`` (home folder written ``~``), names checked; DataError on any bad one."""
    found = read_records(runs, transform=portable)
    for path, record in zip(found.paths, found.records, strict=True):
        check_names(record, str(path))
    return found.records


def records_by_dataset(runs: Path) -> dict[str, list[RunRecord]]:
    """The records below ``runs`` by dataset (sorted); DataError when there are none."""
    by_dataset: dict[str, list[RunRecord]] = defaultdict(list)
    for record in load_records(runs):
        by_dataset[record.dataset].append(record)
    if not by_dataset:
        raise DataError(f"no run records (results.json) below {runs}")
    return dict(sorted(by_dataset.items()))


def variant_key(record: RunRecord) -> str:
    """Fingerprint of everything in the configuration but the seed: runs that differ only by seed share it."""
    config = {k: v for k, v in (record.config or {}).items() if k not in ("seed", "overrides", "sources")}
    sections = dict(config.get("sections") or {})
    sections.pop("efficiency", None)
    config["sections"] = sections
    text = json.dumps([record.model, record.profile, config], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def latest_per_seed(variants: Sequence[tuple[str, RunRecord]]) -> list[tuple[str, RunRecord]]:
    """One (variant key, record) per configuration and seed: the most recently created (a rerun replaces the
    old run). ``variants``: each record with its :func:`variant_key`, computed once by the caller."""
    latest: dict[tuple[str, Any], tuple[str, RunRecord]] = {}
    for variant, record in variants:
        key = (variant, record.seed)
        if key not in latest or record.created >= latest[key][1].created:
            latest[key] = (variant, record)
    return list(latest.values())


def row_labels(variants: Sequence[tuple[str, RunRecord]]) -> dict[str, str]:
    """variant key -> row label: the model name, plus what tells variants of one model apart."""
    by_model: dict[str, dict[str, RunRecord]] = defaultdict(dict)
    for variant, record in variants:
        by_model[record.model].setdefault(variant, record)
    labels = {}
    for model, variants in by_model.items():
        if len(variants) == 1:
            labels.update({key: model for key in variants})
            continue
        overrides = {key: r.user_overrides for key, r in variants.items()}
        differing = sorted({k for o in overrides.values() for k in o
                            if len({str(x.get(k)) for x in overrides.values()}) > 1})
        parts = {key: [f"{k}={overrides[key][k]}" for k in differing if k in overrides[key]] for key in variants}
        profiles_differ = len({r.profile for r in variants.values()}) > 1
        for key, record in variants.items():
            if not parts[key] and profiles_differ:
                parts[key] = [f"profile={record.profile}"]
        plain = [key for key in variants if not parts[key]]
        for key in variants:
            if parts[key]:
                labels[key] = f"{model} ({', '.join(parts[key])})"
            else:  # the one variant without distinguishing overrides is the model's default configuration
                labels[key] = model if len(plain) == 1 else f"{model} (config {key[:6]})"
    return labels


def labelers(records: Sequence[RunRecord]) -> list[str]:
    """The labelers that produced the clinical-efficacy metrics of these runs (sorted names)."""
    return sorted({str(group["labeler"]) for r in records
                   if isinstance(group := r.protocol.metric_groups.get("clinical"), Mapping) and group.get("labeler")})


def labeler_of(records: Sequence[RunRecord]) -> str:
    """Which labeler produced the clinical-efficacy metrics of these runs (``n/a`` when none did)."""
    return ", ".join(labelers(records)) or "n/a"


def seeds_of(records: Sequence[RunRecord]) -> str:
    seeds = sorted({r.seed for r in records if r.seed is not None})
    return ",".join(str(s) for s in seeds) if seeds else "-"
