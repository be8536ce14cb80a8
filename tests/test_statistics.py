"""Tests for rrgbench.metrics.statistics: bootstrap CIs, paired bootstrap, randomization test, mean ± std."""

from __future__ import annotations

import numpy as np
import pytest

from rrgbench.metrics import statistics
from rrgbench.metrics.base import MetricResult
from rrgbench.metrics.statistics import (
    AdditiveResampler,
    approximate_randomization_test,
    bootstrap_ci,
    bootstrap_indices,
    mean_std,
    paired_bootstrap_test,
    selection_counts,
)


def mean_metric(scores: np.ndarray) -> MetricResult:
    return MetricResult(value=float(np.mean(scores)), per_sample=[float(x) for x in scores])


def ratio_of_sums(totals: np.ndarray) -> np.ndarray:
    return totals[:, 0] / totals[:, 1]


def ratio_metric(numerators: np.ndarray, denominators: np.ndarray, kind: str = "ratio") -> MetricResult:
    """A corpus statistic (like micro precision): sum of numerators over sum of denominators."""
    stats = np.column_stack([numerators, denominators]).astype(float)
    resampler = AdditiveResampler(stats, ratio_of_sums, kind=kind)
    return MetricResult(value=float(numerators.sum() / denominators.sum()), resample=resampler)


def scores(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.5 + shift, 0.2, size=n)


# ---------------------------------------------------------------------------------- indices and resamplers


def test_bootstrap_indices_shape_range_and_seed() -> None:
    indices = bootstrap_indices(50, n_resamples=200, seed=3)
    assert indices.shape == (200, 50) and indices.min() >= 0 and indices.max() < 50
    assert np.array_equal(indices, bootstrap_indices(50, n_resamples=200, seed=3))
    assert not np.array_equal(indices, bootstrap_indices(50, n_resamples=200, seed=4))
    assert len(np.unique(indices)) == 50  # draws with replacement cover all studies over 200 resamples
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_indices(0)


def test_selection_counts_match_a_naive_count() -> None:
    indices = bootstrap_indices(7, n_resamples=5, seed=1)
    counts = selection_counts(indices, 7)
    naive = np.array([[np.sum(row == i) for i in range(7)] for row in indices])
    assert np.array_equal(counts, naive) and counts.sum(axis=1).tolist() == [7] * 5
    with pytest.raises(IndexError):
        selection_counts(np.array([[0, 7]]), 7)


@pytest.mark.parametrize("cells_per_chunk", [4_000_000, 30])
def test_additive_resampler_recomputes_the_corpus_statistic(
    monkeypatch: pytest.MonkeyPatch, cells_per_chunk: int
) -> None:
    monkeypatch.setattr(statistics, "_COUNT_CELLS_PER_CHUNK", cells_per_chunk)
    rng = np.random.default_rng(0)
    numerators, denominators = rng.integers(0, 10, 40), rng.integers(10, 20, 40)
    result = ratio_metric(numerators, denominators)
    indices = bootstrap_indices(40, n_resamples=25, seed=2)
    expected = numerators[indices].sum(axis=1) / denominators[indices].sum(axis=1)
    assert np.allclose(result.resampled(indices), expected, rtol=0, atol=1e-15)
    assert result.resampled(np.arange(40)[None, :])[0] == pytest.approx(result.value, abs=1e-15)


# ---------------------------------------------------------------------------------- bootstrap CI


def test_ci_contains_the_value_and_narrows_with_more_data() -> None:
    small, large = mean_metric(scores(100, seed=0)), mean_metric(scores(2500, seed=0))
    small_ci, large_ci = bootstrap_ci(small), bootstrap_ci(large)
    assert small_ci is not None and large_ci is not None
    assert small_ci[0] < small.value < small_ci[1]
    assert large_ci[0] < large.value < large_ci[1]
    assert (large_ci[1] - large_ci[0]) < (small_ci[1] - small_ci[0]) / 3  # ~ 1/sqrt(25) as wide
    assert (small_ci[1] - small_ci[0]) == pytest.approx(2 * 1.96 * 0.2 / 10, rel=0.25)


def test_ci_is_reproducible_with_a_seed_and_nested_by_level() -> None:
    result = mean_metric(scores(300, seed=1))
    assert bootstrap_ci(result, seed=5) == bootstrap_ci(result, seed=5)
    assert bootstrap_ci(result, seed=5) != bootstrap_ci(result, seed=6)
    wide, narrow = bootstrap_ci(result, level=0.95), bootstrap_ci(result, level=0.5)
    assert wide is not None and narrow is not None
    assert wide[0] < narrow[0] < narrow[1] < wide[1]
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(result, level=1.5)


def test_ci_of_a_corpus_statistic_uses_its_resampler() -> None:
    rng = np.random.default_rng(3)
    numerators, denominators = rng.integers(0, 5, 400), rng.integers(1, 40, 400)
    result = ratio_metric(numerators, denominators)
    interval = bootstrap_ci(result)
    assert interval is not None and interval[0] < result.value < interval[1]
    per_study = mean_metric(numerators / denominators)  # a different statistic: the mean of per-study ratios
    assert bootstrap_ci(per_study) != interval


def test_ci_is_none_for_an_unavailable_metric() -> None:
    assert bootstrap_ci(MetricResult.missing("METEOR needs Java")) is None


# ---------------------------------------------------------------------------------- paired tests


def test_paired_bootstrap_detects_a_clearly_better_system() -> None:
    base = scores(300, seed=2)
    better, worse = (
        mean_metric(base + 0.05 + np.random.default_rng(9).normal(0, 0.02, 300)),
        mean_metric(base),
    )
    outcome = paired_bootstrap_test(better, worse)
    assert outcome["delta"] == pytest.approx(better.value - worse.value)
    assert outcome["p_value"] < 0.01
    assert 0 < outcome["ci95"][0] < outcome["delta"] < outcome["ci95"][1]
    reverse = paired_bootstrap_test(worse, better)
    assert reverse["delta"] == pytest.approx(-outcome["delta"]) and reverse["p_value"] < 0.01


def test_paired_bootstrap_of_identical_systems_is_not_significant() -> None:
    result = mean_metric(scores(300, seed=4))
    outcome = paired_bootstrap_test(result, result, n_resamples=500, seed=1)
    assert outcome["delta"] == 0.0 and outcome["ci95"] == (0.0, 0.0)
    assert outcome["p_value"] == 1.0


def test_paired_bootstrap_of_equally_good_noisy_systems_has_a_large_p() -> None:
    a, b = mean_metric(scores(300, seed=5)), mean_metric(scores(300, seed=6))
    outcome = paired_bootstrap_test(a, b)
    assert outcome["ci95"][0] < 0 < outcome["ci95"][1]
    assert outcome["p_value"] > 0.05


def test_paired_bootstrap_of_a_corpus_statistic_is_reproducible() -> None:
    rng = np.random.default_rng(8)
    denominators = rng.integers(5, 15, 200)
    a = ratio_metric(rng.binomial(denominators, 0.6), denominators)
    b = ratio_metric(rng.binomial(denominators, 0.4), denominators)
    first, second = paired_bootstrap_test(a, b, seed=3), paired_bootstrap_test(a, b, seed=3)
    assert first == second and first["p_value"] < 0.01


def test_paired_tests_reject_misaligned_or_unavailable_results() -> None:
    a, b = mean_metric(scores(10, seed=0)), mean_metric(scores(11, seed=0))
    with pytest.raises(ValueError, match="same studies"):
        paired_bootstrap_test(a, b)
    with pytest.raises(ValueError, match="unavailable"):
        approximate_randomization_test(a, MetricResult.missing("no java"))
    lower = MetricResult(value=1.0, per_sample=[1.0] * 10, higher_is_better=False)
    with pytest.raises(ValueError, match="directions"):
        paired_bootstrap_test(a, lower)


def test_randomization_detects_a_better_system_and_not_identical_ones() -> None:
    base = scores(300, seed=2)
    better, worse = (
        mean_metric(base + 0.05),
        mean_metric(base + np.random.default_rng(1).normal(0, 0.05, 300)),
    )
    outcome = approximate_randomization_test(better, worse)
    assert outcome["p_value"] < 0.01 and outcome["delta"] > 0
    same = approximate_randomization_test(worse, worse)
    assert same["p_value"] == 1.0 and same["delta"] == 0.0
    assert approximate_randomization_test(better, worse, seed=2) == approximate_randomization_test(
        better, worse, seed=2
    )


def test_randomization_of_an_additive_statistic_matches_the_mean_path() -> None:
    """A ratio with unit denominators is a mean: both code paths must give the same test."""
    a_scores, b_scores = scores(120, seed=11), scores(120, seed=12, shift=0.03)
    ones = np.ones(120)
    as_mean = approximate_randomization_test(mean_metric(a_scores), mean_metric(b_scores), seed=4)
    as_ratio = approximate_randomization_test(
        ratio_metric(a_scores, ones), ratio_metric(b_scores, ones), seed=4
    )
    assert as_ratio["p_value"] == as_mean["p_value"]
    assert as_ratio["delta"] == pytest.approx(as_mean["delta"])


def test_randomization_of_a_corpus_statistic() -> None:
    rng = np.random.default_rng(5)
    denominators = rng.integers(5, 15, 200)
    a = ratio_metric(rng.binomial(denominators, 0.6), denominators)
    b = ratio_metric(rng.binomial(denominators, 0.4), denominators)
    assert approximate_randomization_test(a, b)["p_value"] < 0.01
    assert approximate_randomization_test(a, a)["p_value"] == 1.0


def test_randomization_refuses_opaque_or_mismatched_resamplers() -> None:
    opaque = MetricResult(value=0.5, per_sample=[0.5] * 10, resample=lambda idx: np.full(len(idx), 0.5))
    with pytest.raises(ValueError, match="opaque"):
        approximate_randomization_test(opaque, opaque)
    ones = np.ones(10)
    with pytest.raises(ValueError, match="cannot mix"):
        approximate_randomization_test(ratio_metric(ones, ones, "x"), ratio_metric(ones, ones, "y"))


# ---------------------------------------------------------------------------------- seeds


def test_mean_std_over_seeds() -> None:
    mean, std = mean_std([0.30, 0.32, 0.34])
    assert mean == pytest.approx(0.32) and std == pytest.approx(0.02)
    assert mean_std([0.4]) == (0.4, 0.0)
    with pytest.raises(ValueError, match="at least one"):
        mean_std([])
