"""Scoring predictions against references with every registered metric group, plus 95% bootstrap CIs.

Used by training runs, evaluations, ``rrgbench score``, ``rrgbench compare`` and the Python API alike, so
every number comes out of the same code. Each metric group declares its keys (name, direction, section)
where it is registered; the engine asks a group only for the keys not skipped, records a group that cannot
run (no Java, no weights) as unavailable with the reason, and never reports 0 for that reason.

:func:`preflight` runs, before any training or scoring, each wanted group's registered ``preflight`` check:
a setting the user chose that cannot work (``--chexbert`` naming an absent or wrong file) fails then, in
seconds, instead of being discovered after training.

The uncertain-label mapping ``auto`` (the default) is the labeler's own, declared where the labeler is
registered (``uncertain=``; ``r2gen`` when it declares none): :meth:`ScoringContext.uncertain_mapping`.

A full scoring (every key wanted) logs each group as a phase (``scoring: meteor ...``, ``done in 12.1 s``)
and the bootstrap; a partial one (a validation's few keys) does so at debug level only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rrgbench.errors import ConfigError, RRGBenchError, UnavailableError, UnknownNameError, did_you_mean
from rrgbench.extension.plugins import Entry, Registry
from rrgbench.logs import LOGGER, phase
from rrgbench.metrics.base import GroupResult, MetricKey, MetricResult, metric_keys
from rrgbench.record import MetricValue

AUTO_MAPPING = "auto"
DEFAULT_LABELER_MAPPING = "r2gen"  # a labeler that declares no mapping of its own: only 1 is positive
MAX_RESAMPLES = 1_000_000  # bootstrap resamples: the cap of the scoring.resamples option (rrgbench.config)


@dataclass
class ScoringContext:
    """Settings shared by metric groups: the labeler for CE metrics, the bootstrap, local model files."""

    labeler: str = "chexpert-rules"
    uncertain: str = "auto"  # r2gen, chexbert, or auto: the labeler's own (see uncertain_mapping)
    n_resamples: int = 1000
    seed: int = 0
    registry: Registry | None = None
    skip: frozenset[str] = frozenset()  # metric keys the user chose not to compute (recorded as unavailable)
    chexbert: str | None = None  # CheXbert weights file (``--chexbert``)
    radgraph: str | None = None  # RadGraph model folder (``--radgraph``)
    wanted: frozenset[str] | None = None  # compute only these keys (None: all; e.g. validation's select metric)

    def resolved_registry(self) -> Registry:
        if self.registry is None:
            from rrgbench.extension.plugins import registry as default_registry

            self.registry = default_registry()
        return self.registry

    def check(self) -> ScoringContext:
        """Refuse settings that cannot score: an unknown labeler, uncertain-label mapping, ``skip`` or ``wanted``
        key, resamples out of range, a negative seed (before anything is computed, so a run does not train first
        and fail at the end)."""
        from rrgbench.metrics.clinical import get_mapping

        registry = self.resolved_registry()
        registry.get("labeler", self.labeler)
        if self.uncertain != AUTO_MAPPING:
            get_mapping(self.uncertain)
        for key in [*sorted(self.skip), *sorted(self.wanted or ())]:
            group_of(registry, key)
        if isinstance(self.n_resamples, bool) or not 1 <= self.n_resamples <= MAX_RESAMPLES:
            raise ConfigError(f"resamples must be between 1 and {MAX_RESAMPLES:,}, got {self.n_resamples}")
        if self.seed < 0:
            raise ConfigError(f"the resampling seed must be a non-negative integer, got {self.seed}")
        return self

    def labeler_options(self) -> dict[str, Any]:
        """Options for building the labeler: the CheXbert weights file when one was given and it takes one."""
        entry = self.resolved_registry().get("labeler", self.labeler)
        from rrgbench.extension.options import describe

        names = {info.name for info in describe(entry.options)}
        return {"checkpoint": self.chexbert} if self.chexbert and "checkpoint" in names else {}

    def uncertain_mapping(self) -> str:
        """The uncertain-label mapping in effect: ``uncertain``, or for ``auto`` the one the labeler declared."""
        if self.uncertain != AUTO_MAPPING:
            return self.uncertain
        entry = self.resolved_registry().get("labeler", self.labeler)
        return str(entry.extra.get("uncertain", DEFAULT_LABELER_MAPPING))


@dataclass
class Scores:
    """Every metric of one scoring: raw results (for resampling), record values, protocol entries, tables."""

    results: dict[str, MetricResult]
    values: dict[str, MetricValue]
    protocol: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def per_study(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        rows = []
        for i, study_id in enumerate(ids):
            row: dict[str, Any] = {"id": study_id}
            for key, result in self.results.items():
                if result.per_sample is not None:
                    row[key] = result.per_sample[i]
            rows.append(row)
        return rows


def declared_keys(entry: Entry) -> tuple[MetricKey, ...]:
    """The keys a registered metric group declared (its own name when it declared none)."""
    return metric_keys(entry.extra.get("keys") or (entry.name,))


def all_keys(registry: Registry) -> dict[str, tuple[str, MetricKey]]:
    """Metric key -> (group name, declaration), over every registered metric group."""
    return {key.name: (entry.name, key) for entry in registry.entries("metric") for key in declared_keys(entry)}


def group_of(registry: Registry, key: str) -> str:
    """The metric group that computes ``key``; UnknownNameError with suggestions otherwise."""
    keys = all_keys(registry)
    if key not in keys:
        raise UnknownNameError(f"unknown metric '{key}'{did_you_mean(key, keys)}; known: {', '.join(keys)}")
    return keys[key][0]


def _wanted_keys(entry: Entry, context: ScoringContext) -> list[MetricKey]:
    return [k for k in declared_keys(entry) if context.wanted is None or k.name in context.wanted]


def preflight(context: ScoringContext, groups: Sequence[str] | None = None, *, given_files_only: bool = False) -> None:
    """Run the registered ``preflight`` of every group with a wanted, unskipped key; ConfigError if one fails.

    With ``given_files_only`` (scoring without training: nothing is lost by scoring) the checks run only when
    the user named a local model file (``--chexbert``, ``--radgraph``); otherwise a group that cannot run is
    recorded as unavailable, as always.
    """
    if given_files_only and not (context.chexbert or context.radgraph):
        return
    registry = context.resolved_registry()
    for name in list(groups) if groups else registry.names("metric"):
        entry = registry.get("metric", name)
        check = entry.extra.get("preflight")
        if check is None or all(k.name in context.skip for k in _wanted_keys(entry, context)):
            continue
        if isinstance(check, str):
            check = Entry("metric", name, check, plugin=entry.plugin).load()
        try:
            check(context)
        except UnavailableError as exc:
            raise ConfigError(f"{name} metrics cannot run: {exc}") from None


def score(predictions: Sequence[str], references: Sequence[str], context: ScoringContext,
          groups: Sequence[str] | None = None, with_ci: bool = True) -> Scores:
    """Every metric key of the chosen groups (default: all registered) with value, CI and reason."""
    if len(predictions) != len(references):
        raise RRGBenchError(f"{len(predictions)} predictions but {len(references)} references")
    registry = context.resolved_registry()
    scores = Scores({}, {})
    names = list(groups) if groups else registry.names("metric")
    say = LOGGER.info if context.wanted is None else LOGGER.debug
    for name in names:
        entry = registry.get("metric", name)
        keys = _wanted_keys(entry, context)
        if keys:
            with phase(f"scoring: {name}", say):
                _score_group(entry, keys, list(predictions), list(references), context, scores)
    with phase(f"scoring: values{' and 95% CIs' if with_ci else ''}", say):
        scores.values = {key: metric_value(result, _declaration(registry, key), context, with_ci)
                         for key, result in scores.results.items()}
    return scores


def _score_group(entry: Entry, keys: list[MetricKey], predictions: list[str], references: list[str],
                 context: ScoringContext, scores: Scores) -> None:
    wanted = [k for k in keys if k.name not in context.skip]
    computed = GroupResult({})
    if wanted:
        try:
            computed = GroupResult.of(entry.load()(predictions, references, context))
        except UnavailableError as exc:
            computed = GroupResult({k.name: MetricResult.missing(str(exc)) for k in wanted})
    for key in keys:
        if key.name in context.skip:
            scores.results[key.name] = MetricResult.missing(f"skipped on request (--skip {key.name})")
        else:
            scores.results[key.name] = computed.metrics.get(key.name) or MetricResult.missing(
                f"metric group '{entry.name}' did not return it")
    if computed.protocol:
        scores.protocol[entry.name] = computed.protocol
    scores.tables.update(computed.tables)


def _declaration(registry: Registry, key: str) -> tuple[str | None, MetricKey]:
    found = all_keys(registry).get(key)
    return found if found is not None else (None, MetricKey(key))


def metric_value(result: MetricResult, declared: tuple[str | None, MetricKey], context: ScoringContext,
                 with_ci: bool) -> MetricValue:
    """The record form of one metric: its declared direction and group, the value and its bootstrap CI."""
    from rrgbench.metrics.statistics import bootstrap_ci

    group, key = declared
    value = MetricValue(value=result.value, higher_is_better=key.higher_is_better, group=group)
    if result.value is None:
        value.unavailable = result.unavailable or "not computed"
        return value
    if with_ci and (result.per_sample is not None or result.resample is not None):
        ci = bootstrap_ci(result, n_resamples=context.n_resamples, seed=context.seed)
        value.ci95 = list(ci) if ci is not None else None
    value.details = dict(result.details)
    return value
