"""Reading and writing R2Gen annotation.json: the real IU X-Ray file, and one clear error per problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rrgbench.data import SPLITS, Study, read_annotation, write_annotation
from rrgbench.errors import DataError

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "iu_xray_r2gen"


def entry(study_id: str = "s1", **overrides: Any) -> dict[str, Any]:
    base = {"id": study_id, "report": "Heart normal.", "image_path": [f"{study_id}/0.png"], "split": "train"}
    base.update(overrides)
    return base


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(DataError) as info:
        read_annotation(path)
    return str(info.value)


@pytest.fixture
def valid() -> dict[str, list[dict[str, Any]]]:
    return {"train": [entry("a"), entry("b")], "val": [entry("c", split="val")], "test": []}


def test_real_annotation_reads() -> None:
    studies = read_annotation(REAL / "annotation.json")
    assert list(studies) == list(SPLITS)
    assert [len(studies[s]) for s in SPLITS] == [2069, 296, 590]
    first = studies["train"][0]
    assert first.id == "CXR2384_IM-0942" and first.split == "train"
    assert first.image_paths == ("CXR2384_IM-0942/0.png", "CXR2384_IM-0942/1.png")
    assert first.report.startswith("The heart size and pulmonary vascularity appear within normal limits.")
    assert all(s.split == split and len(s.image_paths) == 2 for split in SPLITS for s in studies[split])
    assert len({s.id for split in SPLITS for s in studies[split]}) == 2955


def test_real_original_annotation_names_the_whitespace_key() -> None:
    path = REAL / "annotation.original.json"
    expected = "missing split key 'test'; found unexpected key '    ' (a key of 4 spaces?)"
    assert error_of(path) == f"{path}: {expected}"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "annotation.json"
    assert error_of(path) == f"{path}: annotation file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert "is a directory" in error_of(tmp_path)


def test_malformed_json_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "annotation.json"
    path.write_text('{"train": [\n  {"id": "a",\n  }\n], "val": [], "test": []}\n', encoding="utf-8")
    message = error_of(path)
    assert message.startswith(f"{path}: malformed JSON at line 3, column 3: ")
    assert "\n" not in message


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "annotation.json"
    path.write_bytes(b'{"train": "\xff"}')
    assert "not UTF-8" in error_of(path)


def test_top_level_must_be_an_object(tmp_path: Path) -> None:
    path = write_json(tmp_path / "annotation.json", [entry()])
    expected = "top level must be a JSON object with keys 'train', 'val', 'test', got an array"
    assert error_of(path) == f"{path}: {expected}"


def test_missing_and_unexpected_keys_are_all_named(tmp_path: Path) -> None:
    path = write_json(tmp_path / "a.json", {"train": [], "Val": [], "tets": [], " test ": []})
    message = error_of(path)
    assert message == (
        f"{path}: missing split keys 'val', 'test'; found unexpected keys 'Val' (did you mean 'val'?), "
        "'tets' (did you mean 'test'?), ' test ' (did you mean 'test'?)"
    )


def test_unexpected_key_alone_is_an_error(tmp_path: Path, valid: dict[str, Any]) -> None:
    path = write_json(tmp_path / "a.json", {**valid, "": []})
    assert error_of(path) == (
        f"{path}: found unexpected key '' (an empty key?); expected exactly the keys 'train', 'val', 'test'"
    )


def test_split_must_be_an_array(tmp_path: Path, valid: dict[str, Any]) -> None:
    path = write_json(tmp_path / "a.json", {**valid, "val": {"id": "c"}})
    assert error_of(path) == f"{path}: split 'val' must be an array of studies, got an object"


def test_missing_fields_name_split_index_and_id(tmp_path: Path, valid: dict[str, Any]) -> None:
    broken = entry("CXR9_IM-1", split="val")
    del broken["report"]
    valid["val"].append(broken)
    path = write_json(tmp_path / "a.json", valid)
    assert error_of(path) == f"{path}: val[1] (id 'CXR9_IM-1'): missing field 'report'"


def test_missing_id_and_images(tmp_path: Path, valid: dict[str, Any]) -> None:
    valid["test"] = [{"report": "x", "split": "test"}]
    path = write_json(tmp_path / "a.json", valid)
    assert error_of(path) == f"{path}: test[0]: missing fields 'id', 'image_path'"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("id", 17, "field 'id' must be a string, got a number"),
        ("report", None, "field 'report' must be a string, got null"),
        ("image_path", "a/0.png", "field 'image_path' must be an array of strings, got a string"),
        ("image_path", ["a/0.png", 3], "must be an array of strings, got a number at position 1"),
        ("split", ["train"], "field 'split' must be a string, got an array"),
    ],
)
def test_wrong_types_are_named(
    tmp_path: Path, valid: dict[str, Any], field: str, value: Any, expected: str
) -> None:
    valid["train"][1][field] = value
    path = write_json(tmp_path / "a.json", valid)
    message = error_of(path)
    assert message.startswith(f"{path}: train[1] (id ") and message.endswith(expected)


def test_entry_must_be_an_object(tmp_path: Path, valid: dict[str, Any]) -> None:
    valid["train"].append("CXR1")
    path = write_json(tmp_path / "a.json", valid)
    assert error_of(path) == f"{path}: train[2]: a study must be a JSON object, got a string"


def test_structure_only_no_content_checks(tmp_path: Path, valid: dict[str, Any]) -> None:
    # Empty reports, empty image lists and missing image files are the validation module's job.
    valid["train"][0].update(report="", image_path=[])
    valid["val"][0].update(extra_field=1, split="validate")  # extra fields ignored; the key is the split
    del valid["train"][1]["split"]
    studies = read_annotation(write_json(tmp_path / "a.json", valid))
    assert studies["train"][0] == Study("a", "", (), "train")
    assert studies["train"][1].split == "train" and studies["val"][0].split == "val"


def test_write_read_round_trip(tmp_path: Path) -> None:
    studies = {
        "train": [Study("a", "Heart normal.", ("a/0.png", "a/1.png"), "train")],
        "test": [Study("b", "Lungs clear. ü", ("b/0.png",), "test")],
    }
    path = tmp_path / "out" / "annotation.json"
    write_annotation(studies, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["annotation.json"]  # no temporary file left
    assert read_annotation(path) == {"train": studies["train"], "val": [], "test": studies["test"]}
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["train"][0] == {
        "id": "a",
        "report": "Heart normal.",
        "image_path": ["a/0.png", "a/1.png"],
        "split": "train",
    }


def test_real_annotation_round_trips(tmp_path: Path) -> None:
    studies = read_annotation(REAL / "annotation.json")
    write_annotation(studies, tmp_path / "annotation.json")
    assert read_annotation(tmp_path / "annotation.json") == studies


def test_write_rejects_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown split 'validate'"):
        write_annotation({"validate": []}, tmp_path / "annotation.json")
    assert not (tmp_path / "annotation.json").exists()
