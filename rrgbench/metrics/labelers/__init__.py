"""Report labelers: report text -> the 14 CheXpert observations (1 positive, 0 negative, -1 uncertain, None).

Owns the labeler contract (``Labeler``) and re-exports the built-in offline rule-based labeler
``chexpert-rules``. Registration by name happens through the plugin manager, not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from rrgbench.metrics.labelers.chexpert_rules import (
    COMMON_FIVE,
    NEGATIVE,
    OBSERVATIONS,
    POSITIVE,
    UNCERTAIN,
    CheXpertRulesLabeler,
    Label,
)


@runtime_checkable
class Labeler(Protocol):
    """Anything with a ``name`` and ``label(reports)`` -> one ``{observation: value}`` dict per report."""

    name: str

    def label(self, reports: Sequence[str]) -> list[dict[str, Label]]:
        """Label every report, in order; keys are OBSERVATIONS, values 1, 0, -1 or None."""
        ...


__all__ = [
    "COMMON_FIVE",
    "NEGATIVE",
    "OBSERVATIONS",
    "POSITIVE",
    "UNCERTAIN",
    "CheXpertRulesLabeler",
    "Label",
    "Labeler",
]
