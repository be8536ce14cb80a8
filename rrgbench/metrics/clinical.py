"""Clinical efficacy (CE) metrics: CheXpert labels of generated vs reference reports -> precision, recall, F1.

Owns the uncertain-label mappings, the label matrix, the corpus micro/macro precision/recall/F1 over the 14
CheXpert observations (and F1 over the 5 common ones), their per-study scores and vectorised bootstrap
resampling, and the per-observation table.

Conventions (chosen so that numbers are comparable with the R2Gen-style ``compute_ce`` scripts, which call
scikit-learn's ``precision_recall_fscore_support`` with ``zero_division=0`` on the 14 label columns):

* Labels are binarised with an uncertain-label mapping: ``r2gen`` (the default) counts only 1 as positive
  (0, -1 and blank are negative); ``chexbert`` counts 1 and -1 as positive.
* Micro: tp/fp/fn pooled over all studies and observations. Macro: the unweighted mean over the observations
  of each observation's precision / recall / F1 (so "No Finding" is one of the 14).
* Any 0/0 is 0 (``zero_division=0``): an observation that is positive in neither the predictions nor the
  references has precision = recall = F1 = 0 and still counts in the macro mean, as in scikit-learn.
* ``per_sample`` holds example-based per-study scores over the same observations: precision tp/(tp+fp),
  recall tp/(tp+fn), F1 2tp/(2tp+fp+fn), where a study with nothing to count scores 1.0 when prediction and
  reference agree that nothing is positive and 0.0 otherwise. Their mean is *not* the corpus value; the corpus
  value (and every bootstrap resample of it, via ``resample``) is recomputed from per-study tp/fp/fn counts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rrgbench.errors import DataError, UnknownNameError, did_you_mean
from rrgbench.metrics.base import MetricResult
from rrgbench.metrics.labelers.chexpert_rules import COMMON_FIVE, OBSERVATIONS, Label

LabelInput = Sequence[Mapping[str, Label]] | np.ndarray
"""Labels of N studies: one ``{observation: 1|0|-1|None}`` per study, or a float [N, 14] matrix, NaN blank."""


@dataclass(frozen=True)
class UncertainMapping:
    """Which raw label values count as positive; every other value, blank included, counts as negative."""

    name: str
    positive_values: frozenset[int]
    description: str

    def binarize(self, matrix: np.ndarray) -> np.ndarray:
        """Boolean [N, K] positives of a label matrix (NaN compares false, so blank is negative)."""
        return np.isin(matrix, sorted(self.positive_values))


UNCERTAIN_MAPPINGS: dict[str, UncertainMapping] = {
    "r2gen": UncertainMapping(
        "r2gen", frozenset({1}), "1 is positive; 0, -1 (uncertain) and blank are negative"
    ),
    "chexbert": UncertainMapping(
        "chexbert", frozenset({1, -1}), "1 and -1 (uncertain) are positive; 0 and blank are negative"
    ),
}
DEFAULT_MAPPING = "r2gen"

_VALID_VALUES = (1.0, 0.0, -1.0)


# --------------------------------------------------------------------------------------------- label input


def _value(label: Any, where: str) -> float:
    if label is None:
        return np.nan
    try:
        value = float(label)
    except (TypeError, ValueError):
        raise DataError(f"{where}: label {label!r} is not 1, 0, -1 or blank") from None
    if np.isnan(value):
        return value
    if value not in _VALID_VALUES:
        raise DataError(f"{where}: label {label!r} is not 1, 0, -1 or blank")
    return value


def labels_to_matrix(labels: Sequence[Mapping[str, Label]],
                     observations: Sequence[str] = OBSERVATIONS) -> np.ndarray:
    """Float matrix [N, len(observations)] of 1 / 0 / -1, NaN where a label is blank or absent."""
    matrix = np.full((len(labels), len(observations)), np.nan)
    for i, study in enumerate(labels):
        for j, observation in enumerate(observations):
            matrix[i, j] = _value(study.get(observation), f"study {i}, {observation}")
    return matrix


def _as_matrix(labels: LabelInput, name: str) -> np.ndarray:
    if isinstance(labels, np.ndarray):
        matrix = np.asarray(labels, dtype=float)
        if matrix.ndim != 2 or matrix.shape[1] != len(OBSERVATIONS):
            raise DataError(f"{name} labels have shape {matrix.shape}, expected [N, {len(OBSERVATIONS)}]")
        finite = matrix[~np.isnan(matrix)]
        if not np.isin(finite, _VALID_VALUES).all():
            raise DataError(f"{name} labels hold values other than 1, 0, -1 and NaN")
        return matrix
    return labels_to_matrix(labels)


def get_mapping(mapping: str) -> UncertainMapping:
    """The named uncertain-label mapping, or an error that lists the known ones."""
    if mapping not in UNCERTAIN_MAPPINGS:
        raise UnknownNameError(
            f"unknown uncertain-label mapping '{mapping}'{did_you_mean(mapping, UNCERTAIN_MAPPINGS)}; "
            f"known: {', '.join(UNCERTAIN_MAPPINGS)}"
        )
    return UNCERTAIN_MAPPINGS[mapping]


# ------------------------------------------------------------------------------------------------- counts


@dataclass(frozen=True)
class Counts:
    """Per-study, per-observation true positives, false positives and false negatives ([N, K] each)."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    def columns(self, idx: Sequence[int]) -> Counts:
        """The counts of a subset of the observations."""
        return Counts(self.tp[:, idx], self.fp[:, idx], self.fn[:, idx])


def binary_counts(pred_labels: LabelInput, ref_labels: LabelInput, mapping: str = DEFAULT_MAPPING) -> Counts:
    """Binarise both label sets with ``mapping`` and count tp / fp / fn per study and observation."""
    rule = get_mapping(mapping)
    pred = _as_matrix(pred_labels, "predicted")
    ref = _as_matrix(ref_labels, "reference")
    if pred.shape != ref.shape:
        raise DataError(f"{pred.shape[0]} predicted label sets but {ref.shape[0]} reference label sets")
    pred_pos, ref_pos = rule.binarize(pred), rule.binarize(ref)
    as_int = np.int64
    return Counts(
        tp=(pred_pos & ref_pos).astype(as_int),
        fp=(pred_pos & ~ref_pos).astype(as_int),
        fn=(~pred_pos & ref_pos).astype(as_int),
    )


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's ``zero_division=0``)."""
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 from (summed) counts, elementwise, with 0/0 = 0."""
    tp = np.asarray(tp, dtype=float)
    return _divide(tp, tp + fp), _divide(tp, tp + fn), _divide(2 * tp, 2 * tp + fp + fn)


_STAT_INDEX = {"precision": 0, "recall": 1, "f1": 2}


def _micro(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, stat: str) -> np.ndarray:
    """Micro statistic from [..., K] summed counts: pool the K observations first."""
    return prf(tp.sum(axis=-1), fp.sum(axis=-1), fn.sum(axis=-1))[_STAT_INDEX[stat]]


def _macro(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, stat: str) -> np.ndarray:
    """Macro statistic from [..., K] summed counts: per-observation statistic, then the mean over K."""
    return prf(tp, fp, fn)[_STAT_INDEX[stat]].mean(axis=-1)


# ------------------------------------------------------------------------------------------ per-study scores


def per_study_scores(counts: Counts, stat: str) -> np.ndarray:
    """Example-based precision / recall / F1 of each study (see the module docstring for empty studies)."""
    tp, fp, fn = (c.sum(axis=1).astype(float) for c in (counts.tp, counts.fp, counts.fn))
    if stat == "precision":
        numerator, denominator, empty_ok = tp, tp + fp, fn == 0
    elif stat == "recall":
        numerator, denominator, empty_ok = tp, tp + fn, fp == 0
    else:
        numerator, denominator, empty_ok = 2 * tp, 2 * tp + fp + fn, np.ones_like(tp, dtype=bool)
    scores = _divide(numerator, denominator)
    return np.where(denominator > 0, scores, empty_ok.astype(float))


# ------------------------------------------------------------------------------------------------ resampling


def _check_indices(indices: np.ndarray) -> np.ndarray:
    indices = np.asarray(indices)
    if indices.ndim != 2:
        raise ValueError(f"resample indices must be 2-D [R, N], got shape {indices.shape}")
    return indices


def resample_weights(indices: np.ndarray, n: int) -> np.ndarray:
    """[R, N] matrix of how often each study occurs in each resample (rows of ``indices`` [R, N'])."""
    indices = _check_indices(indices)
    rows = indices.shape[0]
    flat = (indices.astype(np.int64) + n * np.arange(rows, dtype=np.int64)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(float)


def _resampler(counts: Counts, average: str, stat: str) -> Callable[[np.ndarray], np.ndarray]:
    """A ``resample(indices [R, N]) -> [R]`` that recomputes the corpus statistic from resampled count sums.

    Micro needs only per-study totals (a gather); macro needs per-observation sums (occurrence weights @
    counts). Both are exact: the counts are integers held in float64.
    """
    if average == "micro":
        totals = [c.sum(axis=1).astype(float) for c in (counts.tp, counts.fp, counts.fn)]

        def resample_micro(indices: np.ndarray) -> np.ndarray:
            indices = _check_indices(indices)
            tp, fp, fn = (t[indices].sum(axis=1) for t in totals)
            return prf(tp, fp, fn)[_STAT_INDEX[stat]]

        return resample_micro

    k = counts.tp.shape[1]
    stacked = np.concatenate([counts.tp, counts.fp, counts.fn], axis=1).astype(float)  # [N, 3K]

    def resample_macro(indices: np.ndarray) -> np.ndarray:
        sums = resample_weights(_check_indices(indices), stacked.shape[0]) @ stacked  # [R, 3K]
        return _macro(sums[:, :k], sums[:, k:2 * k], sums[:, 2 * k:], stat)

    return resample_macro


# ------------------------------------------------------------------------------------------------ metrics


@dataclass(frozen=True)
class _Spec:
    key: str
    stat: str
    average: str
    observations: tuple[str, ...]


_SPECS: tuple[_Spec, ...] = (
    _Spec("ce_precision_micro", "precision", "micro", OBSERVATIONS),
    _Spec("ce_recall_micro", "recall", "micro", OBSERVATIONS),
    _Spec("ce_f1_micro", "f1", "micro", OBSERVATIONS),
    _Spec("ce_precision_macro", "precision", "macro", OBSERVATIONS),
    _Spec("ce_recall_macro", "recall", "macro", OBSERVATIONS),
    _Spec("ce_f1_macro", "f1", "macro", OBSERVATIONS),
    _Spec("ce_f1_micro_5", "f1", "micro", COMMON_FIVE),
    _Spec("ce_f1_macro_5", "f1", "macro", COMMON_FIVE),
)
CE_METRIC_KEYS: tuple[str, ...] = tuple(spec.key for spec in _SPECS)


def _metric(counts: Counts, spec: _Spec, mapping: str, labeler: str | None) -> MetricResult:
    sub = counts.columns([OBSERVATIONS.index(o) for o in spec.observations])
    aggregate = _micro if spec.average == "micro" else _macro
    value = aggregate(sub.tp.sum(axis=0), sub.fp.sum(axis=0), sub.fn.sum(axis=0), spec.stat)
    details: dict[str, Any] = {
        "mapping": mapping,
        "average": spec.average,
        "observations": list(spec.observations),
        "zero_division": 0,
        "per_sample": f"example-based per-study {spec.stat}; 1.0 when both have no positives",
        "n": int(sub.tp.shape[0]),
    }
    if labeler is not None:
        details["labeler"] = labeler
    return MetricResult(
        value=float(value),
        per_sample=per_study_scores(sub, spec.stat).tolist(),
        resample=_resampler(sub, spec.average, spec.stat),
        details=details,
    )


def ce_metrics(pred_labels: LabelInput, ref_labels: LabelInput, mapping: str = DEFAULT_MAPPING,
               labeler: str | None = None) -> dict[str, MetricResult]:
    """CE precision / recall / F1 (micro and macro over 14 observations, F1 over the common five).

    ``pred_labels`` and ``ref_labels`` label the same studies in the same order. ``labeler`` (its name) is
    recorded in each result's details with the mapping. With no studies every metric is unavailable.
    """
    counts = binary_counts(pred_labels, ref_labels, mapping)
    if counts.tp.shape[0] == 0:
        return {spec.key: MetricResult.missing("no studies to score") for spec in _SPECS}
    return {spec.key: _metric(counts, spec, mapping, labeler) for spec in _SPECS}


def ce_per_observation(pred_labels: LabelInput, ref_labels: LabelInput,
                       mapping: str = DEFAULT_MAPPING) -> list[dict[str, Any]]:
    """One row per observation: observation, support (reference positives), predicted, precision, recall,
    f1 (0/0 = 0)."""
    counts = binary_counts(pred_labels, ref_labels, mapping)
    tp, fp, fn = counts.tp.sum(axis=0), counts.fp.sum(axis=0), counts.fn.sum(axis=0)
    precision, recall, f1 = prf(tp, fp, fn)
    return [
        {
            "observation": observation,
            "support": int(tp[j] + fn[j]),
            "predicted": int(tp[j] + fp[j]),
            "precision": float(precision[j]),
            "recall": float(recall[j]),
            "f1": float(f1[j]),
        }
        for j, observation in enumerate(OBSERVATIONS)
    ]


def ce_from_reports(pred_reports: Sequence[str], ref_reports: Sequence[str], labeler: Any,
                    mapping: str = DEFAULT_MAPPING) -> dict[str, MetricResult]:
    """Label both report lists with ``labeler`` (anything with ``name`` and ``label``) and score them."""
    if len(pred_reports) != len(ref_reports):
        raise DataError(f"{len(pred_reports)} generated reports but {len(ref_reports)} references")
    generated = label_reports(labeler, pred_reports, "generated")
    return ce_metrics(generated, label_reports(labeler, ref_reports, "reference"), mapping, labeler.name)


def label_reports(labeler: Any, reports: Sequence[str], which: str = "") -> list[Any]:
    """``labeler.label`` over many reports in chunks, with progress (a bar, or log lines in a batch job)."""
    from rrgbench.logs import in_chunks

    desc = f"labelling {which + ' ' if which else ''}reports ({labeler.name})"
    return in_chunks(labeler.label, list(reports), desc)
