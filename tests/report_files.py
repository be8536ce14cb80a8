"""Report files for scoring tests: id -> report text written as CSV or JSON Lines, the two formats `score` reads."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def write_csv(path: Path, rows: dict[str, str], column: str = "report") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", column])
        writer.writerows(rows.items())
    return path


def write_jsonl(path: Path, rows: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps({"id": k, "report": v}) + "\n" for k, v in rows.items()), encoding="utf-8")
    return path
