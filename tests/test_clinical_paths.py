"""CheXbert and RadGraph as first-class paths: ``--chexbert`` / ``--radgraph`` on run, evaluate, score and suite.

A tiny random CheXbert stand-in (``chexbert_standin``) scores a real tiny run; a missing or wrong file fails
before the first training step (no run folder is created) with one line naming the flag.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("f1chexbert")
pytest.importorskip("torch")

from chexbert_standin import chexbert_checkpoint, standin_next_to

from rrgbench.cli import main
from rrgbench.errors import ConfigError
from rrgbench.extension.plugins import registry
from rrgbench.metrics.labelers.chexbert import ENV_BERT, ENV_CHECKPOINT
from rrgbench.run.results import LocalFiles
from rrgbench.run.suite import parse_suite, run_suite


@pytest.fixture(autouse=True)
def no_weights_anywhere(monkeypatch, tmp_path):
    """No CheXbert weights but the ones a test passes (no environment variable, an empty f1chexbert cache)."""
    import f1chexbert.f1chexbert as library

    monkeypatch.delenv(ENV_CHECKPOINT, raising=False)
    monkeypatch.delenv(ENV_BERT, raising=False)
    monkeypatch.setattr(library, "CACHE_DIR", str(tmp_path / "f1chexbert-cache"))


def _run_args(out: Path, tiny: dict[str, object], *extra: str) -> list[str]:
    sets = [item for key, value in tiny.items() for item in ("--set", f"{key}={value}")]
    return ["run", "--model", "transformer", "--device", "cpu", "--out", str(out), "--no-progress",
            "--skip", "meteor", *sets, *extra]


def _never_trains(monkeypatch):
    import rrgbench.run.loop

    def refuse(self):
        raise AssertionError("training started")

    monkeypatch.setattr(rrgbench.run.loop.Trainer, "train_epoch", refuse)


@pytest.mark.slow
def test_run_scores_with_the_chexbert_file_and_evaluate_checks_it(tmp_path, tiny, capsys):
    weights = standin_next_to(tmp_path / "models", max_positions=512)
    out = tmp_path / "runs"
    code = main(_run_args(out, tiny, "--labeler", "chexbert", "--chexbert", str(weights)))
    assert code == 0, capsys.readouterr().err
    [results] = list(out.rglob("results.json"))
    record = json.loads(results.read_text())
    clinical = record["protocol"]["metric_groups"]["clinical"]
    assert clinical["labeler"] == "chexbert" and clinical["labeler_source"]["checkpoint"] == str(weights)
    assert clinical["uncertain_mapping"] == "chexbert" and "labeler's own" in clinical["mapping_chosen"]
    assert record["config"]["sections"]["scoring"]["uncertain"] == "auto"
    for key in ("ce_f1_micro", "ce_f1_macro", "ce_f1_micro_5"):
        assert isinstance(record["metrics"][key]["value"], float), key
        assert record["metrics"][key]["details"]["labeler"] == "chexbert"
    assert record["validation"]["history"][0]["values"]["ce_f1_micro"] is not None

    best = results.parent / "checkpoints" / "best.pt"
    capsys.readouterr()
    code = main(["evaluate", "--checkpoint", str(best), "--out", str(tmp_path / "evals"), "--device", "cpu",
                 "--labeler", "chexbert", "--chexbert", str(tmp_path / "absent.pth")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--chexbert" in err and "\n" not in err
    assert not (tmp_path / "evals").exists()  # failed before decoding: no run folder


@pytest.mark.parametrize("flags", [("--chexbert", "absent.pth"), ()], ids=["absent-file", "no-file-anywhere"])
def test_missing_chexbert_fails_before_the_first_training_step(tmp_path, tiny, capsys, monkeypatch, flags):
    _never_trains(monkeypatch)
    extra = [str(tmp_path / f) if f.endswith(".pth") else f for f in flags]
    out = tmp_path / "runs"
    code = main(_run_args(out, tiny, "--labeler", "chexbert", *extra))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: clinical metrics cannot run") and "\n" not in err
    assert "--chexbert" in err and "chexbert.pth" in err
    assert not out.exists()


def test_wrong_chexbert_file_names_the_flag(tmp_path, tiny, capsys, monkeypatch):
    _never_trains(monkeypatch)
    bert = standin_next_to(tmp_path / "models").parent / "bert-base-uncased"
    broken = chexbert_checkpoint(tmp_path / "models" / "chexbert.pth", bert, drop="linear_heads.3.bias")
    code = main(_run_args(tmp_path / "runs", tiny, "--labeler", "chexbert", "--chexbert", str(broken)))
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"--chexbert {broken}" in err and "not a CheXbert checkpoint" in err
    assert not (tmp_path / "runs").exists()


def test_wrong_radgraph_folder_fails_before_training_absent_one_is_unavailable(tmp_path, tiny, capsys, monkeypatch):
    from rrgbench.scoring.engine import ScoringContext, preflight

    _never_trains(monkeypatch)
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(_run_args(tmp_path / "runs", tiny, "--radgraph", str(empty)))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"error: radgraph metrics cannot run: --radgraph {empty}")
    assert not (tmp_path / "runs").exists()
    monkeypatch.setenv("RRGBENCH_RADGRAPH", str(empty))  # not named on the command line: only unavailable
    preflight(ScoringContext())
    preflight(ScoringContext(radgraph=str(empty), skip=frozenset({"radgraph_f1", "radgraph_simple",
                                                                   "radgraph_complete"})))  # all skipped


def test_score_fails_on_a_named_file_but_records_an_absent_labeler_as_unavailable(tmp_path, capsys):
    refs = tmp_path / "refs.csv"
    refs.write_text("id,report\na,No pleural effusion.\nb,Heart size is normal.\n", encoding="utf-8")
    base = ["score", "--predictions", str(refs), "--references", str(refs), "--skip", "meteor",
            "--resamples", "20", "--labeler", "chexbert"]
    code = main([*base, "--out", str(tmp_path / "a"), "--chexbert", str(tmp_path / "absent.pth")])
    assert code == 2 and "--chexbert" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "b")]) == 0
    record = json.loads((tmp_path / "b" / "results.json").read_text())
    assert record["metrics"]["ce_f1_micro"]["value"] is None
    assert "--chexbert PATH" in record["metrics"]["ce_f1_micro"]["unavailable"]


def test_suite_key_and_flag_reach_the_runs_and_are_checked_first(tmp_path, monkeypatch):
    import rrgbench.run.loop

    suite = parse_suite({"name": "t", "models": ["transformer"], "labeler": "chexbert",
                         "chexbert": "~/no-such-folder/chexbert.pth", "radgraph": str(tmp_path)})
    assert suite.chexbert == str(Path.home() / "no-such-folder" / "chexbert.pth")
    with pytest.raises(ConfigError, match="expected a file or folder path"):
        parse_suite({"models": ["transformer"], "chexbert": 3})
    requests = []
    monkeypatch.setattr(rrgbench.run.loop, "run_training", lambda reg, config, request: requests.append(request))
    with pytest.raises(ConfigError, match="--chexbert"):
        run_suite(suite, registry(), tmp_path / "runs")
    assert requests == []  # checked before the first run

    weights = standin_next_to(tmp_path / "models")
    ok = parse_suite({"name": "t", "models": ["transformer"], "labeler": "chexbert"})
    run_suite(ok, registry(), tmp_path / "runs", files=LocalFiles(chexbert=str(weights)))
    assert [r.files.chexbert for r in requests] == [str(weights)]
