"""The command line end to end: a tiny real run, listings, and one-line errors without tracebacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import jsonschema
import pytest

from rrgbench.cli import main
from rrgbench.record import SCHEMA_FILE

NLG_KEYS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider")


def _sets(overrides):
    args = []
    for key, value in overrides.items():
        args += ["--set", f"{key}={value}"]
    return args


@pytest.mark.slow
def test_tiny_run_writes_a_complete_record(tmp_path, tiny, capsys):
    code = main(["run", "--model", "transformer", "--dataset", "synthetic", "--device", "cpu", "--out",
                 str(tmp_path), "--no-progress", *_sets(tiny)])
    assert code == 0, capsys.readouterr().err
    [results] = list(tmp_path.rglob("results.json"))
    record = json.loads(results.read_text())
    jsonschema.validate(record, json.loads(SCHEMA_FILE.read_text()))
    assert record["schema_version"] == 2 and record["kind"] == "training"
    assert record["model"] == "transformer" and record["dataset"] == "synthetic"
    java = shutil.which("java") is not None
    for key in (*NLG_KEYS, "ce_f1_micro", "ce_f1_macro", "ce_precision_micro"):
        entry = record["metrics"][key]
        if key == "meteor" and not java:
            assert "Java" in entry["unavailable"]
            continue
        assert isinstance(entry["value"], float) and len(entry["ci95"]) == 2, key
        assert entry["ci95"][0] <= entry["value"] <= entry["ci95"][1], key
    assert "Radgraph" in record["metrics"]["radgraph_f1"]["unavailable"] or \
        "RadGraph" in record["metrics"]["radgraph_f1"]["unavailable"]
    [point] = record["validation"]["history"]
    assert point["step"] == 2 and set(point["values"]) == {"bleu_4", "ce_f1_micro"}
    assert record["predictions"]["studies"] == 12 and 0 < record["predictions"]["most_frequent_share"] <= 1
    assert [row["observation"] for row in record["tables"]["ce_per_observation"]][:2] == [
        "No Finding", "Enlarged Cardiomediastinum"]
    assert record["protocol"]["splits"] == {"train": 48, "val": 12, "test": 12}
    assert record["protocol"]["profile"] == "small"
    assert record["environment"]["packages"]["torch"]
    run_dir = results.parent
    for name in ("config.json", "vocab.json", "status.json", "train_log.jsonl", "predictions.jsonl",
                 "ce_per_observation.csv", "checkpoints/best.pt", "checkpoints/best.json", "checkpoints/last.pt"):
        assert (run_dir / name).exists(), name
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(row["id"].startswith("synth-test-") for row in rows)
    assert all(set(row) == {"id", "prediction", "reference"} for row in rows)

    board = tmp_path / "board"
    assert main(["leaderboard", "--runs", str(tmp_path), "--out", str(board)]) == 0
    table = (board / "synthetic" / "leaderboard.md").read_text()
    assert "| transformer |" in table and "bleu_4 ↑" in table


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "rrgbench", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def test_unknown_model_is_one_line_with_suggestion():
    result = _cli("run", "--model", "transfomer")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "did you mean 'transformer'" in result.stderr and "Traceback" not in result.stderr


def test_real_dataset_without_data_says_where_it_goes(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k != "RRGBENCH_DATA"}
    result = _cli("run", "--model", "transformer", "--dataset", "mimic-cxr", "--out", str(tmp_path), env=env)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert "--data-dir" in result.stderr and "rrgbench data prepare mimic-cxr" in result.stderr


def test_bad_set_value_is_one_line(tmp_path):
    result = _cli("run", "--model", "transformer", "--set", "decode.beam_size=zero", "--out", str(tmp_path))
    assert result.returncode == 2 and "decode.beam_size: expected int, got 'zero'" in result.stderr


def test_list_models_and_options(capsys):
    assert main(["list", "models", "--options"]) == 0
    out = capsys.readouterr().out
    assert "transformer" in out and "decoder.layers" in out
    assert main(["list", "datasets"]) == 0
    assert "synthetic" in capsys.readouterr().out


def test_plugins_command_lists_builtins(capsys):
    assert main(["plugins"]) == 0
    assert "builtins" in capsys.readouterr().out


@pytest.mark.slow
def test_validate_from_skips_early_epochs_and_always_validates_the_last(tmp_path, tiny, capsys):
    settings = {**tiny, "train.epochs": 3, "train.max_steps_per_epoch": 1, "train.validate_from": 3}
    code = main(["run", "--model", "transformer", "--dataset", "synthetic", "--device", "cpu", "--out",
                 str(tmp_path), "--no-progress", *_sets(settings)])
    output = capsys.readouterr()
    assert code == 0, output.err
    assert "epoch 1: not validated (train.validate_from 3)" in output.out + output.err
    [log] = list(tmp_path.rglob("train_log.jsonl"))
    validated = [row["epoch"] for row in map(json.loads, log.read_text().splitlines()) if row["event"] == "validate"]
    assert validated == [2]
    record = json.loads((log.parent / "results.json").read_text())
    assert record["validation"]["best_epoch"] == 2

    past_the_end = {**settings, "train.epochs": 2, "train.validate_from": 9}
    assert main(["run", "--model", "transformer", "--dataset", "synthetic", "--device", "cpu", "--out",
                 str(tmp_path / "late"), "--no-progress", *_sets(past_the_end)]) == 0
    [log] = list((tmp_path / "late").rglob("train_log.jsonl"))
    assert [row["epoch"] for row in map(json.loads, log.read_text().splitlines())
            if row["event"] == "validate"] == [1]
