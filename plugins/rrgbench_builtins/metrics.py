"""Adapters from the registered metric groups and labelers to the harness's metric functions.

Each group returns a :class:`rrgbench.metrics.base.GroupResult`: its metrics, what it used (recorded in the
run's protocol) and its side tables; none of them writes a file.
"""

from __future__ import annotations

from collections.abc import Sequence

from rrgbench.metrics.base import GroupResult
from rrgbench.scoring.engine import ScoringContext


def nlg(predictions: Sequence[str], references: Sequence[str], context: ScoringContext) -> GroupResult:
    from rrgbench.metrics.nlg import NLG_METRICS, score_nlg

    wanted = [key for key in NLG_METRICS if key not in context.skip
              and (context.wanted is None or key in context.wanted)]
    return GroupResult(score_nlg(predictions, references, metrics=wanted),
                       protocol={"implementation": "pycocoevalcap", "tokenization": "none (cleaned strings)"})


def clinical(predictions: Sequence[str], references: Sequence[str], context: ScoringContext) -> GroupResult:
    """CE metrics: label both sides with the chosen labeler, compare under the uncertain-label mapping."""
    from rrgbench.metrics.clinical import UNCERTAIN_MAPPINGS, ce_metrics, ce_per_observation
    from rrgbench.metrics.labelers.registry import build_labeler

    labeler = build_labeler(context.resolved_registry(), context.labeler, context.labeler_options())
    pred_labels, ref_labels = labeler.label(list(predictions)), labeler.label(list(references))
    mapping = context.uncertain_mapping()
    protocol = {"labeler": labeler.name, "uncertain_mapping": mapping,
                "mapping_rule": UNCERTAIN_MAPPINGS[mapping].description,
                "mapping_chosen": "the labeler's own (scoring.uncertain auto)" if context.uncertain == "auto"
                else "scoring.uncertain",
                "averaging": "sklearn-style, zero_division=0, 14 observations; _5: "
                             "Cardiomegaly, Edema, Consolidation, Atelectasis, Pleural Effusion"}
    if getattr(labeler, "source", None):  # e.g. CheXbert: which weights and tokenizer were used
        protocol["labeler_source"] = labeler.source
    return GroupResult(ce_metrics(pred_labels, ref_labels, mapping, labeler.name), protocol=protocol,
                       tables={"ce_per_observation": ce_per_observation(pred_labels, ref_labels, mapping)})


def clinical_preflight(context: ScoringContext) -> None:
    """Build the run's labeler (CheXbert: load its weights) so that a missing or wrong file fails at once."""
    from rrgbench.errors import UnavailableError
    from rrgbench.metrics.clinical import get_mapping
    from rrgbench.metrics.labelers.registry import build_labeler

    get_mapping(context.uncertain_mapping())
    try:
        build_labeler(context.resolved_registry(), context.labeler, context.labeler_options())
    except UnavailableError as exc:
        given = f"--chexbert {context.chexbert}" if context.chexbert else f"labeler '{context.labeler}'"
        raise UnavailableError(f"{given}: {exc}") from None


def radgraph(predictions: Sequence[str], references: Sequence[str], context: ScoringContext) -> GroupResult:
    """RadGraph F1 (partial, simple, complete) when the radgraph package and its model folder are on disk."""
    from rrgbench.metrics.radgraph import protocol_entry, score_radgraph

    results = score_radgraph(predictions, references, root=context.radgraph)
    return GroupResult(results, protocol=protocol_entry(context.radgraph))


def radgraph_preflight(context: ScoringContext) -> None:
    """With ``--radgraph DIR`` given, load that model now; without it, a missing model is only unavailable."""
    from rrgbench.errors import UnavailableError
    from rrgbench.metrics.radgraph import find_model, load_annotator

    if not context.radgraph:
        return
    try:
        location = find_model(context.radgraph)
        load_annotator(str(location.folder), location.model_type)
    except UnavailableError as exc:
        raise UnavailableError(f"--radgraph {context.radgraph}: {exc}") from None


def chexpert_rules(options: object) -> object:
    from rrgbench.metrics.labelers.chexpert_rules import CheXpertRulesLabeler

    return CheXpertRulesLabeler()


def chexbert(options: object) -> object:
    from rrgbench.metrics.labelers.chexbert import CheXbertLabeler

    return CheXbertLabeler(options)  # type: ignore[arg-type]
