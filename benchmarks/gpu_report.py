"""Summarise the efficiency records of ``benchmarks/gpu_check.sh`` runs into ``efficiency.md`` and ``.json``.

Usage: ``python benchmarks/gpu_report.py RUNS_DIR OUT_DIR``. Reads every ``results.json`` below
RUNS_DIR (run records only, like the leaderboards) and writes one row per run: device, precision,
batch size, image size, steps, training samples/s and step time (median, p90), peak memory (CUDA max
allocated, or peak RSS on CPU), the memory's share of the forward pass, decoding overhead against
the no-memory counterpart, latency per study at batch 1 and throughput.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rrgbench.record import load_records


def _dig(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def row(record: dict[str, Any]) -> dict[str, Any]:
    """The figures of one run record."""
    eff, sections = record.get("efficiency") or {}, _dig(record, "config", "sections") or {}
    peak = _dig(eff, "peak_memory", "run") or {}
    cuda = peak.get("cuda_max_allocated_bytes")
    return {
        "model": record["model"],
        "device": _dig(record, "environment", "device_name") or _dig(record, "environment", "device"),
        "precision": "bf16 autocast" if _dig(eff, "device", "type") == "cuda" and _dig(sections, "train", "amp")
        else "fp32",
        "backbone": _dig(sections, "encoder", "backbone"),
        "image_size": _dig(sections, "data", "image_size"),
        "batch_size": _dig(sections, "data", "batch_size"),
        "steps": _dig(eff, "train", "steps_timed"),
        "train_samples_per_s": _dig(eff, "train", "samples_per_second"),
        "step_ms_median": _ms(_dig(eff, "train", "step_seconds", "median")),
        "step_ms_p90": _ms(_dig(eff, "train", "step_seconds", "p90")),
        "peak_memory_gib": (cuda if cuda is not None else peak.get("peak_rss_bytes", 0)) / 2**30,
        "peak_memory_kind": "CUDA max allocated" if cuda is not None else "peak RSS",
        "memory_share_forward_pct": _pct(_dig(eff, "retrieval", "share_of_forward")),
        "memory_modules": ", ".join(_dig(eff, "retrieval", "memory_modules") or []) or "none",
        "decode_overhead_vs_no_memory_pct": _pct(_dig(eff, "retrieval", "vs_no_memory", "decode_overhead")),
        "latency_b1_ms": _ms(_dig(eff, "inference", "latency_batch1", "seconds", "median")),
        "throughput_studies_per_s": _dig(eff, "inference", "throughput", "studies_per_second"),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1000 * seconds


def _pct(share: float | None) -> float | None:
    return None if share is None else 100 * share


def markdown(rows: list[dict[str, Any]]) -> str:
    header = list(rows[0]) if rows else ["model"]
    lines = ["# GPU efficiency check", "",
             "Written by `benchmarks/gpu_check.sh` from the run records (see `rrgbench/run/efficiency.py` for how each "
             "figure is measured). Empty cells: not applicable or not measured.", "",
             "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for entry in rows:
        lines.append("| " + " | ".join(_fmt(entry[k]) for k in header) + " |")
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python benchmarks/gpu_report.py RUNS_DIR OUT_DIR", file=sys.stderr)
        return 2
    runs, out = Path(argv[0]), Path(argv[1])
    rows = [row(record.to_json()) for record in load_records(runs).records]
    if not rows:
        print(f"error: no run records below {runs}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    (out / "efficiency.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "efficiency.md").write_text(markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
