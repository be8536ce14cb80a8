"""Scoring external systems: reading report files, matching ids, and writing a run-shaped record.

A report file is CSV (``.csv``, ``.tsv``) or JSON Lines (``.jsonl``, ``.json`` one object a line) with an ``id``
column and a text column (``report`` unless told otherwise). Predictions and references are matched by id, in
the references' order. Duplicated ids on either side are always an error (which copy would be scored is
ambiguous); ids missing in the predictions or extra in them are an error unless ``allow_partial``, in which
case only the common studies are scored and the record says how many were left out. Blank references are an
error (a study needs one to be scored).

``clean`` is applied to predictions and references alike: ``none`` scores the texts exactly as given, whitespace
included, so numbers of published pycocoevalcap scripts reproduce (pycocoevalcap's ROUGE-L splits on single
spaces, so a double space counts as an empty token; see :mod:`rrgbench.metrics.nlg`); ``whitespace`` folds every
run of whitespace to one space; ``iu-xray`` and ``mimic-cxr`` give the string R2Gen scores, its cleaning of that
dataset with the tokens re-joined by single spaces (:func:`rrgbench.data.cleaning.r2gen_text`).

``score_external`` writes, under ``out``: ``predictions.jsonl`` (id, prediction, reference, as scored),
``scores.jsonl`` (per-study values), the metric groups' side tables (``ce_per_observation.csv``) and
``results.json``, a run record (:mod:`rrgbench.record`) of kind ``external``: no model ran, so it has no
config, validation or efficiency figures (``efficiency.unavailable`` says so). The files are written as one
set (:func:`rrgbench.outputs.replace_folder`): a new folder, or an earlier ``score`` output replaced as a
whole; never a run folder, nor a foreign folder unless ``force`` (then its other files are kept and
``results.json`` is written last). The model and dataset names are checked as path parts
(:func:`rrgbench.outputs.safe_name`): leaderboards make folders of them. ``label_file`` never replaces
its input, nor an existing file that is not a label CSV unless ``force``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rrgbench.errors import DataError
from rrgbench.io import write_text
from rrgbench.outputs import output_file, output_folder, replace_folder, safe_name
from rrgbench.record import RESULTS_FILE, Bootstrap, Efficiency, Protocol, RunRecord
from rrgbench.run.layout import RunDir
from rrgbench.run.writer import RunWriter
from rrgbench.scoring.engine import Scores, ScoringContext, score

CLEANING_CHOICES = ("none", "whitespace", "iu-xray", "mimic-cxr")
CLEANING_LABELS = {"none": "as given", "whitespace": "runs of whitespace folded to one space"}
_CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
_JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
_EXAMPLES = 3


@dataclass(frozen=True)
class ReportFile:
    """The (id, text) rows of one report file, in file order."""

    path: Path
    ids: list[str]
    texts: list[str]


# ---------------------------------------------------------------------------------------------- reading


def _row_value(row: dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if value is None:
        raise DataError(f"{where}: no value for '{key}'")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"{where}: '{key}' is {type(value).__name__}, expected text")
    return value if isinstance(value, str) else str(value)


def _check_columns(path: Path, columns: Sequence[str], id_column: str, text_column: str) -> None:
    absent = [c for c in (id_column, text_column) if c not in columns]
    if absent:
        found = ", ".join(columns) or "none"
        raise DataError(f"{path}: no column {' or '.join(repr(c) for c in absent)} (columns: {found})")


def _read_csv(path: Path, delimiter: str) -> tuple[list[str], list[dict[str, Any]]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        try:
            rows = list(reader)
        except csv.Error as exc:  # a field over csv.field_size_limit(), a NUL byte, ...
            raise DataError(f"{path}, line {reader.line_num}: malformed CSV ({exc})") from None
        return list(reader.fieldnames or []), rows


def read_jsonl_rows(path: Path, required: Sequence[str] = ()) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and object rows of a JSON Lines file; DataError naming the line of a row that is not JSON,
    not an object, or lacks one of the ``required`` keys."""
    expected = f"{', '.join(required[:-1])} and {required[-1]}" if len(required) > 1 else "".join(required)
    rows: list[dict[str, Any]] = []
    columns: dict[str, None] = {}
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}, line {number}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict) or not set(required) <= set(row):
                raise DataError(f"{path}, line {number}: expected {expected or 'a JSON object'}")
            columns.update(dict.fromkeys(row))
            rows.append(row)
    return list(columns), rows


def read_reports(path: str | Path, text_column: str = "report", id_column: str = "id") -> ReportFile:
    """Read a CSV/TSV or JSONL report file into ids and texts (ids as strings, file order)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"report file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in _CSV_SUFFIXES and suffix not in _JSONL_SUFFIXES:
        raise DataError(f"{path}: unknown format '{suffix}' (use .csv, .tsv or .jsonl)")
    try:
        columns, rows = _read_csv(path, _CSV_SUFFIXES[suffix]) if suffix in _CSV_SUFFIXES else read_jsonl_rows(path)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                        "save it as UTF-8") from None
    if not rows:
        raise DataError(f"{path}: no reports")
    _check_columns(path, columns, id_column, text_column)
    ids, texts = [], []
    for number, row in enumerate(rows, start=1):
        where = f"{path}, row {number}"
        ids.append(_row_value(row, id_column, where).strip())
        texts.append(_row_value(row, text_column, where))
    return ReportFile(path, ids, texts)


# ---------------------------------------------------------------------------------------------- matching


@dataclass
class Matched:
    """Predictions and references of the common studies, in the references' order, and what did not match."""

    ids: list[str]
    predictions: list[str]
    references: list[str]
    missing: list[str] = field(default_factory=list)  # in references, not in predictions
    extra: list[str] = field(default_factory=list)  # in predictions, not in references

    def summary(self) -> dict[str, Any]:
        """Counts for the record."""
        return {"studies": len(self.ids), "missing_in_predictions": len(self.missing),
                "extra_in_predictions": len(self.extra), "partial": bool(self.missing or self.extra)}


def examples(items: Sequence[str]) -> str:
    """The first few items, quoted, for an error message (``...`` when there are more)."""
    shown = ", ".join(repr(item) for item in items[:_EXAMPLES])
    return shown + (", ..." if len(items) > _EXAMPLES else "")


def duplicates(ids: Sequence[str]) -> list[str]:
    """The ids that occur more than once, in order of first occurrence."""
    return [key for key, count in Counter(ids).items() if count > 1]


def match_reports(predictions: ReportFile, references: ReportFile, allow_partial: bool = False) -> Matched:
    """Match by id; DataError listing counts and first examples of every mismatch (see the module docstring)."""
    problems = []
    for label, report_file in (("predictions", predictions), ("references", references)):
        duplicated = duplicates(report_file.ids)
        if duplicated:
            problems.append(f"{len(duplicated)} duplicated ids in {label} (first: {examples(duplicated)})")
    if problems:
        raise DataError("; ".join(problems))
    predicted = dict(zip(predictions.ids, predictions.texts, strict=True))
    referenced = set(references.ids)
    missing = [i for i in references.ids if i not in predicted]
    extra = [i for i in predictions.ids if i not in referenced]
    common = [i for i in references.ids if i in predicted]
    if (missing or extra) and (not allow_partial or not common):
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing in predictions (first: {examples(missing)})")
        if extra:
            parts.append(f"{len(extra)} extra in predictions (first: {examples(extra)})")
        hint = f"; pass --allow-partial to score the {len(common)} common studies" if common else "; no id in common"
        raise DataError(f"predictions and references do not match: {'; '.join(parts)}{hint}")
    reference_text = dict(zip(references.ids, references.texts, strict=True))
    blank = [i for i in common if not reference_text[i].strip()]
    if blank:
        raise DataError(f"{len(blank)} blank references (first: {examples(blank)}); every study needs one")
    return Matched(common, [predicted[i] for i in common], [reference_text[i] for i in common], missing, extra)


def clean_texts(texts: Sequence[str], style: str) -> list[str]:
    """``none``: unchanged; ``whitespace``: runs of whitespace folded; otherwise the text R2Gen scores."""
    if style == "none":
        return list(texts)
    if style not in CLEANING_CHOICES:
        raise DataError(f"unknown cleaning '{style}' (one of {', '.join(CLEANING_CHOICES)})")
    from rrgbench.data.cleaning import fold_whitespace, r2gen_text

    if style == "whitespace":
        return [fold_whitespace(text) for text in texts]
    return [r2gen_text(text, style) for text in texts]


# ---------------------------------------------------------------------------------------------- scoring


@dataclass
class ExternalRequest:
    """What to score and how to label the result."""

    predictions: Path
    references: Path
    out: Path
    name: str | None = None
    dataset: str = "external"
    clean: str = "none"
    allow_partial: bool = False
    text_column: str = "report"
    groups: Sequence[str] | None = None
    force: bool = False

    @property
    def model(self) -> str:
        """``name``, else the predictions file's stem with characters a name cannot have replaced by ``-``."""
        if self.name is not None:
            return self.name
        return re.sub(r"[^A-Za-z0-9_.+=-]+", "-", Path(self.predictions).stem).strip("-.")[:128] or "external"


def _device() -> str:
    torch = sys.modules.get("torch")
    return "cuda" if torch is not None and torch.cuda.is_available() else "cpu"


def external_record(request: ExternalRequest, context: ScoringContext, matched: Matched, scores: Scores,
                    rows: Sequence[dict[str, str]]) -> RunRecord:
    """The record of an external system: its metrics and how they were computed; no model ran."""
    from rrgbench.run.environment import environment
    from rrgbench.run.layout import now
    from rrgbench.run.results import prediction_stats, study_results

    predictions = [row["prediction"] for row in rows]

    settings = {"name": request.model, "clean": request.clean, "allow_partial": request.allow_partial,
                "labeler": context.labeler, "uncertain": context.uncertain, "skip": sorted(context.skip)}
    protocol = Protocol(
        cleaning=request.clean,
        references=CLEANING_LABELS.get(request.clean, f"R2Gen {request.clean} cleaning, tokens re-joined"),
        bootstrap=Bootstrap(resamples=context.n_resamples, seed=context.seed),
        metric_groups=scores.protocol,
        external={"predictions_file": str(request.predictions), "references_file": str(request.references),
                  "matching": matched.summary(), "settings": settings},
    )
    return RunRecord(kind="external", run_id=Path(request.out).name, model=request.model, dataset=request.dataset,
                     metrics=scores.values, protocol=protocol, environment=environment(_device()), created=now(),
                     efficiency=Efficiency(unavailable="external predictions: no model was run, so there are no "
                                                       "cost figures"),
                     predictions=prediction_stats(list(predictions)), tables=scores.tables,
                     studies=study_results(rows))


def is_score_output(folder: Path) -> bool:
    """Whether ``folder`` is an earlier ``rrgbench score`` output (its record is of kind ``external``)."""
    try:
        data = json.loads((Path(folder) / RESULTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("kind") == "external"


def score_external(request: ExternalRequest, context: ScoringContext) -> RunRecord:
    """Read, match, clean and score an external system's reports; write the run-shaped outputs; return the record."""
    safe_name(request.model, "model name (--name)")
    safe_name(request.dataset, "dataset name (--dataset)")
    out = Path(request.out)
    whole = output_folder(out, (request.predictions, request.references), force=request.force,
                          ours=is_score_output, what="score output")
    predictions = read_reports(request.predictions, request.text_column)
    references = read_reports(request.references, request.text_column)
    matched = match_reports(predictions, references, request.allow_partial)
    hyps, refs = clean_texts(matched.predictions, request.clean), clean_texts(matched.references, request.clean)
    rows = [{"id": i, "prediction": h, "reference": r} for i, h, r in zip(matched.ids, hyps, refs, strict=True)]
    scores = score(hyps, refs, context, groups=request.groups)
    record = external_record(request, context, matched, scores, rows)

    def write(folder: Path) -> None:
        writer = RunWriter(RunDir(folder))
        writer.outputs(rows, scores.per_study(matched.ids), scores.tables)
        writer.record(record)  # last: a folder without results.json is not a record

    if whole:
        with replace_folder(out) as staging:
            write(staging)
    else:
        (out / RESULTS_FILE).unlink(missing_ok=True)
        write(out)
    return record


# ---------------------------------------------------------------------------------------------- labelling


def label_rows(ids: Sequence[str], labels: Sequence[dict[str, Any]]) -> str:
    """CSV text: ``id`` and the 14 observations, 1 / 0 / -1, blank for not mentioned."""
    from rrgbench.metrics.labelers.chexpert_rules import OBSERVATIONS

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", *OBSERVATIONS])
    for study_id, study in zip(ids, labels, strict=True):
        writer.writerow([study_id, *("" if study.get(o) is None else int(study[o]) for o in OBSERVATIONS)])
    return buffer.getvalue()


def label_header() -> str:
    from rrgbench.metrics.labelers.chexpert_rules import OBSERVATIONS

    return ",".join(["id", *OBSERVATIONS])


def is_label_file(path: Path) -> bool:
    """Whether ``path`` is a label CSV (written by :func:`label_file`): its header is id + the 14 observations."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.readline().rstrip("\r\n") == label_header()
    except (OSError, UnicodeDecodeError):
        return False


def label_file(labeler: Any, source: str | Path, out: str | Path, text_column: str = "report",
               force: bool = False) -> int:
    """Label every report of ``source`` with ``labeler`` and write the label CSV to ``out``; return the count."""
    output_file(Path(out), [Path(source)], force=force, ours=is_label_file, what="label CSV")
    reports = read_reports(source, text_column)
    duplicated = duplicates(reports.ids)
    if duplicated:
        raise DataError(f"{len(duplicated)} duplicated ids in {source} (first: {examples(duplicated)})")
    write_text(Path(out), label_rows(reports.ids, labeler.label(reports.texts)))
    return len(reports.ids)
