"""``rrgbench evaluate`` / ``predict`` from a checkpoint alone, and the multi-seed summary of ``rrgbench run``."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from conftest import TINY

from rrgbench.cli import main
from rrgbench.record import SCHEMA_FILE

FAST = {**TINY, "encoder.backbone": "test_resnet", "decode.max_len": 12}


def _sets(values):
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


def _read(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny finished run (no training: the weights only have to round-trip)."""
    out = tmp_path_factory.mktemp("runs")
    code = main(["run", "--model", "transformer", "--device", "cpu", "--out", str(out), "--skip", "meteor",
                 "--no-progress", "--efficiency", "off", *_sets({**FAST, "train.epochs": 0})])
    assert code == 0
    [record] = list(out.rglob("results.json"))
    return record.parent


@pytest.mark.slow
def test_evaluate_rebuilds_the_model_and_reproduces_the_run(trained, tmp_path, capsys):
    best = trained / "checkpoints" / "best.pt"
    code = main(["evaluate", "--checkpoint", str(best), "--out", str(tmp_path), "--device", "cpu", "--skip", "meteor",
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    [record_file] = list(tmp_path.rglob("results.json"))
    run = record_file.parent
    record, original = _read(record_file), _read(trained / "results.json")
    jsonschema.validate(record, _read(SCHEMA_FILE))
    assert (record["kind"], original["kind"]) == ("evaluation", "training")
    assert record["evaluated_from"] == str(best.resolve()) and original["evaluated_from"] is None
    assert record["studies"] == original["studies"]
    assert record["protocol"]["evaluation"]["sha256"] == _read(best.with_suffix(".json"))["sha256"]
    assert record["metrics"] == original["metrics"]
    assert (run / "predictions.jsonl").read_bytes() == (trained / "predictions.jsonl").read_bytes()
    assert _read(run / "vocab.json") == _read(trained / "vocab.json")  # the checkpoint's, not rebuilt
    assert _read(run / "status.json")["status"] == "finished"


def test_predict_is_the_evaluation_decode_of_one_study(trained, capsys):
    import torch

    from rrgbench.data.loader import StudyDataset, make_loader
    from rrgbench.data.studies import Study
    from rrgbench.extension.plugins import registry
    from rrgbench.run.evaluate import decode_loader, load_trained

    best = trained / "checkpoints" / "best.pt"
    folder = Path(_read(trained / "results.json")["protocol"]["dataset"]["synthetic"]["folder"])
    entry = _read(folder / "annotation.json")["test"][0]
    image = folder / entry["image_path"][0]
    assert main(["predict", "--checkpoint", str(best), str(image), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out.strip()

    model = load_trained(registry(), best, torch.device("cpu"))
    study = Study(entry["id"], entry["report"], tuple(entry["image_path"]), "test")
    data = model.config.sections["data"]
    loader = make_loader(StudyDataset([study], folder, model.tokenizer, data, train=False), 1, False, 0, 0)
    [row] = decode_loader(model.model, loader, model.config, model.tokenizer, torch.device("cpu"))
    assert printed == row["prediction"]

    assert main(["predict", "--checkpoint", str(best), str(image), str(image), "--device", "cpu"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "takes 1 image(s) per study" in err and "got 2" in err


def test_evaluate_refuses_settings_fixed_by_the_checkpoint(trained, tmp_path, capsys):
    best = trained / "checkpoints" / "best.pt"
    code = main(["evaluate", "--checkpoint", str(best), "--out", str(tmp_path), "--set", "train.lr=1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "fixed by the checkpoint" in err
    assert not list(tmp_path.iterdir())


def test_missing_checkpoint_and_missing_image_are_one_line_errors(trained, tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path)]) == 3
    assert "checkpoint not found" in capsys.readouterr().err
    best = trained / "checkpoints" / "best.pt"
    assert main(["predict", "--checkpoint", str(best), str(tmp_path / "absent.png"), "--device", "cpu"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "absent.png" in err and "not found" in err


@pytest.mark.slow
def test_several_seeds_get_a_run_each_and_a_mean_std_line(tmp_path, capsys):
    code = main(["run", "--model", "transformer", "--device", "cpu", "--out", str(tmp_path), "--skip", "meteor",
                 "--no-progress", "--seed", "1,2", *_sets({**FAST, "train.epochs": 0})])
    assert code == 0
    runs = sorted(p.parent for p in tmp_path.rglob("results.json"))
    assert sorted(_read(r / "results.json")["seed"] for r in runs) == [1, 2] and runs[0] != runs[1]
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("mean ± std over 2 seeds (1,2): ") and "bleu_4 " in last and " ± " in last
    assert "meteor" not in last  # skipped: no value to average
