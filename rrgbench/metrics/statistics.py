"""Study-level resampling statistics: bootstrap CIs, paired significance tests and multi-seed mean ± std.

Owns everything that resamples *studies* (never reports' tokens or sentences):

- ``bootstrap_indices`` draws the ``[R, N]`` index matrix; ``bootstrap_ci`` turns a ``MetricResult`` into a
  percentile interval by recomputing the metric's own aggregate on every resample
  (``MetricResult.resampled``), so corpus statistics such as corpus BLEU are recomputed as corpus
  statistics, not averaged.
- ``paired_bootstrap_test`` resamples the same studies for both systems (one shared index matrix). Its
  p-value is the two-sided shift test of Efron & Tibshirani: ``(1 + #{|d* - d| >= |d|}) / (R + 1)`` where
  ``d`` is the observed difference and ``d*`` the resampled ones.
- ``approximate_randomization_test`` swaps the two systems' outputs of each study with probability 0.5 and
  recomputes the difference; ``p = (1 + #{|d_t| >= |d|}) / (T + 1)``. A mixed system's aggregate can be
  recomputed for two kinds of metric, without looking at ``details``: mean-type metrics (no ``resample``;
  the aggregate is the mean of ``per_sample``) and additive corpus statistics, whose resampler is an
  ``AdditiveResampler`` (an aggregate of summed per-study sufficient statistics, e.g. corpus BLEU or
  micro-F1). Any other resampler is opaque: a mixed system cannot be scored from it, and the test raises
  ``ValueError`` (use the paired bootstrap instead).
- ``AdditiveResampler`` is the generic resampler for such corpus statistics: it sums per-study statistics
  with a selection-count matrix product, so 1,000 resamples of thousands of studies take milliseconds.
- ``mean_std`` aggregates a metric over training seeds (sample standard deviation).

Both tests compare ``a`` against ``b`` and report ``delta = a.value - b.value``; the resampled statistic is
the metric's resampling aggregate (identical to ``value`` except for METEOR, whose jar aggregate differs
slightly from the segment mean its resampling uses).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rrgbench.metrics.base import MetricResult

_COUNT_CELLS_PER_CHUNK = 4_000_000
"""Upper bound on R*N cells of a selection-count block, to bound memory for large resampling jobs."""

_TIE_TOLERANCE = 1e-12
"""Differences this close to the observed one count as 'at least as extreme' (guards float re-association)."""


def bootstrap_indices(n: int, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """``[n_resamples, n]`` study positions drawn with replacement, reproducible from ``seed``."""
    if n < 1:
        raise ValueError(f"cannot bootstrap {n} studies; need at least one")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_resamples, n), dtype=np.int64)


def selection_counts(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each of ``n`` studies occurs in each row of ``indices``: ``[R, n]`` float64 counts."""
    idx = np.atleast_2d(np.asarray(indices, dtype=np.int64))
    if idx.ndim != 2:
        raise ValueError(f"indices must be [R, N], got shape {np.shape(indices)}")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"study indices must lie in [0, {n}), got [{idx.min()}, {idx.max()}]")
    rows = idx.shape[0]
    offsets = np.arange(rows, dtype=np.int64)[:, None] * n
    counts = np.bincount((idx + offsets).ravel(), minlength=rows * n)
    return counts.reshape(rows, n).astype(np.float64)


@dataclass(frozen=True, eq=False)
class AdditiveResampler:
    """Resampler for a corpus statistic that is a function of per-study statistics summed over studies.

    ``stats`` is ``[N, K]`` (one row per study, in input order); ``aggregate`` maps summed statistics
    ``[R, K]`` to ``R`` metric values; ``kind`` names the statistic, so that two results can be checked to
    be comparable. Calling it with an index matrix ``[R, N']`` recomputes the statistic exactly on each
    resampled multiset.
    """

    stats: np.ndarray
    aggregate: Callable[[np.ndarray], np.ndarray]
    kind: str

    @property
    def n_studies(self) -> int:
        """Number of studies the statistics describe."""
        return int(self.stats.shape[0])

    def totals(self, indices: np.ndarray) -> np.ndarray:
        """Summed statistics ``[R, K]`` for each row of ``indices``."""
        idx = np.atleast_2d(np.asarray(indices, dtype=np.int64))
        rows_per_chunk = max(1, _COUNT_CELLS_PER_CHUNK // max(1, self.n_studies))
        stats = np.asarray(self.stats, dtype=np.float64)
        blocks = [
            selection_counts(idx[start : start + rows_per_chunk], self.n_studies) @ stats
            for start in range(0, idx.shape[0], rows_per_chunk)
        ]
        return np.concatenate(blocks, axis=0)

    def full_totals(self) -> np.ndarray:
        """Summed statistics of the whole set, ``[1, K]``."""
        return np.asarray(self.stats, dtype=np.float64).sum(axis=0, keepdims=True)

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        return np.asarray(self.aggregate(self.totals(indices)), dtype=np.float64)


def study_count(result: MetricResult) -> int:
    """Number of studies behind ``result`` (per-sample scores, resampler or ``details['n_studies']``)."""
    if result.per_sample is not None:
        return len(result.per_sample)
    if isinstance(result.resample, AdditiveResampler):
        return result.resample.n_studies
    if "n_studies" in result.details:
        return int(result.details["n_studies"])
    raise ValueError(
        "metric result has no per-sample scores, no additive resampler and no details['n_studies']"
    )


def _percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1), got {level}")
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_ci(
    result: MetricResult, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``result``'s aggregate over resampled studies; None if unavailable."""
    if result.value is None:
        return None
    indices = bootstrap_indices(study_count(result), n_resamples, seed)
    return _percentile_interval(result.resampled(indices), level)


def _check_pair(a: MetricResult, b: MetricResult) -> int:
    """Validate that two results can be compared study by study; return the number of studies."""
    for name, result in (("a", a), ("b", b)):
        if result.value is None:
            raise ValueError(f"cannot compare: metric of system {name} is unavailable ({result.unavailable})")
    if a.higher_is_better != b.higher_is_better:
        raise ValueError(
            "cannot compare results of metrics with opposite directions (higher_is_better differs)"
        )
    n_a, n_b = study_count(a), study_count(b)
    if n_a != n_b:
        raise ValueError(f"paired comparison needs the same studies: system a has {n_a}, system b has {n_b}")
    return n_a


def _observed_statistic(result: MetricResult, n: int) -> float:
    """The resampling aggregate on the unresampled set (equals ``value`` except for METEOR-like metrics)."""
    return float(result.resampled(np.arange(n, dtype=np.int64)[None, :])[0])


def _two_sided_count(deviations: np.ndarray, observed: float) -> int:
    threshold = abs(observed) - _TIE_TOLERANCE * max(1.0, abs(observed))
    return int(np.count_nonzero(np.abs(deviations) >= threshold))


def paired_bootstrap_test(
    a: MetricResult, b: MetricResult, n_resamples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Paired bootstrap of ``a - b`` on aligned studies: delta, its 95% percentile CI, two-sided p-value."""
    n = _check_pair(a, b)
    indices = bootstrap_indices(n, n_resamples, seed)
    deltas = a.resampled(indices) - b.resampled(indices)
    observed = _observed_statistic(a, n) - _observed_statistic(b, n)
    extreme = _two_sided_count(deltas - observed, observed)
    return {
        "delta": float(a.value) - float(b.value),  # type: ignore[arg-type]  # checked by _check_pair
        "ci95": _percentile_interval(deltas, 0.95),
        "p_value": (1 + extreme) / (n_resamples + 1),
        "n_resamples": n_resamples,
        "n_studies": n,
        "seed": seed,
        "method": "paired bootstrap (shared study resamples; two-sided shift test)",
    }


def _swap_matrix(n_trials: int, n: int, seed: int) -> np.ndarray:
    """``[T, n]`` float matrix, 1.0 where a study's outputs are swapped between the systems."""
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    rng = np.random.default_rng(seed)
    return (rng.random((n_trials, n)) < 0.5).astype(np.float64)


def _randomized_mean_deltas(a: MetricResult, b: MetricResult, swaps: np.ndarray) -> tuple[float, np.ndarray]:
    diff = np.asarray(a.per_sample, dtype=np.float64) - np.asarray(b.per_sample, dtype=np.float64)
    n = diff.shape[0]
    return float(diff.sum() / n), (diff.sum() - 2.0 * (swaps @ diff)) / n


def _randomized_additive_deltas(
    ra: AdditiveResampler, rb: AdditiveResampler, swaps: np.ndarray
) -> tuple[float, np.ndarray]:
    total_a, total_b = ra.full_totals(), rb.full_totals()
    shift = swaps @ (np.asarray(rb.stats, dtype=np.float64) - np.asarray(ra.stats, dtype=np.float64))
    observed = float(ra.aggregate(total_a)[0] - ra.aggregate(total_b)[0])
    return observed, np.asarray(
        ra.aggregate(total_a + shift) - ra.aggregate(total_b - shift), dtype=np.float64
    )


def _randomization_kind(a: MetricResult, b: MetricResult) -> str:
    """'mean' or 'additive' when a mixed system can be scored, else raise ValueError."""
    if a.resample is None and b.resample is None and a.per_sample is not None and b.per_sample is not None:
        return "mean"
    ra, rb = a.resample, b.resample
    if isinstance(ra, AdditiveResampler) and isinstance(rb, AdditiveResampler):
        if ra.kind != rb.kind or ra.stats.shape != rb.stats.shape:
            raise ValueError(f"cannot mix different corpus statistics ({ra.kind!r} vs {rb.kind!r})")
        return "additive"
    raise ValueError(
        "approximate randomization needs a mean-type metric (per-sample scores, no resampler) or an additive "
        "corpus statistic (statistics.AdditiveResampler) for both systems; this metric's resampler is "
        "opaque, so a mixed system cannot be scored - use paired_bootstrap_test instead"
    )


def approximate_randomization_test(
    a: MetricResult, b: MetricResult, n_trials: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Paired approximate randomization of ``a - b``: swap each study's outputs with probability 0.5."""
    n = _check_pair(a, b)
    kind = _randomization_kind(a, b)
    swaps = _swap_matrix(n_trials, n, seed)
    if kind == "mean":
        observed, deltas = _randomized_mean_deltas(a, b, swaps)
    else:
        observed, deltas = _randomized_additive_deltas(a.resample, b.resample, swaps)  # type: ignore[arg-type]
    extreme = _two_sided_count(deltas, observed)
    return {
        "delta": float(a.value) - float(b.value),  # type: ignore[arg-type]  # checked by _check_pair
        "p_value": (1 + extreme) / (n_trials + 1),
        "n_trials": n_trials,
        "n_studies": n,
        "seed": seed,
        "method": f"approximate randomization ({kind} statistic; two-sided)",
    }


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) over seeds; the deviation of a single value is 0."""
    array = np.asarray(list(values), dtype=np.float64)
    if array.size == 0:
        raise ValueError("mean_std needs at least one value")
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return float(array.mean()), std
