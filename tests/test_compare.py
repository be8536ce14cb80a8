"""``rrgbench compare`` and rrgbench.scoring.compare: paired tests between two runs, and mean ± std over seeds."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from record_factory import make_record, save

from rrgbench.cli import main
from rrgbench.errors import DataError
from rrgbench.io import write_jsonl
from rrgbench.metrics.nlg import score_nlg
from rrgbench.record import MetricValue
from rrgbench.scoring.compare import aggregate_seeds, compare_runs, load_predictions, single_run
from rrgbench.scoring.engine import ScoringContext

REFERENCES = [
    "the heart is normal in size . no pleural effusion .",
    "mild cardiomegaly . small left pleural effusion .",
    "lungs are clear . no pneumothorax .",
    "moderate pulmonary edema . endotracheal tube in place .",
    "no acute cardiopulmonary process .",
    "right lower lobe consolidation concerning for pneumonia .",
    "stable cardiomegaly without edema .",
    "no focal consolidation or effusion .",
]
GOOD = [
    "the heart is normal in size . no effusion .",
    "cardiomegaly . small left pleural effusion .",
    "lungs are clear . no pneumothorax .",
    "pulmonary edema . tube in place .",
    "no acute cardiopulmonary process .",
    "right lower lobe consolidation .",
    "stable cardiomegaly .",
    "no consolidation or effusion .",
]
BAD = ["no acute process ."] * len(REFERENCES)
IDS = [f"s{k}" for k in range(len(REFERENCES))]
KEYS = ["bleu_4", "rouge_l", "cider", "ce_f1_micro"]


def _run(folder: Path, predictions: list[str], order: list[int] | None = None, metrics: dict | None = None) -> Path:
    order = order if order is not None else list(range(len(IDS)))
    write_jsonl(folder / "predictions.jsonl",
                [{"id": IDS[k], "prediction": predictions[k], "reference": REFERENCES[k]} for k in order])
    if metrics is not None:
        save(folder, make_record(folder.parent.name, metrics=metrics))
    return folder


@pytest.fixture(autouse=True)
def no_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("RRGBENCH_RADGRAPH", str(tmp_path / "no-radgraph"))


@pytest.fixture
def runs(tmp_path) -> tuple[Path, Path]:
    return _run(tmp_path / "a", GOOD), _run(tmp_path / "b", BAD, order=list(reversed(range(len(IDS)))))


def _context() -> ScoringContext:
    return ScoringContext(skip=frozenset({"meteor"}))


def test_paired_bootstrap_rows(runs):
    a, b = (load_predictions(path) for path in runs)
    rows = {row.metric: row for row in compare_runs(a, b, _context(), metrics=KEYS, n_resamples=200)}
    assert list(rows) == KEYS
    expected_a = score_nlg(GOOD, REFERENCES, metrics=("bleu_4", "rouge_l", "cider"))
    expected_b = score_nlg(BAD, REFERENCES, metrics=("bleu_4", "rouge_l", "cider"))
    for key in ("bleu_4", "rouge_l", "cider"):
        row = rows[key]
        assert row.a == pytest.approx(expected_a[key].value) and row.b == pytest.approx(expected_b[key].value)
        assert row.delta == pytest.approx(row.a - row.b)
        assert row.ci95[0] <= row.delta <= row.ci95[1]
        assert 0.0 < row.p_value <= 1.0 and row.note is None
    assert rows["rouge_l"].p_value < 0.05  # much better on every study


def test_identical_runs_have_zero_delta_and_p_one(runs, tmp_path):
    a = load_predictions(runs[0])
    twin = load_predictions(_run(tmp_path / "twin", GOOD))
    for row in compare_runs(a, twin, _context(), metrics=KEYS, n_resamples=100):
        assert row.delta == 0.0 and row.ci95 == (0.0, 0.0) and row.p_value == 1.0


def test_randomization_p_values_and_opaque_metrics(runs):
    a, b = (load_predictions(path) for path in runs)
    rows = {row.metric: row for row in compare_runs(a, b, _context(), metrics=KEYS, test="randomization",
                                                    n_resamples=200)}
    assert rows["bleu_4"].p_value is not None and rows["rouge_l"].p_value is not None
    assert rows["ce_f1_micro"].p_value is None and "use bootstrap" in rows["ce_f1_micro"].note
    assert rows["ce_f1_micro"].ci95 is not None  # the CI of the difference still comes from the bootstrap


def test_unavailable_metric_row_carries_the_reason(runs):
    a, b = (load_predictions(path) for path in runs)
    [row] = compare_runs(a, b, _context(), metrics=["radgraph_f1"], n_resamples=10)
    assert row.delta is None and row.p_value is None and "RadGraph" in row.note


def test_refuses_different_studies_or_references(runs, tmp_path):
    a = load_predictions(runs[0])
    fewer = load_predictions(_run(tmp_path / "fewer", GOOD, order=[0, 1, 2]))
    with pytest.raises(DataError, match=r"5 only in A \(first: 's3', 's4', 's5', \.\.\.\), 0 only in B"):
        compare_runs(a, fewer, _context())
    other = tmp_path / "other"
    write_jsonl(other / "predictions.jsonl", [{"id": i, "prediction": p, "reference": r.upper()}
                                              for i, p, r in zip(IDS, GOOD, REFERENCES, strict=True)])
    with pytest.raises(DataError, match="8 studies have different references"):
        compare_runs(a, load_predictions(other), _context())


def test_cli_prints_the_table_and_writes_json(runs, tmp_path, capsys):
    out = tmp_path / "cmp.json"
    code = main(["compare", str(runs[0]), str(runs[1]), "--metrics", "bleu_4,rouge_l", "--metrics", "ce_f1_micro",
                 "--resamples", "100", "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    lines = printed.out.splitlines()
    assert any(line.startswith("metric") and "95% CI of delta" in line and line.rstrip().endswith("p")
               for line in lines)
    assert any(line.startswith("rouge_l ↑") for line in lines) and "delta = A - B" in printed.out
    saved = json.loads(out.read_text())
    assert [row["metric"] for row in saved["rows"]] == ["bleu_4", "rouge_l", "ce_f1_micro"]
    assert saved["labeler"] == "chexpert-rules"


def test_cli_unknown_metric_and_folder_of_runs(runs, tmp_path, capsys):
    assert main(["compare", str(runs[0]), str(runs[1]), "--metrics", "rouge"]) == 2
    assert "unknown metric 'rouge'" in capsys.readouterr().err
    with pytest.raises(DataError, match=r"holds 2 runs.*--seeds"):
        single_run(tmp_path)


def test_aggregate_seeds():
    def record(bleu, cider):
        metrics = {"bleu_4": MetricValue(bleu), "meteor": MetricValue(None, unavailable="no java"),
                   "cider": MetricValue(cider, unavailable=None if cider is not None else "skipped")}
        return SimpleNamespace(metrics=metrics)

    summary = aggregate_seeds([record(0.1, 0.5), record(0.3, None)])
    assert summary["bleu_4"] == pytest.approx((0.2, 0.1414213562, 2))
    assert summary["cider"] == (0.5, 0.0, 1)
    assert "meteor" not in summary


def test_cli_seeds_table(tmp_path, capsys):
    for seed, value in enumerate((0.2, 0.4)):
        _run(tmp_path / "A" / f"s{seed}", GOOD, metrics={"bleu_4": {"value": value}})
    _run(tmp_path / "B" / "s0", BAD, metrics={"bleu_4": {"value": 0.1}})
    code = main(["compare", "--seeds", str(tmp_path / "A"), str(tmp_path / "B")])
    printed = capsys.readouterr().out
    assert code == 0
    assert "0.3000 ± 0.1414 (2)" in printed and "0.1000 ± 0.0000 (1)" in printed
