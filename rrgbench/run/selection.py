"""Checkpoint selection on the validation split: which metric, its value, and the learning-curve metrics.

Validation scores go through the same engine as the test set (:mod:`rrgbench.scoring.engine`), asked
only for the selection metric and the curve metrics (``train.curve_metrics``), without CIs. What is
validated: every study, or with ``train.validate_studies`` a fixed random subset (:func:`validation_subset`,
drawn from the run's seed, the same studies at every epoch), decoded with ``decode.method`` or, with
``train.validate_method = greedy``, greedily (:func:`validation_method`); both are options, so the run's
config records them.
"""

from __future__ import annotations

import random

from rrgbench.config import RunConfig
from rrgbench.data.cleaning import r2gen_text
from rrgbench.errors import ConfigError
from rrgbench.extension.plugins import Registry
from rrgbench.scoring.engine import ScoringContext, all_keys, group_of, score


def check_select_metric(registry: Registry, config: RunConfig) -> None:
    """Refuse, before training, a selection or curve metric that no metric group computes or that is skipped."""
    for key in (config.train.select_metric, *config.train.curve_metrics):
        group_of(registry, key)
    if config.train.select_metric in config.scoring.skip:
        raise ConfigError(f"train.select_metric '{config.train.select_metric}' is skipped (--skip); select on "
                          "another metric or do not skip it")


def validation_subset(n_studies: int, config: RunConfig) -> list[int] | None:
    """Indices of the validation studies to decode (sorted), or None for all of them."""
    wanted = config.train.validate_studies
    if not wanted or wanted >= n_studies:
        return None
    return sorted(random.Random(config.seed).sample(range(n_studies), wanted))


def validation_method(config: RunConfig) -> str:
    """The decoding method of validation: ``decode.method`` unless ``train.validate_method`` is greedy."""
    return "greedy" if config.train.validate_method == "greedy" else config.decode.method


def validation_values(rows: list[dict[str, str]], config: RunConfig, cleaning_style: str,
                      context: ScoringContext) -> tuple[float, dict[str, float | None]]:
    """(selection score, value of every curve metric); the score is negated for lower-is-better metrics."""
    metric = config.train.select_metric
    wanted = frozenset({metric, *config.train.curve_metrics}) - context.skip
    refs = [r2gen_text(r["reference_raw"], cleaning_style) for r in rows]
    preds = [r["prediction"] for r in rows]
    local = ScoringContext(labeler=context.labeler, uncertain=context.uncertain, registry=context.registry,
                           chexbert=context.chexbert, radgraph=context.radgraph, wanted=wanted)
    registry = context.resolved_registry()
    groups = sorted({group_of(registry, key) for key in wanted})
    results = score(preds, refs, local, groups=groups, with_ci=False).results
    chosen = results[metric]
    if chosen.value is None:
        raise ConfigError(f"train.select_metric '{metric}' is unavailable here: {chosen.unavailable}")
    higher = all_keys(registry)[metric][1].higher_is_better
    values = {key: results[key].value for key in sorted(wanted)}
    return (chosen.value if higher else -chosen.value), values
