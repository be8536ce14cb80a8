"""Adapters from the registered metric groups to the harness's metric functions."""

from __future__ import annotations

from collections.abc import Sequence

from rrgbench.metrics.base import MetricResult
from rrgbench.scoring import ScoringContext


def nlg(predictions: Sequence[str], references: Sequence[str], context: ScoringContext) -> dict[str, MetricResult]:
    from rrgbench.metrics.nlg import score_nlg

    context.protocol["nlg"] = {"implementation": "pycocoevalcap", "tokenization": "none (cleaned strings)"}
    return score_nlg(predictions, references)
