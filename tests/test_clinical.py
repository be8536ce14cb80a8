"""Tests for the clinical efficacy metrics (rrgbench.metrics.clinical)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rrgbench.errors import DataError, UnknownNameError
from rrgbench.metrics.base import MetricResult
from rrgbench.metrics.clinical import (
    CE_METRIC_KEYS,
    UNCERTAIN_MAPPINGS,
    binary_counts,
    ce_from_reports,
    ce_metrics,
    ce_per_observation,
    labels_to_matrix,
    resample_weights,
)
from rrgbench.metrics.labelers import COMMON_FIVE, OBSERVATIONS, CheXpertRulesLabeler

# Three studies, hand-computed below. Everything not listed is blank.
PRED = [
    {"Cardiomegaly": 1, "Edema": -1},
    {"Pleural Effusion": 1},
    {"No Finding": 1},
]
REF = [
    {"Cardiomegaly": 1, "Edema": 1},
    {"Pleural Effusion": 0, "Cardiomegaly": 1},
    {"No Finding": 1},
]
# r2gen mapping: tp = Cardiomegaly(0), No Finding(2); fp = Pleural Effusion(1); fn = Edema(0) (-1 is
# negative), Cardiomegaly(1). Per observation: Cardiomegaly P=1 R=1/2 F1=2/3; No Finding 1/1/1; Edema and
# Pleural Effusion 0/0/0; the other ten observations have no positives at all: 0/0/0 (zero_division=0), and
# they count in the macro mean.
R2GEN_EXPECTED = {
    "ce_precision_micro": 2 / 3,
    "ce_recall_micro": 2 / 4,
    "ce_f1_micro": 4 / 7,
    "ce_precision_macro": (1 + 1) / 14,
    "ce_recall_macro": (0.5 + 1) / 14,
    "ce_f1_macro": (2 / 3 + 1) / 14,
    "ce_f1_micro_5": 2 / 5,  # five: tp Cardiomegaly(0); fp Effusion(1); fn Edema(0), Cardiomegaly(1)
    "ce_f1_macro_5": (2 / 3) / 5,
}
# chexbert mapping: the uncertain Edema prediction becomes a true positive.
CHEXBERT_EXPECTED = {
    "ce_precision_micro": 3 / 4,
    "ce_recall_micro": 3 / 4,
    "ce_f1_micro": 6 / 8,
    "ce_f1_micro_5": 4 / 6,
    "ce_f1_macro": (2 / 3 + 1 + 1) / 14,
}


def random_labels(rng: np.random.Generator, n: int) -> np.ndarray:
    values = np.array([1.0, 0.0, -1.0, np.nan])
    return values[rng.integers(0, 4, size=(n, len(OBSERVATIONS)))]


# --------------------------------------------------------------------------------------------- label matrix


def test_labels_to_matrix() -> None:
    matrix = labels_to_matrix([{"Cardiomegaly": 1, "Edema": -1, "Fracture": None}, {}])
    assert matrix.shape == (2, 14)
    assert matrix[0, OBSERVATIONS.index("Cardiomegaly")] == 1
    assert matrix[0, OBSERVATIONS.index("Edema")] == -1
    assert np.isnan(matrix[0, OBSERVATIONS.index("Fracture")])
    assert np.isnan(matrix[1]).all()


@pytest.mark.parametrize("bad", [2, "yes", 0.5])
def test_labels_to_matrix_rejects_other_values(bad: object) -> None:
    with pytest.raises(DataError, match="Edema"):
        labels_to_matrix([{"Edema": bad}])  # type: ignore[dict-item]


def test_matrix_input_is_checked() -> None:
    with pytest.raises(DataError, match="shape"):
        ce_metrics(np.zeros((3, 5)), np.zeros((3, 5)))
    bad = np.zeros((2, 14))
    bad[0, 0] = 3
    with pytest.raises(DataError, match="values"):
        ce_metrics(bad, np.zeros((2, 14)))


def test_matrix_and_dict_inputs_agree() -> None:
    from_dicts = ce_metrics(PRED, REF)
    from_matrix = ce_metrics(labels_to_matrix(PRED), labels_to_matrix(REF))
    assert {k: r.value for k, r in from_dicts.items()} == {k: r.value for k, r in from_matrix.items()}


# -------------------------------------------------------------------------------------- hand-computed values


def test_keys_and_result_type() -> None:
    results = ce_metrics(PRED, REF)
    assert tuple(results) == CE_METRIC_KEYS == (
        "ce_precision_micro", "ce_recall_micro", "ce_f1_micro", "ce_precision_macro", "ce_recall_macro",
        "ce_f1_macro", "ce_f1_micro_5", "ce_f1_macro_5",
    )
    for result in results.values():
        assert isinstance(result, MetricResult)
        assert result.higher_is_better and result.unavailable is None
        assert len(result.per_sample or []) == 3
        assert result.details["mapping"] == "r2gen" and result.details["zero_division"] == 0
    assert results["ce_f1_micro_5"].details["observations"] == list(COMMON_FIVE)


@pytest.mark.parametrize("key", sorted(R2GEN_EXPECTED))
def test_hand_computed_r2gen(key: str) -> None:
    assert ce_metrics(PRED, REF, mapping="r2gen")[key].value == pytest.approx(R2GEN_EXPECTED[key])


@pytest.mark.parametrize("key", sorted(CHEXBERT_EXPECTED))
def test_hand_computed_chexbert(key: str) -> None:
    assert ce_metrics(PRED, REF, mapping="chexbert")[key].value == pytest.approx(CHEXBERT_EXPECTED[key])


def test_default_mapping_is_r2gen() -> None:
    assert ce_metrics(PRED, REF)["ce_f1_micro"].value == pytest.approx(4 / 7)


def test_uncertain_mapping_difference() -> None:
    pred, ref = [{"Edema": -1}], [{"Edema": 1}]
    r2gen = ce_per_observation(pred, ref, mapping="r2gen")[OBSERVATIONS.index("Edema")]
    chexbert = ce_per_observation(pred, ref, mapping="chexbert")[OBSERVATIONS.index("Edema")]
    assert (r2gen["predicted"], r2gen["recall"]) == (0, 0.0)
    assert (chexbert["predicted"], chexbert["recall"], chexbert["f1"]) == (1, 1.0, 1.0)
    # an uncertain reference is negative under r2gen, positive under chexbert
    pred, ref = [{"Edema": 1}], [{"Edema": -1}]
    assert ce_metrics(pred, ref, mapping="r2gen")["ce_precision_micro"].value == 0.0
    assert ce_metrics(pred, ref, mapping="chexbert")["ce_precision_micro"].value == 1.0
    assert UNCERTAIN_MAPPINGS["r2gen"].positive_values == {1}
    assert UNCERTAIN_MAPPINGS["chexbert"].positive_values == {1, -1}


def test_blank_and_zero_are_both_negative() -> None:
    counts = binary_counts([{"Edema": 0}, {}], [{}, {"Edema": 0}])
    assert counts.tp.sum() == counts.fp.sum() == counts.fn.sum() == 0


def test_per_observation_table() -> None:
    rows = ce_per_observation(PRED, REF)
    assert [row["observation"] for row in rows] == list(OBSERVATIONS)
    cardio = rows[OBSERVATIONS.index("Cardiomegaly")]
    assert cardio == {"observation": "Cardiomegaly", "support": 2, "predicted": 1, "precision": 1.0,
                      "recall": 0.5, "f1": pytest.approx(2 / 3)}
    assert rows[OBSERVATIONS.index("Fracture")]["f1"] == 0.0
    assert rows[OBSERVATIONS.index("Pleural Effusion")]["support"] == 0


def test_agrees_with_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    pred, ref = random_labels(rng, 300), random_labels(rng, 300)
    ref[:, OBSERVATIONS.index("Fracture")] = np.nan  # an observation that no reference has
    five = [OBSERVATIONS.index(o) for o in COMMON_FIVE]
    for mapping, positive in (("r2gen", [1]), ("chexbert", [1, -1])):
        results = ce_metrics(pred, ref, mapping=mapping)
        y_pred, y_true = np.isin(pred, positive).astype(int), np.isin(ref, positive).astype(int)
        for average in ("micro", "macro"):
            p, r, f, _ = metrics.precision_recall_fscore_support(
                y_true, y_pred, average=average, zero_division=0
            )
            assert results[f"ce_precision_{average}"].value == pytest.approx(p)
            assert results[f"ce_recall_{average}"].value == pytest.approx(r)
            assert results[f"ce_f1_{average}"].value == pytest.approx(f)
            f5 = metrics.f1_score(y_true[:, five], y_pred[:, five], average=average, zero_division=0)
            assert results[f"ce_f1_{average}_5"].value == pytest.approx(f5)


# ------------------------------------------------------------------------------------------ per-study scores


def test_per_sample_scores() -> None:
    pred = [*PRED, {}, {}]
    ref = [*REF, {}, {"Edema": 1}]  # study 3: nothing either side; study 4: a missed positive
    results = ce_metrics(pred, ref)
    assert results["ce_f1_micro"].per_sample == pytest.approx([2 / 3, 0.0, 1.0, 1.0, 0.0])
    assert results["ce_precision_micro"].per_sample == pytest.approx([1.0, 0.0, 1.0, 1.0, 0.0])
    assert results["ce_recall_micro"].per_sample == pytest.approx([0.5, 0.0, 1.0, 1.0, 0.0])
    assert results["ce_f1_macro"].per_sample == results["ce_f1_micro"].per_sample
    # over the five: study 2 (No Finding only) has nothing to count
    assert results["ce_f1_micro_5"].per_sample == pytest.approx([2 / 3, 0.0, 1.0, 1.0, 0.0])


# ------------------------------------------------------------------------------------------------ resampling


def test_identity_resample_equals_value() -> None:
    rng = np.random.default_rng(0)
    pred, ref = random_labels(rng, 50), random_labels(rng, 50)
    identity = np.arange(50)[None, :]
    for key, result in ce_metrics(pred, ref).items():
        assert result.resampled(identity)[0] == pytest.approx(result.value), key


def test_resample_recomputes_on_resampled_studies() -> None:
    rng = np.random.default_rng(1)
    pred, ref = random_labels(rng, 40), random_labels(rng, 40)
    indices = rng.integers(0, 40, size=(5, 40))
    results = ce_metrics(pred, ref, mapping="chexbert")
    for row, idx in enumerate(indices):
        direct = ce_metrics(pred[idx], ref[idx], mapping="chexbert")
        for key, result in results.items():
            assert result.resampled(indices)[row] == pytest.approx(direct[key].value), key


def test_resample_weights() -> None:
    weights = resample_weights(np.array([[0, 0, 2], [1, 2, 1]]), 3)
    assert weights.tolist() == [[2, 0, 1], [0, 2, 1]]
    with pytest.raises(ValueError, match="2-D"):
        resample_weights(np.array([0, 1]), 2)


def test_large_bootstrap_shape() -> None:
    """1,000 x 4,000 resamples go through every resampler (speed is measured, not asserted)."""
    rng = np.random.default_rng(2)
    pred, ref = random_labels(rng, 4000), random_labels(rng, 4000)
    indices = rng.integers(0, 4000, size=(1000, 4000))
    for key, result in ce_metrics(pred, ref).items():
        values = result.resampled(indices)
        assert values.shape == (1000,), key
        assert np.all((values >= 0) & (values <= 1)), key
        assert abs(float(values.mean()) - result.value) < 0.02, key


# -------------------------------------------------------------------------------------------------- errors


def test_unknown_mapping() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'chexbert'"):
        ce_metrics(PRED, REF, mapping="chexbrt")


def test_length_mismatch() -> None:
    with pytest.raises(DataError, match="2 predicted label sets but 3 reference"):
        ce_metrics(PRED[:2], REF)


def test_no_studies_is_unavailable_not_zero() -> None:
    results = ce_metrics([], [])
    assert set(results) == set(CE_METRIC_KEYS)
    for result in results.values():
        assert result.value is None and result.unavailable == "no studies to score"


# ---------------------------------------------------------------------------------------------- from reports


def test_ce_from_reports_records_labeler_and_mapping() -> None:
    labeler = CheXpertRulesLabeler()
    generated = ["Mild cardiomegaly. No effusion.", "Possible small left effusion.", "Lungs are clear."]
    references = ["Cardiomegaly. Small left pleural effusion.", "Small left effusion.", "No acute process."]
    results = ce_from_reports(generated, references, labeler, mapping="chexbert")
    f1 = results["ce_f1_micro"]
    assert f1.details["labeler"] == "chexpert-rules" and f1.details["mapping"] == "chexbert"
    # chexbert: tp Cardiomegaly(0), Effusion(1), No Finding(2); fn Effusion(0) -> F1 = 6 / 7
    assert f1.value == pytest.approx(6 / 7)
    assert not math.isclose(ce_from_reports(generated, references, labeler)["ce_f1_micro"].value, 6 / 7)
    with pytest.raises(DataError, match="2 generated reports but 3"):
        ce_from_reports(generated[:2], references, labeler)
