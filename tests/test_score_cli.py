"""``rrgbench score`` and ``rrgbench label``: external systems scored into a run-shaped record, offline."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jsonschema
import pytest
from report_files import write_csv, write_jsonl

from rrgbench.cli import main
from rrgbench.errors import DataError
from rrgbench.metrics.labelers import OBSERVATIONS, CheXpertRulesLabeler
from rrgbench.record import SCHEMA_FILE
from rrgbench.scoring.external import ReportFile, match_reports, read_reports

REFERENCES = {
    "s1": "The heart size is normal. No pleural effusion or pneumothorax.",
    "s2": "Mild cardiomegaly.  Small LEFT pleural effusion; possible atelectasis.",
    "s3": "Lungs are clear.\nNo acute cardiopulmonary process.",
    "s4": "Endotracheal tube in place. Moderate pulmonary edema.",
}
PREDICTIONS = {
    "s3": "lungs are clear . no acute process .",
    "s1": "The heart is normal in size. No effusion.",
    "s4": "Pulmonary edema, moderate. ET tube in place.",
    "s2": "Cardiomegaly with a small effusion.",
}
NLG_KEYS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider")




pytestmark = pytest.mark.usefixtures("no_metric_weights")


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    return write_csv(tmp_path / "my-system.csv", PREDICTIONS), write_jsonl(tmp_path / "refs.jsonl", REFERENCES)


def _score(tmp_path: Path, preds: Path, refs: Path, *extra: str) -> tuple[int, Path]:
    out = tmp_path / "scored"
    code = main(["score", "--predictions", str(preds), "--references", str(refs), "--out", str(out),
                 "--skip", "meteor", "--resamples", "50", *extra])
    return code, out


def test_score_writes_a_run_shaped_record(tmp_path, files, capsys):
    code, out = _score(tmp_path, *files, "--dataset", "iu-xray")
    assert code == 0, capsys.readouterr().err
    record = json.loads((out / "results.json").read_text())
    jsonschema.validate(record, json.loads(SCHEMA_FILE.read_text()))
    assert record["schema_version"] == 2 and record["kind"] == "external"
    assert record["model"] == "my-system" and record["dataset"] == "iu-xray"
    assert record["config"] is None and "no model was run" in record["efficiency"]["unavailable"]
    for key in (*NLG_KEYS, "ce_f1_micro", "ce_f1_macro"):
        entry = record["metrics"][key]
        assert isinstance(entry["value"], float) and len(entry["ci95"]) == 2, key
    assert record["metrics"]["meteor"]["value"] is None and "skipped" in record["metrics"]["meteor"]["unavailable"]
    protocol = record["protocol"]
    assert protocol["cleaning"] == "none" and protocol["external"]["matching"]["studies"] == 4
    clinical = protocol["metric_groups"]["clinical"]
    assert clinical["labeler"] == "chexpert-rules" and clinical["uncertain_mapping"] == "r2gen"
    assert record["environment"]["packages"]["pycocoevalcap"]
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == list(REFERENCES)  # references' order
    scores = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert [s["id"] for s in scores] == list(REFERENCES) and "rouge_l" in scores[0]
    assert (out / "ce_per_observation.csv").is_file()
    printed = capsys.readouterr().out
    assert "my-system on iu-xray: 4 studies" in printed and "results:" in printed


def test_clean_none_scores_the_strings_as_given(tmp_path, files):
    from rrgbench.metrics.nlg import score_nlg

    code, out = _score(tmp_path, *files, "--clean", "none")
    assert code == 0
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert {r["id"]: r["prediction"] for r in rows} == PREDICTIONS
    assert {r["id"]: r["reference"] for r in rows} == REFERENCES
    record = json.loads((out / "results.json").read_text())
    ids = list(REFERENCES)
    direct = score_nlg([PREDICTIONS[i] for i in ids], [REFERENCES[i] for i in ids], metrics=NLG_KEYS)
    for key in NLG_KEYS:
        assert record["metrics"][key]["value"] == direct[key].value, key


def test_clean_applies_r2gen_cleaning_to_both_sides(tmp_path, files):
    from rrgbench.data.cleaning import r2gen_text

    code, out = _score(tmp_path, *files, "--clean", "iu-xray")
    assert code == 0
    rows = {r["id"]: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    assert rows["s2"]["reference"] == r2gen_text(REFERENCES["s2"], "iu-xray")
    assert rows["s1"]["prediction"] == r2gen_text(PREDICTIONS["s1"], "iu-xray")
    assert json.loads((out / "results.json").read_text())["protocol"]["cleaning"] == "iu-xray"


SPACED_PREDICTIONS = {"s1": "the heart  size is normal .\n", "s2": "\tsmall  left effusion", "s3": "lungs clear",
                      "s4": "edema  ,  moderate"}
SPACED_REFERENCES = {"s1": "the heart size is  normal .", "s2": "small left\neffusion  .",
                     "s3": " lungs are clear\r\n", "s4": "moderate pulmonary edema"}


@pytest.mark.parametrize("clean", ["none", "whitespace"])
def test_clean_none_reproduces_pycocoevalcap_and_whitespace_folds(tmp_path, clean):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    preds = write_jsonl(tmp_path / "p.jsonl", SPACED_PREDICTIONS)
    refs = write_jsonl(tmp_path / "r.jsonl", SPACED_REFERENCES)
    code, out = _score(tmp_path, preds, refs, "--clean", clean)
    assert code == 0
    ids = list(SPACED_REFERENCES)
    side = (lambda text: text) if clean == "none" else (lambda text: " ".join(text.split()))
    gts, res = {i: [side(SPACED_REFERENCES[i])] for i in ids}, {i: [side(SPACED_PREDICTIONS[i])] for i in ids}
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    rouge, rouge_images = Rouge().compute_score(gts, res)
    assert metrics["rouge_l"]["value"] == pytest.approx(rouge, abs=1e-9)
    assert metrics["cider"]["value"] == pytest.approx(Cider().compute_score(gts, res)[0], abs=1e-9)
    assert metrics["bleu_4"]["value"] == pytest.approx(Bleu(4).compute_score(gts, res, verbose=0)[0][3], abs=1e-9)
    scores = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert [row["rouge_l"] for row in scores] == pytest.approx(list(rouge_images), abs=1e-12)
    folded_rouge = Rouge().compute_score({i: [" ".join(t[0].split())] for i, t in gts.items()},
                                         {i: [" ".join(t[0].split())] for i, t in res.items()})[0]
    assert (metrics["rouge_l"]["value"] == pytest.approx(folded_rouge)) == (clean == "whitespace")


def test_weights_absent_metrics_are_unavailable_in_record_and_leaderboard(tmp_path, files):
    code, out = _score(tmp_path, *files, "--labeler", "chexbert", "--name", "ext")
    assert code == 0
    record = json.loads((out / "results.json").read_text())
    for key in ("radgraph_f1", "radgraph_simple", "radgraph_complete", "ce_f1_micro"):
        entry = record["metrics"][key]
        assert entry["value"] is None and entry["unavailable"], key
    assert "RRGBENCH_RADGRAPH" in record["metrics"]["radgraph_f1"]["unavailable"]
    assert "RRGBENCH_CHEXBERT" in record["metrics"]["ce_f1_micro"]["unavailable"]

    from rrgbench.report.leaderboard import build_leaderboards

    [board] = build_leaderboards(tmp_path, tmp_path / "boards")
    table = board.read_text()
    hidden = [line for line in table.splitlines() if line.startswith("Not shown (n/a for every model):")]
    assert any("`radgraph_f1`" in line and "RadGraph model not found" in line for line in hidden)
    assert any("`ce_f1_micro`" in line and "CheXbert weights not found" in line for line in hidden)
    row = next(line for line in table.split("## Language")[1].splitlines() if line.startswith("| ext |"))
    header = next(line for line in table.split("## Language")[1].splitlines() if line.startswith("| model |"))
    cells = dict(zip([c.strip() for c in header.strip("|").split("|")], [c.strip() for c in row.strip("|").split("|")],
                     strict=True))
    assert cells["bleu_4 ↑"].strip("*") == f"{record['metrics']['bleu_4']['value']:.4f}"  # the record's value


def test_id_mismatch_is_a_clear_error_unless_partial(tmp_path, capsys):
    preds = write_csv(tmp_path / "p.csv", {"s1": "a .", "s2": "b .", "x9": "c ."})
    refs = write_csv(tmp_path / "r.csv", {"s1": "a .", "s2": "b .", "s3": "c .", "s4": "d ."})
    code, _ = _score(tmp_path, preds, refs)
    err = capsys.readouterr().err
    assert code == DataError.exit_code
    assert "2 missing in predictions (first: 's3', 's4')" in err and "1 extra in predictions (first: 'x9')" in err
    assert "--allow-partial" in err and err.strip().count("\n") == 0
    code, out = _score(tmp_path, preds, refs, "--allow-partial")
    assert code == 0
    matching = json.loads((out / "results.json").read_text())["protocol"]["external"]["matching"]
    assert matching == {"studies": 2, "missing_in_predictions": 2, "extra_in_predictions": 1, "partial": True}


def test_duplicates_and_missing_columns_are_errors(tmp_path):
    refs = ReportFile(Path("r"), ["a", "b", "b"], ["x", "y", "z"])
    preds = ReportFile(Path("p"), ["a", "b"], ["x", "y"])
    with pytest.raises(DataError, match=r"1 duplicated ids in references \(first: 'b'\)"):
        match_reports(preds, refs, allow_partial=True)
    bad = write_csv(tmp_path / "bad.csv", {"s1": "text"}, column="findings")
    with pytest.raises(DataError, match=r"no column 'report' .*columns: id, findings"):
        read_reports(bad)
    assert read_reports(bad, text_column="findings").texts == ["text"]
    with pytest.raises(DataError, match="blank references"):
        match_reports(ReportFile(Path("p"), ["a"], ["x"]), ReportFile(Path("r"), ["a"], ["  "]))


def test_label_writes_id_and_the_14_observations(tmp_path, capsys):
    source = write_csv(tmp_path / "reports.csv", REFERENCES)
    out = tmp_path / "labels.csv"
    assert main(["label", str(source), "--out", str(out)]) == 0, capsys.readouterr().err
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["id", *OBSERVATIONS]
    expected = CheXpertRulesLabeler().label(list(REFERENCES.values()))
    for row, labels in zip(rows, expected, strict=True):
        for observation in OBSERVATIONS:
            value = labels[observation]
            assert row[observation] == ("" if value is None else str(value)), (row["id"], observation)
    assert any(row[o] == "" for row in rows for o in OBSERVATIONS)


def test_label_with_unavailable_labeler_is_one_line(tmp_path, capsys):
    source = write_csv(tmp_path / "reports.csv", REFERENCES)
    code = main(["label", str(source), "--out", str(tmp_path / "l.csv"), "--labeler", "chexbert"])
    err = capsys.readouterr().err
    assert code == 2 and "CheXbert weights not found" in err and err.strip().count("\n") == 0
    assert not (tmp_path / "l.csv").exists()
