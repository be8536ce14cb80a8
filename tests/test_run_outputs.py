"""What a finished run leaves besides its record: the log a batch job shows, TensorBoard events, shareable weights."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from conftest import TINY

from rrgbench.cli import main

FAST = {**TINY, "encoder.backbone": "test_resnet", "decode.max_len": 12, "train.epochs": 2,
        "train.max_steps_per_epoch": 3, "train.validate_from": 1}


def _sets(values):
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One tiny run with --report-to tensorboard, its standard error going to a file-like object (no terminal)."""
    pytest.importorskip("tensorboard")
    out = tmp_path_factory.mktemp("runs")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main(["run", "--model", "transformer", "--device", "cpu", "--out", str(out), "--skip", "meteor",
                     "--report-to", "tensorboard", *_sets(FAST)])
    assert code == 0, stderr.getvalue()
    [record] = list(out.rglob("results.json"))
    return record.parent, stderr.getvalue()


def test_a_batch_job_log_shows_progress_and_every_phase(finished):
    _, log = finished
    lines = [line.split(" ", 1)[1] for line in log.splitlines()]  # without the HH:MM:SS stamp
    progress = [line for line in lines if line.startswith("epoch 1/2: ")]
    assert [line.split(" (")[0] for line in progress] == ["epoch 1/2: 1/3", "epoch 1/2: 2/3", "epoch 1/2: 3/3"]
    assert all(" loss " in line and "samples/s" in line and "steps/s" in line for line in progress)
    assert "eta" in progress[0]
    order = ["validating (epoch 1) ...", "validating (epoch 2) ...", "decoding test ...", "scoring: clinical ...",
             "scoring: nlg ...", "efficiency (fast) ...", ]
    positions = [next(i for i, line in enumerate(lines) if line == phase) for phase in order]
    assert positions == sorted(positions)
    assert any(line.startswith("decoding test: done in ") for line in lines)
    assert any(line.startswith("decode test: 12/12 (100%)") for line in lines)
    assert any(line.startswith("test: ") for line in lines)


def test_tensorboard_reads_the_training_loss_and_validation_metrics(finished):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, _ = finished
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/lr_visual", "val/bleu_4", "val/ce_f1_micro", "test/bleu_4"} <= tags
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]
    assert [e.step for e in events.Scalars("val/bleu_4")] == [3, 6]
    record = json.loads((run / "results.json").read_text())
    history = record["validation"]["history"]
    assert [round(e.value, 5) for e in events.Scalars("val/ce_f1_micro")] == [
        round(point["values"]["ce_f1_micro"], 5) for point in history]
    log_rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    [validate] = [row for row in log_rows if row["event"] == "validate" and row["epoch"] == 1]
    assert round(events.Scalars("val/bleu_4")[1].value, 5) == round(validate["values"]["bleu_4"], 5)


def test_the_export_holds_the_selected_weights_only_and_predicts_like_the_checkpoint(finished, capsys):
    run, _ = finished
    weights, best = run / "model.safetensors", run / "checkpoints" / "best.pt"
    assert weights.stat().st_size < best.stat().st_size / 2  # no optimizer state, no RNG
    described = json.loads((run / "model.json").read_text())
    assert described["config"] == json.loads((run / "config.json").read_text())
    assert described["n_views"] == 1 and described["weights"] == "model.safetensors"
    image = _first_test_image(run)
    printed = []
    for source in (best, weights, run):
        assert main(["predict", "--checkpoint", str(source), str(image), "--device", "cpu"]) == 0
        printed.append(capsys.readouterr().out.strip())
    assert printed[0] and printed[0] == printed[1] == printed[2]


def test_evaluate_from_the_export_reproduces_the_run(finished, tmp_path, capsys):
    run, _ = finished
    code = main(["evaluate", "--checkpoint", str(run / "model.safetensors"), "--out", str(tmp_path), "--device", "cpu",
                 "--skip", "meteor", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    [record_file] = list(tmp_path.rglob("results.json"))
    record, original = json.loads(record_file.read_text()), json.loads((run / "results.json").read_text())
    assert record["metrics"] == original["metrics"]
    assert record["protocol"]["evaluation"]["sha256"] == json.loads((run / "model.json").read_text())["sha256"]
    assert (record_file.parent / "predictions.jsonl").read_bytes() == (run / "predictions.jsonl").read_bytes()


def test_a_changed_export_is_refused_in_one_line(finished, tmp_path, capsys):
    import shutil

    run, _ = finished
    copy = tmp_path / "shared"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    with open(copy / "model.safetensors", "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\0\0\0\1")
    assert main(["predict", "--checkpoint", str(copy / "model.safetensors"), str(_first_test_image(run))]) != 0
    err = capsys.readouterr().err.strip()
    assert "checksum differs from model.json" in err and len(err.splitlines()) == 1
    (copy / "vocab.json").unlink()
    assert main(["predict", "--checkpoint", str(copy), str(_first_test_image(run))]) != 0
    assert "vocab.json must sit next to it" in capsys.readouterr().err


def _first_test_image(run):
    from rrgbench.config import RunConfig
    from rrgbench.extension.plugins import registry
    from rrgbench.run.setup import load_source

    config = RunConfig.from_dict(json.loads((run / "config.json").read_text()), registry())
    source = load_source(registry(), config, None)
    study = source.splits["test"][0]
    return source.image_root / study.image_paths[0]


@pytest.mark.slow
def test_wandb_offline_receives_the_scalars(tmp_path, monkeypatch, capsys):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    code = main(["run", "--model", "transformer", "--device", "cpu", "--out", str(tmp_path), "--skip", "meteor",
                 "--no-progress", "--efficiency", "off", "--report-to", "wandb",
                 *_sets({**FAST, "train.epochs": 1})])
    assert code == 0, capsys.readouterr().err
    wandb.teardown()  # the W&B service process writes the run file; it has finished once the service stopped
    [record] = list(tmp_path.rglob("results.json"))
    [history] = list((record.parent / "wandb").glob("offline-run-*/run-*.wandb"))
    data = history.read_bytes()
    assert b"train/loss" in data and b"val/bleu_4" in data


def test_a_missing_tracker_package_is_refused_before_training(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    code = main(["run", "--model", "transformer", "--out", str(tmp_path), "--report-to", "wandb", *_sets(FAST)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == ("error: --report-to wandb needs the wandb package: pip install 'rrgbench[wandb]' "
                                 "(or --report-to none)")
    assert not any(tmp_path.iterdir())
