"""What metrics declare and return: their keys (name, direction, section), and per metric the aggregate,
per-study scores and how to resample it; per metric group also protocol entries and tables.

A metric is either a mean of per-study scores (ROUGE-L, METEOR segments) or a corpus statistic
(corpus BLEU, CIDEr-D, micro-F1). Either way it exposes ``resample(indices)`` so that bootstrap
confidence intervals and paired tests recompute the *same* aggregate on each resample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Resampler = Callable[[Any], Any]
"""Maps an index matrix ``[R, N]`` (R resamples of N study positions) to R aggregate values."""


@dataclass
class MetricResult:
    """One metric on one set of predictions.

    ``value`` is None exactly when the metric could not be computed, and then ``unavailable`` says why.
    ``per_sample`` is aligned with the input order. ``resample`` recomputes the corpus aggregate on
    resampled study indices; when absent the aggregate is the mean of ``per_sample``.
    """

    value: float | None
    per_sample: list[float] | None = None
    unavailable: str | None = None
    higher_is_better: bool = True
    resample: Resampler | None = field(default=None, repr=False, compare=False)
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def missing(cls, reason: str, higher_is_better: bool = True) -> MetricResult:
        """A metric that could not run, with the reason the user will read."""
        return cls(value=None, unavailable=reason, higher_is_better=higher_is_better)

    def resampled(self, indices: Any) -> Any:
        """Aggregate values for each row of ``indices`` ([R, N] integer positions, a numpy array)."""
        import numpy as np

        if self.value is None:
            raise ValueError(f"cannot resample an unavailable metric: {self.unavailable}")
        if self.resample is not None:
            return np.asarray(self.resample(indices), dtype=float)
        if self.per_sample is None:
            raise ValueError("metric has neither per-sample scores nor a resampler")
        scores = np.asarray(self.per_sample, dtype=float)
        return scores[indices].mean(axis=1)


SECTIONS = ("language", "clinical", "other")


@dataclass(frozen=True)
class MetricKey:
    """One key a metric group produces, declared once where the group is registered."""

    name: str
    higher_is_better: bool = True
    section: str = "other"  # where a leaderboard shows it: language, clinical or other
    label: str = ""  # a short column title (default: the name)

    def __post_init__(self) -> None:
        if self.section not in SECTIONS:
            raise ValueError(f"metric key {self.name}: section must be one of {', '.join(SECTIONS)}")


def metric_keys(declared: Iterable[MetricKey | str]) -> tuple[MetricKey, ...]:
    """Normalise a registration's ``keys=`` (MetricKey objects, or plain names meaning higher-is-better)."""
    return tuple(key if isinstance(key, MetricKey) else MetricKey(str(key)) for key in declared)


@dataclass
class GroupResult:
    """What one metric group returns: its metrics, what it used (recorded in the protocol) and side tables.

    ``tables`` are lists of flat rows (e.g. the clinical group's per-observation F1): a run writes each as
    ``<name>.csv`` and keeps it in its record; a leaderboard shows them. Nothing here writes files.
    """

    metrics: dict[str, MetricResult]
    protocol: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def of(cls, returned: GroupResult | Mapping[str, MetricResult]) -> GroupResult:
        """Accept a plain ``{key: MetricResult}`` from a simple metric function."""
        return returned if isinstance(returned, GroupResult) else cls(dict(returned))
