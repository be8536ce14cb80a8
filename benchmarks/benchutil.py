"""Helpers shared by the benchmark modules: derived ratios of benchmark medians, the real-data path, and a
random index for decoders built from the training set."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import torch

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
_MEDIANS: dict[str, float] = {}
_DERIVED: list[tuple[str, str, str, str]] = []  # (name, kind, first benchmark, second benchmark)
_FIGURES: dict[str, float] = {}  # figures reported as they are (e.g. a worker count)


def fastest(key: str) -> str:
    """The key under which the fastest round of ``key`` is remembered (robust to preemption on a busy machine)."""
    return f"{key}@min"


def record_median(key: str, benchmark: Any) -> None:
    """Remember a finished benchmark's median (seconds) under ``key``, its fastest round under ``fastest(key)``."""
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        _MEDIANS[key] = stats.stats.median
        _MEDIANS[fastest(key)] = stats.stats.min


def record_seconds(key: str, samples: list[float]) -> None:
    """Remember timings taken by hand (e.g. interleaved with a benchmark's rounds) like :func:`record_median`."""
    if samples:
        _MEDIANS[key] = statistics.median(samples)
        _MEDIANS[fastest(key)] = min(samples)


def ratio(name: str, numerator: str, denominator: str) -> None:
    """Report ``median(numerator) / median(denominator)`` at the end (e.g. a speed-up)."""
    if (name, "ratio", numerator, denominator) not in _DERIVED:
        _DERIVED.append((name, "ratio", numerator, denominator))


def added_ms(name: str, subject: str, baseline: str) -> None:
    """Report ``median(subject) - median(baseline)`` in milliseconds at the end (e.g. retrieval overhead)."""
    if (name, "added_ms", subject, baseline) not in _DERIVED:
        _DERIVED.append((name, "added_ms", subject, baseline))


def per_second(name: str, key: str, count: float) -> None:
    """Report ``count / median(key)`` at the end (e.g. images per second of one worker)."""
    entry = (name, "per_second", key, str(count))
    if entry not in _DERIVED:
        _DERIVED.append(entry)


def figure(name: str, value: float) -> None:
    """Report ``value`` as it is at the end (a setting the benchmark found, e.g. a default worker count)."""
    _FIGURES[name] = value


def computed_ratios() -> dict[str, float]:
    """Every declared figure whose benchmarks ran."""
    out = dict(_FIGURES)
    for name, kind, first, second in _DERIVED:
        if kind == "per_second":
            if first in _MEDIANS and _MEDIANS[first] > 0:
                out[name] = float(second) / _MEDIANS[first]
            continue
        if first in _MEDIANS and second in _MEDIANS:
            a, b = _MEDIANS[first], _MEDIANS[second]
            if kind == "added_ms":
                out[name] = 1000.0 * (a - b)
            elif b > 0:
                out[name] = a / b
    return out


def index_random_reports(model: Any, n_studies: int, length: int, bos_id: int = 1, eos_id: int = 2) -> None:
    """Give a decoder built from the training set (the nearest-neighbour index) a random training summary:
    ``n_studies`` random features and reports of ``length`` tokens (``bos`` .. ``eos``); other decoders are
    left alone, and so is a data-initialised memory (its initial values do not change its cost)."""
    if not model.decoder.wants_initialization():
        return
    from rrgbench.extension.components import TrainingSummary

    generator = torch.Generator().manual_seed(0)
    width, vocab = model.context.d_model, model.context.vocab_size
    ids = torch.randint(eos_id + 1, vocab, (n_studies, length), generator=generator)
    ids[:, 0], ids[:, -1] = bos_id, eos_id
    model.decoder.initialize(TrainingSummary(torch.randn(n_studies, width, generator=generator),
                                             torch.randn(n_studies, width, generator=generator), ids,
                                             [str(i) for i in range(n_studies)]))
