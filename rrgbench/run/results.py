"""The end of a run: score decoded rows, summarise the predictions, and assemble the record and its protocol.

Also the scoring check before a run starts (:func:`check_scoring`): the metric model files it will need.

Shared by training (:mod:`rrgbench.run.loop`) and the evaluation of a saved model
(:mod:`rrgbench.run.evaluate`), so both records say the same things the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rrgbench.config import RunConfig
from rrgbench.data.cleaning import r2gen_text
from rrgbench.data.source import DatasetSource
from rrgbench.data.tokenizer import Tokenizer
from rrgbench.extension.plugins import Registry
from rrgbench.record import Bootstrap, PredictionStats, Protocol, RunRecord, StudyResult
from rrgbench.run.layout import now
from rrgbench.scoring.engine import Scores, ScoringContext, preflight, score


@dataclass(frozen=True)
class LocalFiles:
    """Model files of the metrics that live on this machine (never part of a configuration)."""

    chexbert: str | None = None
    radgraph: str | None = None


def scoring_context(config: RunConfig, registry: Registry, files: LocalFiles | None = None) -> ScoringContext:
    """The scoring settings of a run: its ``scoring`` section plus where the metric model files are."""
    files = files or LocalFiles()
    scoring = config.scoring
    return ScoringContext(labeler=scoring.labeler, uncertain=scoring.uncertain, n_resamples=scoring.resamples,
                          seed=scoring.bootstrap_seed, registry=registry, skip=frozenset(scoring.skip),
                          chexbert=files.chexbert, radgraph=files.radgraph).check()


def check_scoring(registry: Registry, configs: Sequence[RunConfig], files: LocalFiles | None = None) -> None:
    """Before anything trains: each distinct scoring setting of ``configs`` can run with these local files
    (the labeler is built, a ``--chexbert`` / ``--radgraph`` model loaded); ConfigError naming the flag if not."""
    seen: set[tuple[str, str, frozenset[str]]] = set()
    for config in configs:
        context = scoring_context(config, registry, files)
        setting = (context.labeler, context.uncertain, context.skip)
        if setting not in seen:
            seen.add(setting)
            preflight(context)


def score_rows(rows: list[dict[str, str]], cleaning_style: str, context: ScoringContext) -> Scores:
    """Clean each row's reference as R2Gen scores it (in place: ``reference_raw`` -> ``reference``), then score."""
    for row in rows:
        row["reference"] = r2gen_text(row.pop("reference_raw"), cleaning_style)
    return score([r["prediction"] for r in rows], [r["reference"] for r in rows], context)


def study_results(rows: Sequence[dict[str, str]]) -> list[StudyResult]:
    """The scored studies of a record (rows with id, prediction and cleaned reference)."""
    return [StudyResult(id=str(r["id"]), prediction=r["prediction"], reference=r["reference"]) for r in rows]


def prediction_stats(predictions: Sequence[str]) -> PredictionStats | None:
    """How many distinct reports a model wrote, and the share of the most frequent one."""
    if not predictions:
        return None
    counts = Counter(predictions)
    text, top = counts.most_common(1)[0]
    return PredictionStats(studies=len(predictions), distinct=len(counts),
                           distinct_share=len(counts) / len(predictions), most_frequent_share=top / len(predictions),
                           most_frequent=text)


def protocol_for(config: RunConfig, source: DatasetSource, tokenizer: Tokenizer, context: ScoringContext,
                 scores: Scores, init_report: dict[str, Any], **extra: Any) -> Protocol:
    """The ``protocol`` of a training or evaluation record."""
    return Protocol(
        cleaning=source.cleaning_style,
        references="cleaned with the dataset's R2Gen cleaning, never truncated",
        bootstrap=Bootstrap(resamples=context.n_resamples, seed=context.seed),
        splits=source.sizes(),
        vocabulary={"size": len(tokenizer), "threshold": tokenizer.threshold, "built_on": "train"},
        max_len=config.data.max_len,
        decode={"method": config.decode.method, "beam_size": config.decode.beam_size,
                "max_len": config.decode_max_len},
        selection={"split": "val", "metric": config.train.select_metric},
        profile=config.profile,
        initialization=init_report,
        dataset=dict(source.notes),
        metric_groups=scores.protocol,
        **extra,
    )


def run_record(kind: str, run_id: str, config: RunConfig, registry: Registry, rows: Sequence[dict[str, str]],
               scores: Scores, **fields: Any) -> RunRecord:
    """A training or evaluation record: what both say the same way (the metrics, the configuration, the
    predictions' summary, side tables, scored studies, ``ablation_of``) plus ``fields`` (protocol, efficiency,
    environment and what else only one of them has)."""
    return RunRecord(kind=kind, run_id=run_id, model=config.model, dataset=config.dataset, metrics=scores.values,
                     created=now(), profile=config.profile, seed=config.seed, config=config.to_dict(),
                     predictions=prediction_stats([r["prediction"] for r in rows]), tables=scores.tables,
                     studies=study_results(rows),
                     ablation_of=registry.get("model", config.model).extra.get("ablation_of"), **fields)


def summary_line(record: RunRecord) -> str:
    parts = []
    for key, entry in record.metrics.items():
        parts.append(f"{key} {entry.value:.4f}" if entry.value is not None else f"{key} n/a")
    return "test: " + ", ".join(parts)
