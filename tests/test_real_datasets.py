"""IU X-Ray end to end on the real annotation and the real images (built into tmp folders at test time)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from rrgbench.cli import main

REAL_STUDIES = {  # the two complete real studies: id -> (frontal, lateral) file names
    "CXR1900_IM-0584": ("CXR1900_IM-0584-1001.png", "CXR1900_IM-0584-2001.png"),
    "CXR7_IM-2263": ("CXR7_IM-2263-1001.png", "CXR7_IM-2263-2001.png"),
}


def _place_images(real_data, folder, study_id, source_id):
    frontal, lateral = REAL_STUDIES[source_id]
    target = folder / "images" / study_id
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(real_data / "iu_xray_images" / frontal, target / "0.png")
    shutil.copyfile(real_data / "iu_xray_images" / lateral, target / "1.png")


def _real_folder(real_data, tmp_path):
    folder = tmp_path / "iu"
    folder.mkdir()
    shutil.copyfile(real_data / "iu_xray_r2gen" / "annotation.json", folder / "annotation.json")
    for study_id in REAL_STUDIES:
        _place_images(real_data, folder, study_id, study_id)
    return folder


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "rrgbench", *args], capture_output=True, text=True, timeout=600)


def test_missing_images_fail_with_the_validation_summary(real_data, tmp_path):
    folder = _real_folder(real_data, tmp_path)
    result = _cli("run", "--model", "transformer", "--dataset", "iu-xray", "--data-dir", str(folder),
                  "--out", str(tmp_path / "runs"))
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert "missing" in result.stderr and "--allow-missing" in result.stderr
    assert "5906 problems in 2953 studies" in result.stderr  # 2,955 studies x 2 views minus 4 real images


def test_allow_missing_reports_an_emptied_split(real_data, tmp_path):
    folder = _real_folder(real_data, tmp_path)
    result = _cli("run", "--model", "transformer", "--dataset", "iu-xray", "--data-dir", str(folder),
                  "--out", str(tmp_path / "runs"), "--allow-missing")
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert "split 'val' has no studies left after skipping 296 with missing images" in result.stderr


def test_original_annotation_names_the_bad_key(real_data, tmp_path):
    folder = tmp_path / "orig"
    folder.mkdir()
    shutil.copyfile(real_data / "iu_xray_r2gen" / "annotation.original.json", folder / "annotation.json")
    result = _cli("data", "validate", "iu-xray", "--data-dir", str(folder))
    assert result.returncode == 3
    assert "missing split key 'test'" in result.stderr and "'    '" in result.stderr


@pytest.mark.slow
def test_trains_and_scores_when_every_split_has_images(real_data, tmp_path, tiny):
    annotation = json.loads((real_data / "iu_xray_r2gen" / "annotation.json").read_text())
    sources = list(REAL_STUDIES)
    subset = {"train": annotation["train"][:8], "val": annotation["val"][:3], "test": annotation["test"][:3]}
    folder = tmp_path / "iu-complete"
    folder.mkdir()
    for entries in subset.values():
        for i, entry in enumerate(entries):
            _place_images(real_data, folder, entry["id"], sources[i % 2])
    (folder / "annotation.json").write_text(json.dumps(subset))
    overrides = {k: v for k, v in tiny.items() if not k.startswith("dataset.")}
    args = ["run", "--model", "transformer", "--dataset", "iu-xray", "--data-dir", str(folder), "--device", "cpu",
            "--out", str(tmp_path / "runs"), "--profile", "small", "--skip", "meteor", "--no-progress"]
    for key, value in overrides.items():
        args += ["--set", f"{key}={value}"]
    assert main(args) == 0
    [results] = list((tmp_path / "runs").rglob("results.json"))
    record = json.loads(results.read_text())
    assert record["dataset"] == "iu-xray" and record["protocol"]["splits"] == {"train": 8, "val": 3, "test": 3}
    assert record["protocol"]["cleaning"] == "iu-xray"
    assert isinstance(record["metrics"]["bleu_4"]["value"], float)
    ids = [json.loads(line)["id"] for line in (results.parent / "predictions.jsonl").read_text().splitlines()]
    assert ids == [entry["id"] for entry in subset["test"]]  # study identity kept end to end
