"""The run record: the shipped JSON Schema is the dataclasses' own, records round-trip, version 1 still loads."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from record_factory import make_record, metric, save

from rrgbench.errors import DataError
from rrgbench.record import (
    SCHEMA_FILE,
    SCHEMA_VERSION,
    RunRecord,
    dig,
    json_schema,
    load_records,
    read_record,
    upgrade_v1,
    write_record,
)

V1 = Path(__file__).parent / "fixtures" / "records_v1"


def test_the_shipped_schema_is_generated_from_the_record_types():
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), "regenerate it with record.write_json_schema()"


def test_a_record_round_trips_and_validates(tmp_path):
    record = make_record("sys", metrics={"bleu_4": metric(0.2, (0.1, 0.3)), "meteor": metric(None, unavailable="x")})
    path = save(tmp_path, record).joinpath("results.json")
    data = json.loads(path.read_text())
    jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text()))
    assert read_record(path) == record and data["schema_version"] == SCHEMA_VERSION


def test_version_1_records_load_with_every_measured_figure():
    loaded = load_records(V1)
    assert len(loaded.records) == 4 and not loaded.problems
    by_model = {r.model: r for r in loaded.records}
    mcsam = by_model["mcsam"]
    assert mcsam.kind == "training" and mcsam.efficiency.train.step_seconds.median > 0
    assert mcsam.efficiency.retrieval.memory_size == 256
    assert dig(mcsam.efficiency.inference.latency_batch1, "seconds", "median") > 0
    assert mcsam.protocol.metric_groups["clinical"]["labeler"] == "chexpert-rules"
    assert mcsam.protocol.dataset["synthetic"]["difficulty"] == 0.5
    assert mcsam.metrics["bleu_4"].group == "nlg" and mcsam.metrics["ce_f1_micro"].group == "clinical"
    assert by_model["mcsam-no-sam"].ablation_of == "mcsam" and by_model["transformer"].ablation_of is None
    schema = json.loads(SCHEMA_FILE.read_text())
    for record in loaded.records:
        jsonschema.validate(record.to_json(), schema)
        raw = json.loads(next((V1 / record.model).glob("results.json")).read_text())
        assert {k: v["value"] for k, v in raw["metrics"].items()} == {k: v.value for k, v in record.metrics.items()}


def test_a_version_1_external_record_keeps_its_matching():
    raw = {"schema_version": 1, "run_id": "x", "model": "sys", "dataset": "iu-xray", "profile": None, "seed": None,
           "metrics": {"bleu_4": {"value": 0.1, "higher_is_better": True}},
           "validation": None, "efficiency": {}, "environment": {"packages": {}, "python": "3", "platform": "p",
                                                                  "device": "cpu"},
           "protocol": {"source": "external", "cleaning": "none", "references": "as given",
                        "matching": {"studies": 3}, "predictions_file": "p.csv", "references_file": "r.csv",
                        "bootstrap": {"resamples": 10, "seed": 0, "level": 0.95, "unit": "study"}},
           "config": {"external": {"name": "sys"}}, "created": "now"}
    record = RunRecord.from_json(upgrade_v1(raw))
    assert record.kind == "external" and record.config is None
    assert record.protocol.external["matching"] == {"studies": 3} and record.efficiency.unavailable


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(schema_version=7), "unknown schema_version 7"),
    (lambda d: d.update(kind="guess"), "kind must be one of"),
    (lambda d: d["metrics"]["bleu_4"].update(value="high"), "expected a number"),
    (lambda d: d.update(surprise=1), "unknown field"),
    (lambda d: d.pop("model"), "model"),
])
def test_a_malformed_record_is_a_data_error_naming_the_problem(tmp_path, mutate, message):
    data = make_record("sys", metrics={"bleu_4": 0.2}).to_json()
    mutate(data)
    (tmp_path / "results.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=message):
        read_record(tmp_path / "results.json")


def test_loading_lists_unreadable_records_instead_of_dropping_them(tmp_path):
    save(tmp_path / "a", make_record("a", metrics={"bleu_4": 0.2}))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "results.json").write_text('{"schema_version": 2, "kind"')
    loaded = load_records(tmp_path, strict=False)
    assert [r.model for r in loaded.records] == ["a"]
    [problem] = loaded.problems
    assert "b/results.json" in problem and "malformed JSON" in problem
    with pytest.raises(DataError, match="malformed JSON"):
        load_records(tmp_path)


def test_non_finite_numbers_are_never_written(tmp_path):
    record = make_record("sys", metrics={"bleu_4": 0.2})
    record.metrics["bleu_4"].value = float("nan")
    write_record(tmp_path / "results.json", record)
    assert json.loads((tmp_path / "results.json").read_text())["metrics"]["bleu_4"]["value"] is None
