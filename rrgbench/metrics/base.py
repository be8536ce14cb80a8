"""The result type every metric returns: the aggregate, per-study scores, and how to resample it.

A metric is either a mean of per-study scores (ROUGE-L, METEOR segments) or a corpus statistic
(corpus BLEU, CIDEr-D, micro-F1). Either way it exposes ``resample(indices)`` so that bootstrap
confidence intervals and paired tests recompute the *same* aggregate on each resample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Resampler = Callable[[np.ndarray], np.ndarray]
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

    def resampled(self, indices: np.ndarray) -> np.ndarray:
        """Aggregate values for each row of ``indices`` ([R, N] integer positions)."""
        if self.value is None:
            raise ValueError(f"cannot resample an unavailable metric: {self.unavailable}")
        if self.resample is not None:
            return np.asarray(self.resample(indices), dtype=float)
        if self.per_sample is None:
            raise ValueError("metric has neither per-sample scores nor a resampler")
        scores = np.asarray(self.per_sample, dtype=float)
        return scores[indices].mean(axis=1)
