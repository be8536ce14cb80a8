"""Adapters from the registered metric groups to the harness's metric functions."""

from __future__ import annotations

from collections.abc import Sequence

from rrgbench.metrics.base import MetricResult
from rrgbench.scoring.engine import ScoringContext


def nlg(predictions: Sequence[str], references: Sequence[str], context: ScoringContext) -> dict[str, MetricResult]:
    from rrgbench.metrics.nlg import NLG_METRICS, score_nlg

    context.protocol["nlg"] = {"implementation": "pycocoevalcap", "tokenization": "none (cleaned strings)"}
    wanted = [key for key in NLG_METRICS if key not in context.skip]
    return score_nlg(predictions, references, metrics=wanted)


def clinical(predictions: Sequence[str], references: Sequence[str],
             context: ScoringContext) -> dict[str, MetricResult]:
    """CE metrics: label both sides with the chosen labeler, compare under the uncertain-label mapping."""
    from rrgbench.io import write_text
    from rrgbench.metrics.clinical import UNCERTAIN_MAPPINGS, ce_metrics, ce_per_observation
    from rrgbench.metrics.labelers.registry import build_labeler

    labeler = build_labeler(context.registry, context.labeler)
    pred_labels, ref_labels = labeler.label(list(predictions)), labeler.label(list(references))
    context.protocol["clinical"] = {"labeler": labeler.name, "uncertain_mapping": context.uncertain,
                                    "mapping_rule": UNCERTAIN_MAPPINGS[context.uncertain].description,
                                    "averaging": "sklearn-style, zero_division=0, 14 observations; _5: "
                                                 "Cardiomegaly, Edema, Consolidation, Atelectasis, Pleural Effusion"}
    if getattr(labeler, "source", None):  # e.g. CheXbert: which weights and tokenizer were used
        context.protocol["clinical"]["labeler_source"] = labeler.source
    if context.output_dir is not None:
        rows = ce_per_observation(pred_labels, ref_labels, context.uncertain)
        lines = ["observation,support,predicted,precision,recall,f1"]
        lines += [f"{r['observation']},{r['support']},{r['predicted']},{r['precision']:.4f},{r['recall']:.4f},"
                  f"{r['f1']:.4f}" for r in rows]
        write_text(context.output_dir / "ce_per_observation.csv", "\n".join(lines) + "\n")
    return ce_metrics(pred_labels, ref_labels, context.uncertain, labeler.name)


def chexpert_rules(options: object) -> object:
    from rrgbench.metrics.labelers.chexpert_rules import CheXpertRulesLabeler

    return CheXpertRulesLabeler()


def radgraph(predictions: Sequence[str], references: Sequence[str],
             context: ScoringContext) -> dict[str, MetricResult]:
    """RadGraph F1 (partial, simple, complete) when the radgraph package and its model folder are on disk."""
    from rrgbench.metrics.radgraph import protocol_entry, score_radgraph

    results = score_radgraph(predictions, references)
    context.protocol["radgraph"] = protocol_entry()
    return results


def chexbert(options: object) -> object:
    from rrgbench.metrics.labelers.chexbert import CheXbertLabeler

    return CheXbertLabeler(options)  # type: ignore[arg-type]
