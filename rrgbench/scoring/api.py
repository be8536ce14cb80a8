"""``rrgbench.score(hyps=..., refs=...)``: the numbers of ``rrgbench score``, for notebooks, without files.

The steps are the command's (:mod:`rrgbench.scoring.external`), only nothing is read or written: the
hypotheses and references are paired by id (``ids``, default their positions; a duplicated id or a blank
reference is an error), cleaned on both sides with ``clean``, checked (a ``chexbert`` / ``radgraph`` path
that cannot work fails at once, as ``--chexbert`` does) and scored by the engine
(:func:`rrgbench.scoring.engine.score`) with the same defaults (labeler ``chexpert-rules``, mapping ``auto``,
1,000 bootstrap resamples, seed 0). Keyword names follow RadEval's (``hyps``, ``refs``); they are keyword-only
so that the two lists cannot be swapped by position.

The result is a mapping ``metric key -> value`` (None where a metric is unavailable) with the CIs, the
reasons, the protocol and a per-study pandas DataFrame (``id``, ``hyp``, ``ref`` as scored, then every
metric with per-study scores; for the clinical metrics these are example-based, and their mean is not the
corpus value).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rrgbench.errors import ConfigError, DataError
from rrgbench.record import MetricValue


@dataclass(eq=False)
class ScoreResult(Mapping[str, float | None]):
    """``result["bleu_4"]`` is a value; ``.ci``, ``.unavailable``, ``.per_study``, ``.protocol`` the rest."""

    metrics: dict[str, MetricValue]
    per_study: Any  # pandas.DataFrame: id, hyp, ref, then one column per metric with per-study scores
    protocol: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __getitem__(self, key: str) -> float | None:
        return self.metrics[key].value

    def __iter__(self) -> Iterator[str]:
        return iter(self.metrics)

    def __len__(self) -> int:
        return len(self.metrics)

    @property
    def ci(self) -> dict[str, tuple[float, float] | None]:
        """The 95% bootstrap CI of each metric (None where it has none)."""
        return {key: tuple(entry.ci95) if entry.ci95 else None  # type: ignore[misc]
                for key, entry in self.metrics.items()}

    @property
    def unavailable(self) -> dict[str, str]:
        """Why each metric without a value has none."""
        return {key: entry.unavailable or "not computed" for key, entry in self.metrics.items()
                if entry.value is None}

    def to_dict(self) -> dict[str, float | None]:
        """``{metric key: value}``."""
        return {key: entry.value for key, entry in self.metrics.items()}

    def __repr__(self) -> str:
        shown = ", ".join(f"{key}={'n/a' if v is None else f'{v:.4f}'}" for key, v in self.to_dict().items())
        return f"ScoreResult({len(self.per_study)} studies: {shown})"


def _reports(texts: Sequence[str], name: str) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise DataError(f"{name} must be a list of reports, got {type(texts).__name__}")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"{name}[{index}] is {type(text).__name__}, expected text")
    return list(texts)


def _context(labeler: str, uncertain: str, metrics: Sequence[str] | None, skip: Sequence[str],
             chexbert: str | None, radgraph: str | None, resamples: int, seed: int) -> Any:
    """The engine's context for these arguments, checked (:meth:`ScoringContext.check`) before any scoring."""
    from rrgbench.extension.plugins import registry
    from rrgbench.scoring.engine import ScoringContext

    def path(value: str | None) -> str | None:
        return str(Path(value).expanduser()) if value else None

    return ScoringContext(labeler=labeler, uncertain=uncertain, n_resamples=resamples, seed=seed,
                          registry=registry(), skip=frozenset([skip] if isinstance(skip, str) else skip),
                          chexbert=path(chexbert), radgraph=path(radgraph),
                          wanted=None if metrics is None else frozenset(metrics)).check()


def score(*, hyps: Sequence[str], refs: Sequence[str], metrics: Sequence[str] | None = None,
          labeler: str = "chexpert-rules", uncertain: str = "auto", clean: str = "none",
          ids: Sequence[str] | None = None, skip: Sequence[str] = (), chexbert: str | None = None,
          radgraph: str | None = None, resamples: int = 1000, seed: int = 0) -> ScoreResult:
    """Score generated reports ``hyps`` against reference reports ``refs`` (same order, one per study).

    ``metrics``: metric keys to compute (default all registered, ``rrgbench list metrics``); ``labeler`` and
    ``uncertain``: the clinical-efficacy labeler and its uncertain-label mapping; ``clean``: ``none`` (texts as
    given), ``whitespace``, ``iu-xray`` or ``mimic-cxr`` (R2Gen's cleaning), on both sides; ``chexbert``: the
    CheXbert weights file, ``radgraph``: the RadGraph model folder; ``skip``: keys not computed (recorded as
    unavailable); ``resamples`` / ``seed``: the bootstrap of the 95% CIs.
    """
    import pandas as pd

    from rrgbench.scoring.engine import preflight
    from rrgbench.scoring.engine import score as score_texts
    from rrgbench.scoring.external import ReportFile, clean_texts, match_reports

    hyps, refs = _reports(hyps, "hyps"), _reports(refs, "refs")
    if len(hyps) != len(refs):
        raise DataError(f"{len(hyps)} hyps but {len(refs)} refs; give one reference per generated report")
    keys = [str(i) for i in ids] if ids is not None else [str(i) for i in range(len(refs))]
    if len(keys) != len(refs):
        raise DataError(f"{len(keys)} ids for {len(refs)} reports")
    if isinstance(metrics, str):
        metrics = [metrics]
    if metrics is not None and not metrics:
        raise ConfigError("metrics: give at least one metric key, or None for all")
    context = _context(labeler, uncertain, metrics, skip, chexbert, radgraph, resamples, seed)
    matched = match_reports(ReportFile(Path("hyps"), keys, hyps), ReportFile(Path("refs"), keys, refs))
    hyps, refs = clean_texts(matched.predictions, clean), clean_texts(matched.references, clean)
    preflight(context, given_files_only=True)
    scores = score_texts(hyps, refs, context)  # only the groups with a wanted key run
    if metrics is not None:  # in the order asked for
        scores.results = {key: scores.results[key] for key in dict.fromkeys(metrics)}
        scores.values = {key: scores.values[key] for key in dict.fromkeys(metrics)}
    rows = [{"id": i, "hyp": h, "ref": r, **{k: v for k, v in row.items() if k != "id"}}
            for i, h, r, row in zip(matched.ids, hyps, refs, scores.per_study(matched.ids), strict=True)]
    return ScoreResult(scores.values, pd.DataFrame(rows, columns=_columns(rows)), scores.protocol, scores.tables)


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row)) or ["id", "hyp", "ref"]
