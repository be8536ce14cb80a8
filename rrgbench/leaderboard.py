"""Leaderboards built from run records (``results.json``) only.

One Markdown table per dataset: one row per model (mean over seeds when several), one column per
metric with ↑/↓, the best value in bold, unavailable metrics as ``n/a`` with a footnote giving the
reason. Written atomically under ``OUT/<dataset>/``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from rrgbench.io import write_text

METRIC_ORDER = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider")


def load_records(runs: Path) -> list[dict[str, Any]]:
    """Every finished run record below ``runs``."""
    records = []
    for path in sorted(Path(runs).rglob("results.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "metrics" in record and "model" in record:
            records.append(record)
    return records


def _metric_keys(records: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = [k for k in METRIC_ORDER if any(k in r["metrics"] for r in records)]
    for record in records:
        keys.extend(k for k in record["metrics"] if k not in keys)
    return keys


def table_rows(records: list[dict[str, Any]]) -> tuple[list[str], dict[str, dict[str, Any]], dict[str, str]]:
    """Per model: mean value per metric over its runs, run count; plus footnotes for unavailable metrics."""
    keys = _metric_keys(records)
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_model[record["model"]].append(record)
    rows, notes = {}, {}
    for model, runs in sorted(by_model.items()):
        row: dict[str, Any] = {"runs": len(runs)}
        for key in keys:
            values = [r["metrics"][key]["value"] for r in runs if key in r["metrics"]]
            present = [v for v in values if v is not None]
            row[key] = sum(present) / len(present) if present else None
            if not present:
                reasons = {r["metrics"][key].get("unavailable") for r in runs if key in r["metrics"]}
                notes[key] = "; ".join(sorted(x for x in reasons if x)) or "not computed"
        rows[model] = row
    return keys, rows, notes


def markdown(dataset: str, records: list[dict[str, Any]]) -> str:
    keys, rows, notes = table_rows(records)
    higher = {k: next((r["metrics"][k].get("higher_is_better", True) for r in records if k in r["metrics"]), True)
              for k in keys}
    best = {}
    for key in keys:
        values = [row[key] for row in rows.values() if row[key] is not None]
        if values:
            best[key] = max(values) if higher[key] else min(values)
    header = ["model", "runs", *[f"{k} {'↑' if higher[k] else '↓'}" for k in keys]]
    lines = [f"# Leaderboard: {dataset}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * len(header)) + "|"]
    for model, row in rows.items():
        cells = [model, str(row["runs"])]
        for key in keys:
            value = row[key]
            if value is None:
                cells.append(f"n/a[^{key}]")
            else:
                text = f"{value:.4f}"
                cells.append(f"**{text}**" if value == best.get(key) else text)
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines.append("")
        lines.extend(f"[^{key}]: {reason}" for key, reason in notes.items())
    return "\n".join(lines) + "\n"


def build_leaderboards(runs: Path, out: Path) -> list[Path]:
    """Write ``OUT/<dataset>/leaderboard.md`` for every dataset with run records under ``runs``."""
    by_dataset: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in load_records(runs):
        by_dataset[record["dataset"]].append(record)
    written = []
    for dataset, records in sorted(by_dataset.items()):
        path = Path(out) / dataset / "leaderboard.md"
        write_text(path, markdown(dataset, records))
        written.append(path)
    return written
