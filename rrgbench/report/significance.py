"""Paired significance tests between leaderboard rows, from the studies the records carry.

Comparisons: every row against the top row (``vs #1``) and every ablation against its base, on the board's
tested metrics (the sort metric, then CE micro-F1 and BLEU-4; never METEOR, which needs Java).

Units: a record carries its scored studies (``studies``: id, prediction, reference). Two rows are paired
run by run on the seeds both have, and the test pools the (seed, study) units of those runs: both rows'
predictions of one study under one seed form a pair. Rows without a common seed are paired only when each
has one run. Both rows' units are rescored with the scoring engine (:func:`rrgbench.scoring.engine.score`,
the labeler and uncertain-label mapping their records name), so the tested figure of a multi-seed row is
its metric over the pooled units, which can differ slightly from the mean over seeds the tables show.

Test: the paired bootstrap of :func:`rrgbench.metrics.statistics.paired_bootstrap_test` (:data:`RESAMPLES`
shared resamples of the units, seed 0, two-sided). Correction: Holm-Bonferroni within each family of
comparisons, one family per (kind of comparison, metric); a difference is significant when its adjusted
p-value is below :data:`ALPHA`. No test (and a note saying why) when a record has no studies (version-1
records, records written before studies were kept), the rows scored different studies or references,
their labelers differ, or the metric is unavailable on rescoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rrgbench.errors import RRGBenchError
from rrgbench.record import RunRecord
from rrgbench.report.records import labeler_of

ALPHA = 0.05
RESAMPLES = 1000
SEED = 0
METHOD = (f"paired bootstrap ({RESAMPLES} shared resamples of (seed, study) units, two-sided); Holm-Bonferroni "
          f"within each family (comparison kind x metric); α = {ALPHA}")


@dataclass
class Comparison:
    """One paired comparison ``a - b`` of one metric; numbers are None when ``note`` says why."""

    delta: float | None = None
    ci95: tuple[float, float] | None = None
    p: float | None = None
    p_holm: float | None = None
    units: int = 0
    paired_on: str = ""  # e.g. "seeds 0,1,2"
    note: str | None = None

    @property
    def significant(self) -> bool | None:
        return None if self.p_holm is None else self.p_holm < ALPHA


@dataclass
class Significance:
    """Every paired comparison of a board, keyed by (row, metric) and (base, variant, metric)."""

    best: str | None
    vs_best: dict[tuple[str, str], Comparison] = field(default_factory=dict)
    ablations: dict[tuple[str, str, str], Comparison] = field(default_factory=dict)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Units:
    """The pooled (seed, study) units of a pair of rows: which seeds of each row, in unit order."""

    seeds_a: tuple[Any, ...]
    seeds_b: tuple[Any, ...]
    paired_on: str


def pairing(a: Sequence[RunRecord], b: Sequence[RunRecord]) -> Units | str:
    """How two rows' runs pair up, or why they cannot."""
    if any(not r.studies for r in (*a, *b)):
        return "no paired test: a record has no scored studies (version-1 record or written before studies were kept)"
    if labeler_of(a) != labeler_of(b):
        return f"no paired test: different CE labelers ({labeler_of(a)} vs {labeler_of(b)})"
    seeds_a, seeds_b = {r.seed: r for r in a}, {r.seed: r for r in b}
    common = sorted((s for s in seeds_a if s in seeds_b), key=str)
    if common:
        shown = ",".join(str(s) for s in common)
        return Units(tuple(common), tuple(common), f"seed {shown}" if len(common) == 1 else f"seeds {shown}")
    if len(a) == 1 and len(b) == 1:
        return Units((a[0].seed,), (b[0].seed,), f"one run each (seed {a[0].seed} against seed {b[0].seed})")
    return "no paired test: the rows have no seed in common"


def _studies(record: RunRecord) -> dict[str, tuple[str, str]]:
    return {s.id: (s.prediction, s.reference) for s in record.studies}


def aligned(a: Sequence[RunRecord], b: Sequence[RunRecord], units: Units) -> str | None:
    """None when every paired run scored the same studies against the same references, else the reason."""
    by_seed_a, by_seed_b = {r.seed: r for r in a}, {r.seed: r for r in b}
    for seed_a, seed_b in zip(units.seeds_a, units.seeds_b, strict=True):
        studies_a, studies_b = _studies(by_seed_a[seed_a]), _studies(by_seed_b[seed_b])
        if set(studies_a) != set(studies_b):
            return "no paired test: the runs scored different studies"
        if any(studies_a[i][1] != studies_b[i][1] for i in studies_a):
            return "no paired test: the runs scored the studies against different references"
    return None


class Rescorer:
    """Scores a row's pooled units once per set of seeds (headline metrics only) and keeps the results, and
    runs each comparison once (an ablation's base that is also the top row is compared once, not twice)."""

    def __init__(self, board: Any, registry: Any) -> None:
        self.board, self.registry = board, registry
        self.cache: dict[tuple[str, tuple[Any, ...]], dict[str, Any] | str] = {}
        self.tests: dict[tuple[str, str, str], Comparison] = {}

    def compare(self, a: str, b: str, metric: str) -> Comparison:
        """:func:`compare`, once per (a, b, metric); each caller gets its own copy (Holm adjusts it per family)."""
        key = (a, b, metric)
        if key not in self.tests:
            self.tests[key] = compare(self, a, b, metric)
        return replace(self.tests[key])

    def results(self, label: str, seeds: tuple[Any, ...]) -> dict[str, Any] | str:
        key = (label, seeds)
        if key not in self.cache:
            self.cache[key] = self._score(label, seeds)
        return self.cache[key]

    def _score(self, label: str, seeds: tuple[Any, ...]) -> dict[str, Any] | str:
        from rrgbench.scoring.engine import ScoringContext, group_of, score

        by_seed = {r.seed: r for r in self.board.runs[label]}
        predictions, references = [], []
        for seed in seeds:
            for study in sorted(by_seed[seed].studies, key=lambda s: s.id):
                predictions.append(study.prediction)
                references.append(study.reference)
        clinical = by_seed[seeds[0]].protocol.metric_groups.get("clinical") or {}
        context = ScoringContext(labeler=str(clinical.get("labeler", "chexpert-rules")),
                                 uncertain=str(clinical.get("uncertain_mapping", "r2gen")), registry=self.registry,
                                 wanted=frozenset(self.board.tested))
        try:
            for key in self.board.tested:  # a key no longer registered: a note, not a missing result
                group_of(context.resolved_registry(), key)
            return score(predictions, references, context, with_ci=False).results  # groups with a tested key
        except RRGBenchError as exc:
            return f"no paired test: rescoring failed: {exc}"


def compare(rescorer: Rescorer, a: str, b: str, metric: str) -> Comparison:
    """Row ``a`` against row ``b`` on one metric (raw p-value; Holm is applied per family afterwards)."""
    from rrgbench.metrics.statistics import paired_bootstrap_test

    runs_a, runs_b = rescorer.board.runs[a], rescorer.board.runs[b]
    units = pairing(runs_a, runs_b)
    if isinstance(units, str):
        return Comparison(note=units)
    problem = aligned(runs_a, runs_b, units)
    if problem:
        return Comparison(note=problem)
    scored_a, scored_b = rescorer.results(a, units.seeds_a), rescorer.results(b, units.seeds_b)
    for scored in (scored_a, scored_b):
        if isinstance(scored, str):
            return Comparison(note=scored)
    result_a, result_b = scored_a[metric], scored_b[metric]  # type: ignore[index]
    if result_a.value is None or result_b.value is None:
        reason = result_a.unavailable if result_a.value is None else result_b.unavailable
        return Comparison(note=f"no paired test: {metric} unavailable on rescoring ({reason})")
    found = paired_bootstrap_test(result_a, result_b, n_resamples=RESAMPLES, seed=SEED)
    return Comparison(found["delta"], tuple(found["ci95"]), found["p_value"], None, found["n_studies"], units.paired_on)


def _adjust(tests: Sequence[Comparison]) -> None:
    done = [t for t in tests if t.p is not None]
    for test, adjusted in zip(done, holm([t.p for t in done]), strict=True):  # type: ignore[misc]
        test.p_holm = adjusted


def significance_tests(board: Any, registry: Any = None) -> Significance:
    """Every row against the top row and every ablation against its base, on ``board.tested``."""
    best = next((r for r in board.rows if board.cells[(r, board.sort.key)].mean is not None), None)
    found = Significance(best)
    if not board.tested:
        return found
    rescorer = Rescorer(board, registry)
    for metric in board.tested:
        family = []
        for label in board.rows:
            if best is not None and label != best:
                found.vs_best[(label, metric)] = test = rescorer.compare(label, best, metric)
                family.append(test)
        _adjust(family)
        family = []
        for base, variants in board.families.items():
            for variant in variants:
                found.ablations[(base, variant, metric)] = test = rescorer.compare(variant, base, metric)
                family.append(test)
        _adjust(family)
    return found
