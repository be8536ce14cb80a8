"""The notebook API: ``rrgbench.score`` gives the numbers of ``rrgbench score``; ``rrgbench.load_runs`` one row
per run record; the README's example runs as written."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from record_factory import make_record, metric, save

import rrgbench
from rrgbench.cli import main
from rrgbench.errors import DataError, UnknownNameError

README = Path(__file__).resolve().parents[1] / "README.md"
BOARD_RECORDS = Path(__file__).resolve().parents[1] / "leaderboards" / "synthetic" / "records"
HYPS = ["The heart is normal in size.  No effusion.", "Cardiomegaly with a small effusion.",
        "lungs are clear . no acute process .", "Pulmonary edema, moderate. ET tube in place."]
REFS = ["The heart size is normal. No pleural effusion or pneumothorax.",
        "Mild cardiomegaly. Small LEFT pleural effusion; possible atelectasis.",
        "Lungs are clear.\nNo acute cardiopulmonary process.", "Endotracheal tube in place. Moderate pulmonary edema."]


pytestmark = pytest.mark.usefixtures("no_metric_weights")


def readme_examples() -> list[str]:
    """The code blocks the README marks ``<!-- readme-example: python-api -->``, in order."""
    pattern = r"<!-- readme-example: python-api -->\s*```python\n(.*?)```"
    return re.findall(pattern, README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    blocks = readme_examples()
    assert len(blocks) == 2 and "rrgbench.score(hyps=" in blocks[0] and len(blocks[0].strip().splitlines()) == 3
    for seed in (0, 1):
        save(tmp_path / "runs" / f"m-{seed}", make_record("m", seed=seed, metrics={"bleu_4": 0.2 + seed / 10}))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # the README's own example
    out = capsys.readouterr().out
    assert "id" in out and "hyp" in out and "0.25" in out  # the per-study frame, the mean BLEU-4 of two runs
    assert set(namespace["result"]) == {"bleu_4", "ce_f1_micro"}


def test_import_stays_light_and_names_resolve():
    code = ("import sys, rrgbench; assert 'pandas' not in sys.modules and 'torch' not in sys.modules; "
            "from rrgbench import score, load_runs; print(score.__module__, load_runs.__module__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["rrgbench.scoring.api", "rrgbench.report.runs_table"]
    with pytest.raises(AttributeError, match="no attribute 'scores'"):
        rrgbench.scores  # noqa: B018


def _write(path: Path, ids: list[str], texts: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "report"])
        writer.writerows(zip(ids, texts, strict=True))
    return path


@pytest.mark.parametrize("clean", ["none", "iu-xray"])
def test_score_gives_the_numbers_of_the_command(tmp_path, clean):
    ids = ["s1", "s2", "s3", "s4"]
    preds, refs = _write(tmp_path / "p.csv", ids, HYPS), _write(tmp_path / "r.csv", ids, REFS)
    out = tmp_path / "scored"
    assert main(["score", "--predictions", str(preds), "--references", str(refs), "--out", str(out), "--clean",
                 clean, "--skip", "meteor", "--resamples", "50", "--seed", "3"]) == 0
    record = json.loads((out / "results.json").read_text())
    result = rrgbench.score(hyps=HYPS, refs=REFS, ids=ids, clean=clean, skip=["meteor"], resamples=50, seed=3)
    assert list(result) == list(record["metrics"])
    for key, entry in record["metrics"].items():
        assert result[key] == entry["value"], key
        assert result.ci[key] == (tuple(entry["ci95"]) if entry.get("ci95") else None), key
        assert result.unavailable.get(key) == entry.get("unavailable"), key
    assert result.protocol == record["protocol"]["metric_groups"]
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    scored = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    frame = result.per_study
    assert list(frame["id"]) == ids and list(frame["hyp"]) == [r["prediction"] for r in scored]
    assert list(frame["ref"]) == [r["reference"] for r in scored]
    for key in rows[0]:
        assert list(frame[key]) == [row[key] for row in rows], key
    assert result.to_dict() == dict(result) and result["meteor"] is None


def test_metric_subset_and_mapping():
    result = rrgbench.score(hyps=HYPS, refs=REFS, metrics=["bleu_4", "ce_f1_micro"], resamples=20)
    assert list(result) == ["bleu_4", "ce_f1_micro"]  # in the order asked for
    assert result.protocol["clinical"]["uncertain_mapping"] == "r2gen"
    chexbert_style = rrgbench.score(hyps=HYPS, refs=REFS, metrics="ce_f1_micro", uncertain="chexbert", resamples=20)
    assert chexbert_style.protocol["clinical"]["uncertain_mapping"] == "chexbert"


def test_errors_are_one_line_and_say_what_to_do():
    with pytest.raises(TypeError):
        rrgbench.score(HYPS, REFS)  # keyword-only: refs and hyps cannot be swapped by position
    with pytest.raises(DataError, match="hyps must be a list of reports, got str"):
        rrgbench.score(hyps="one report", refs=["one"])
    with pytest.raises(DataError, match="3 hyps but 4 refs"):
        rrgbench.score(hyps=HYPS[:3], refs=REFS)
    with pytest.raises(UnknownNameError, match="did you mean 'bleu_4'"):
        rrgbench.score(hyps=HYPS, refs=REFS, metrics=["bleu4"])
    with pytest.raises(UnknownNameError, match="uncertain-label mapping"):
        rrgbench.score(hyps=HYPS, refs=REFS, uncertain="positive")
    with pytest.raises(rrgbench.errors.ConfigError, match="non-negative"):
        rrgbench.score(hyps=HYPS, refs=REFS, seed=-1)
    with pytest.raises(UnknownNameError, match="did you mean 'bleu_4'"):
        rrgbench.score(hyps=HYPS, refs=REFS, skip=["bleu4"])
    with pytest.raises(DataError, match="blank references"):
        rrgbench.score(hyps=HYPS, refs=[*REFS[:3], "  "])
    with pytest.raises(DataError, match="duplicated ids"):
        rrgbench.score(hyps=HYPS, refs=REFS, ids=["a", "a", "b", "c"])
    with pytest.raises(rrgbench.errors.ConfigError, match="--chexbert"):
        rrgbench.score(hyps=HYPS, refs=REFS, labeler="chexbert", chexbert="/no/such/chexbert.pth")


def test_load_runs_one_row_per_record_with_config_metrics_and_efficiency():
    from rrgbench.record import load_records
    from rrgbench.report.board import EFFICIENCY_COLUMNS

    runs = rrgbench.load_runs(BOARD_RECORDS)
    records = load_records(BOARD_RECORDS)
    assert len(runs) == len(records.records) > 1
    assert list(runs.columns[:11]) == ["model", "dataset", "seed", "run_id", "kind", "created", "profile",
                                       "ablation_of", "path", "labeler", "uncertain_mapping"]
    for (_, row), record, path in zip(runs.iterrows(), records.records, records.paths, strict=True):
        assert (row["model"], row["seed"], row["run_id"], row["path"]) == (record.model, record.seed, record.run_id,
                                                                           str(path.parent))
        assert row["config.train.epochs"] == record.config["sections"]["train"]["epochs"]
        assert row["config.components.memory"] == record.config["components"]["memory"]
        assert row["bleu_4"] == record.metrics["bleu_4"].value
        assert [row["bleu_4_ci_low"], row["bleu_4_ci_high"]] == record.metrics["bleu_4"].ci95
        assert row["params_m"] == pytest.approx(record.efficiency.parameters.total * 1e-6)
        assert {c.key for c in EFFICIENCY_COLUMNS} <= set(runs.columns)


def test_load_runs_mixed_kinds_and_unreadable_records(tmp_path):
    save(tmp_path / "a", make_record("m", metrics={"bleu_4": 0.3, "meteor": metric(None, unavailable="no Java")},
                                     config={"sections": {"train": {"epochs": 3}}, "components": {}}))
    save(tmp_path / "b", make_record("ext", kind="external", seed=None, config=None,
                                     metrics={"bleu_4": metric(0.1, (0.05, 0.15))}))
    runs = rrgbench.load_runs(tmp_path)
    assert list(runs["kind"]) == ["training", "external"]
    assert runs.loc[0, "meteor_unavailable"] == "no Java" and runs.loc[0, "config.train.epochs"] == 3
    assert runs.loc[1, "bleu_4_ci_low"] == 0.05 and runs.loc[1, "labeler"] == "chexpert-rules"
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "results.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match=r"results\.json"):
        rrgbench.load_runs(tmp_path)
    with pytest.warns(UserWarning, match="left out"):
        assert len(rrgbench.load_runs(tmp_path, strict=False)) == 2
    with pytest.raises(DataError, match="no such folder"):
        rrgbench.load_runs(tmp_path / "absent")
