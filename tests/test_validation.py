"""Tests for rrgbench.data.validation: every problem kind, all reported in one pass, allow_missing."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from rrgbench.data.annotation import read_annotation
from rrgbench.data.studies import Study
from rrgbench.data.validation import PROBLEM_KINDS, ValidationReport, validate_studies
from rrgbench.errors import DataError

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
REAL_IMAGES = REAL / "iu_xray_images"
REAL_ANNOTATION = REAL / "iu_xray_r2gen" / "annotation.json"
# The two complete real studies, in R2Gen layout: <id>/0.png is the frontal view, <id>/1.png the lateral.
REAL_STUDIES = {
    "CXR1900_IM-0584": ("CXR1900_IM-0584-1001.png", "CXR1900_IM-0584-2001.png"),
    "CXR7_IM-2263": ("CXR7_IM-2263-1001.png", "CXR7_IM-2263-2001.png"),
}


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    """An R2Gen-layout image root holding byte-identical copies of the real IU images."""
    root = tmp_path / "images"
    for study_id, files in REAL_STUDIES.items():
        (root / study_id).mkdir(parents=True)
        for view, name in enumerate(files):
            shutil.copyfile(REAL_IMAGES / name, root / study_id / f"{view}.png")
    return root


def _study(
    study_id: str, split: str, report: str = "The lungs are clear.", paths: tuple[str, ...] | None = None
) -> Study:
    images = paths if paths is not None else (f"{study_id}/0.png", f"{study_id}/1.png")
    return Study(id=study_id, report=report, image_paths=images, split=split)


def _clean_studies() -> dict[str, list[Study]]:
    return {
        "train": [_study("CXR1900_IM-0584", "train")],
        "val": [_study("CXR7_IM-2263", "val")],
        "test": [_study("CXR7_IM-2263", "test")],
    }


def test_clean_dataset_passes(image_root: Path) -> None:
    studies = _clean_studies()
    report = validate_studies(studies, image_root, n_views=2)
    assert report.ok
    assert report.kept == studies
    assert report.skipped_missing == 0
    assert report.summary() == "annotation.json: no problems in 3 studies"
    report.raise_if_failed()


def _broken_dataset(image_root: Path) -> dict[str, list[Study]]:
    """One study per problem kind (plus a good one), and an empty test split."""
    truncated = image_root / "CXR7_IM-2263" / "1.png"
    truncated.write_bytes(truncated.read_bytes()[:5000])
    return {
        "train": [
            _study("CXR1900_IM-0584", "train"),
            _study("CXR0001_MISSING", "train"),
            _study(
                "CXR0002_EMPTY",
                "train",
                report=" \n\t ",
                paths=("CXR1900_IM-0584/0.png", "CXR1900_IM-0584/1.png"),
            ),
            _study("CXR0003_ESCAPE", "train", paths=("CXR1900_IM-0584/0.png", "../secret.png")),
        ],
        "val": [
            _study("CXR7_IM-2263", "val"),
            _study("CXR0004_ONEVIEW", "val", paths=("CXR1900_IM-0584/0.png",)),
        ],
        "test": [],
    }


def _counts(report: ValidationReport) -> dict[str, int]:
    return {kind: group.count for kind, group in report.problems.items() if group.count}


def test_every_problem_kind_is_reported_in_one_pass(image_root: Path) -> None:
    report = validate_studies(_broken_dataset(image_root), image_root, n_views=2)
    assert not report.ok
    assert _counts(report) == {
        "missing_image": 2,
        "unreadable_image": 1,
        "empty_report": 1,
        "path_escape": 1,
        "wrong_views": 1,
        "empty_split": 1,
    }
    unreadable = report.problems["unreadable_image"].examples[0]
    assert (unreadable.split, unreadable.index, unreadable.study_id, unreadable.file) == (
        "val",
        0,
        "CXR7_IM-2263",
        "CXR7_IM-2263/1.png",
    )
    assert "truncated" in unreadable.detail
    missing = report.problems["missing_image"].examples
    assert [(p.index, p.file) for p in missing] == [
        (1, "CXR0001_MISSING/0.png"),
        (1, "CXR0001_MISSING/1.png"),
    ]


def test_summary_names_kinds_examples_and_what_to_do(image_root: Path) -> None:
    report = validate_studies(_broken_dataset(image_root), image_root, n_views=2)
    lines = report.summary().splitlines()
    assert lines[0] == "annotation.json: 7 problems in 5 studies"
    body = "\n".join(lines[1:-1])
    for label in PROBLEM_KINDS.values():
        assert label in body
    assert "train[3] CXR0003_ESCAPE '../secret.png'" in body
    assert "val[1] CXR0004_ONEVIEW: has 1 image, expected 2" in body
    assert "split 'test' has no studies" in body
    assert "--allow-missing" in lines[-1]
    assert str(image_root) in lines[-1]
    with pytest.raises(DataError) as caught:
        report.raise_if_failed()
    assert str(caught.value) == report.summary()
    assert caught.value.exit_code == 3


def test_examples_are_capped_but_counts_are_complete(image_root: Path) -> None:
    studies = {
        "train": [_study(f"CXR{i}_GONE", "train") for i in range(12)],
        "val": [_study("CXR7_IM-2263", "val")],
        "test": [_study("CXR7_IM-2263", "test")],
    }
    report = validate_studies(studies, image_root, n_views=2, max_examples=3)
    group = report.problems["missing_image"]
    assert group.count == 24
    assert [p.study_id for p in group.examples] == ["CXR0_GONE", "CXR0_GONE", "CXR1_GONE"]
    assert "... and 21 more" in report.summary()
    assert report.summary().splitlines()[0] == "annotation.json: 24 problems in 12 studies"


def test_no_images_at_all_is_a_problem_even_without_n_views(image_root: Path) -> None:
    studies = _clean_studies()
    studies["test"] = [_study("CXR9_NOIMAGES", "test", paths=())]
    report = validate_studies(studies, image_root, n_views=None)
    assert _counts(report) == {"wrong_views": 1}
    assert "has 0 images" in report.summary()


def test_escaping_paths_are_refused_without_being_opened(
    image_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret.png"
    shutil.copyfile(REAL_IMAGES / "CXR3_IM-1384-1001.png", secret)  # a valid image: opening it would "pass"
    (image_root / "link.png").symlink_to(secret)
    opened: list[Path] = []
    real_open = PIL.Image.open

    def recording_open(fp: object, *args: object, **kwargs: object) -> PIL.Image.Image:
        opened.append(Path(str(getattr(fp, "name", fp))).resolve())  # a path or an open file
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", recording_open)
    studies = _clean_studies()
    studies["train"].append(_study("CXR_OUT", "train", paths=("../secret.png", str(secret), "link.png")))
    report = validate_studies(studies, image_root, n_views=None)
    assert _counts(report) == {"path_escape": 3}
    assert secret.resolve() not in opened
    assert (image_root / "CXR7_IM-2263" / "0.png").resolve() in opened  # the recorder does see real opens


def test_allow_missing_skips_studies_with_absent_images(image_root: Path) -> None:
    studies = _clean_studies()
    studies["train"].append(_study("CXR0001_MISSING", "train"))
    studies["train"].append(_study("CXR0002_HALF", "train", paths=("CXR7_IM-2263/0.png", "gone/1.png")))
    report = validate_studies(studies, image_root, n_views=2, allow_missing=True)
    assert report.ok
    assert report.skipped_missing == 2
    assert [s.id for s in report.kept["train"]] == ["CXR1900_IM-0584"]
    assert report.kept["val"] == studies["val"]
    assert "skipped 2 studies with missing images" in report.summary()


def test_allow_missing_still_fails_on_other_problems(image_root: Path) -> None:
    report = validate_studies(_broken_dataset(image_root), image_root, n_views=2, allow_missing=True)
    assert not report.ok
    assert report.skipped_missing == 1
    assert _counts(report) == {
        "unreadable_image": 1,
        "empty_report": 1,
        "path_escape": 1,
        "wrong_views": 1,
        "empty_split": 1,
    }
    assert "--allow-missing" not in report.summary()


def test_split_emptied_by_skipping_is_named(image_root: Path) -> None:
    studies = _clean_studies()
    studies["val"] = [_study("CXR_A", "val"), _study("CXR_B", "val")]
    report = validate_studies(studies, image_root, n_views=2, allow_missing=True)
    assert _counts(report) == {"empty_split": 1}
    assert "split 'val' has no studies left after skipping 2 with missing images" in report.summary()


def test_real_annotation_with_two_studies_of_images(image_root: Path) -> None:
    studies = read_annotation(REAL_ANNOTATION)
    strict = validate_studies(studies, image_root, n_views=2)
    assert _counts(strict) == {"missing_image": 2 * (2955 - 2)}
    assert len(strict.problems["missing_image"].examples) == 5
    lenient = validate_studies(studies, image_root, n_views=2, allow_missing=True)
    assert lenient.skipped_missing == 2953
    assert sorted(s.id for s in lenient.kept["train"]) == sorted(REAL_STUDIES)
    summary = lenient.summary()
    assert "split 'val' has no studies left after skipping 296 with missing images" in summary
    assert "split 'test' has no studies left after skipping 590 with missing images" in summary


def test_missing_image_root_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"image root .*nowhere"):
        validate_studies(_clean_studies(), tmp_path / "nowhere", n_views=2)


def test_three_thousand_studies_validate(tmp_path: Path) -> None:
    root = tmp_path / "many"
    root.mkdir()
    buffer = io.BytesIO()
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(
        buffer, "PNG"
    )
    studies: dict[str, list[Study]] = {"train": [], "val": [], "test": []}
    for i in range(3000):
        split = ("train", "val", "test")[i % 3]
        paths = (f"s{i}_0.png", f"s{i}_1.png")
        for name in paths:
            (root / name).write_bytes(buffer.getvalue())
        studies[split].append(Study(f"s{i}", "Heart size is normal.", paths, split))
    report = validate_studies(studies, root, n_views=2)
    assert report.ok, report.summary()
    assert sum(len(v) for v in report.kept.values()) == 3000
