"""Helpers shared by the benchmark modules: derived ratios of benchmark medians, the real-data path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
_MEDIANS: dict[str, float] = {}
_RATIOS: list[tuple[str, str, str]] = []  # (name, numerator benchmark, denominator benchmark)


def record_median(key: str, benchmark: Any) -> None:
    """Remember a finished benchmark's median (seconds) under ``key`` for the ratio summary."""
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        _MEDIANS[key] = stats.stats.median


def ratio(name: str, numerator: str, denominator: str) -> None:
    """Declare a ratio of two recorded medians to report at the end (e.g. a speed-up)."""
    if (name, numerator, denominator) not in _RATIOS:
        _RATIOS.append((name, numerator, denominator))


def computed_ratios() -> dict[str, float]:
    return {name: _MEDIANS[num] / _MEDIANS[den] for name, num, den in _RATIOS
            if num in _MEDIANS and den in _MEDIANS and _MEDIANS[den] > 0}
