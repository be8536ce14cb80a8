"""Reading and writing R2Gen ``annotation.json`` files, with one clear DataError per structural problem.

Format: ``{"train": [...], "val": [...], "test": [...]}``; each entry has ``id`` (str), ``report`` (str),
``image_path`` (list of str, relative to the image root) and usually ``split`` (str). Extra entry fields
(MIMIC-CXR's ``study_id``, ``subject_id``) are ignored. As in R2Gen, the top-level key an entry is listed
under is its split; the entry's own ``split`` field must be a string when present but is not compared.

This module checks structure only. Content problems (missing or corrupt images, empty reports, image
paths escaping the image root) belong to the validation module, which reports them all in one pass.

Files are read with :func:`rrgbench.io.read_json` (errors with line and column) and written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rrgbench.data.studies import SPLITS, Study
from rrgbench.errors import DataError, did_you_mean
from rrgbench.io import read_json, write_text

REQUIRED_FIELDS = ("id", "report", "image_path")

_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (dict, "an object"),
    (list, "an array"),
    (str, "a string"),
    (int, "a number"),
    (float, "a number"),
)


def json_type(value: Any) -> str:
    """The JSON name of ``value``'s type, with an article (``"an array"``), for error messages."""
    if value is None:
        return "null"
    for python_type, name in _JSON_TYPES:
        if isinstance(value, python_type):
            return name
    return type(value).__name__


def read_annotation(path: Path | str) -> dict[str, list[Study]]:
    """Read an R2Gen ``annotation.json`` into studies per split (keys in ``SPLITS`` order)."""
    path = Path(path)
    data = read_json(path, what="annotation file")
    if not isinstance(data, dict):
        keys = ", ".join(f"'{s}'" for s in SPLITS)
        raise DataError(f"{path}: top level must be a JSON object with keys {keys}, got {json_type(data)}")
    _check_split_keys(path, data)
    return {split: _read_split(path, split, data[split]) for split in SPLITS}


def write_annotation(studies_by_split: Mapping[str, Sequence[Study]], path: Path | str) -> None:
    """Write studies in R2Gen format, atomically; splits absent from the mapping are written empty."""
    unknown = [key for key in studies_by_split if key not in SPLITS]
    if unknown:
        raise DataError(f"{path}: cannot write unknown split {unknown[0]!r}; splits are {', '.join(SPLITS)}")
    data = {split: [_entry(study, split) for study in studies_by_split.get(split, ())] for split in SPLITS}
    write_text(Path(path), json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def _entry(study: Study, split: str) -> dict[str, Any]:
    return {"id": study.id, "report": study.report, "image_path": list(study.image_paths), "split": split}


def _check_split_keys(path: Path, data: dict[str, Any]) -> None:
    missing = [split for split in SPLITS if split not in data]
    unexpected = [key for key in data if key not in SPLITS]
    if not missing and not unexpected:
        return
    parts = []
    if missing:
        parts.append(f"missing split key{_plural(missing)} " + ", ".join(f"'{s}'" for s in missing))
    if unexpected:
        shown = ", ".join(f"{key!r}{_key_hint(key)}" for key in unexpected)
        parts.append(f"found unexpected key{_plural(unexpected)} {shown}")
    if not missing:
        parts.append("expected exactly the keys " + ", ".join(f"'{s}'" for s in SPLITS))
    raise DataError(f"{path}: " + "; ".join(parts))


def _plural(items: Sequence[Any]) -> str:
    return "s" if len(items) > 1 else ""


def _key_hint(key: str) -> str:
    """A parenthesised guess at what a bad split key was meant to be, or an empty string."""
    if key == "":
        return " (an empty key?)"
    if set(key) == {" "}:
        return f" (a key of {len(key)} space{_plural(key)}?)"
    if key.isspace():
        return f" (a key of {len(key)} whitespace character{_plural(key)}?)"
    if key.strip().lower() in SPLITS:
        return f" (did you mean '{key.strip().lower()}'?)"
    return did_you_mean(key, SPLITS)


def _read_split(path: Path, split: str, entries: Any) -> list[Study]:
    if not isinstance(entries, list):
        raise DataError(f"{path}: split '{split}' must be an array of studies, got {json_type(entries)}")
    return [_read_entry(path, split, index, entry) for index, entry in enumerate(entries)]


def _read_entry(path: Path, split: str, index: int, entry: Any) -> Study:
    where = f"{path}: {split}[{index}]"
    if not isinstance(entry, dict):
        raise DataError(f"{where}: a study must be a JSON object, got {json_type(entry)}")
    if "id" in entry:
        where += f" (id {entry['id']!r})"
    missing = [name for name in REQUIRED_FIELDS if name not in entry]
    if missing:
        raise DataError(f"{where}: missing field{_plural(missing)} " + ", ".join(f"'{m}'" for m in missing))
    _check_type(where, "id", entry["id"], isinstance(entry["id"], str), "a string")
    _check_type(where, "report", entry["report"], isinstance(entry["report"], str), "a string")
    images = _check_image_paths(where, entry["image_path"])
    if "split" in entry:
        _check_type(where, "split", entry["split"], isinstance(entry["split"], str), "a string")
    return Study(id=entry["id"], report=entry["report"], image_paths=tuple(images), split=split)


def _check_type(where: str, name: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise DataError(f"{where}: field '{name}' must be {expected}, got {json_type(value)}")


def _check_image_paths(where: str, images: Any) -> list[str]:
    if not isinstance(images, list):
        raise DataError(f"{where}: field 'image_path' must be an array of strings, got {json_type(images)}")
    for position, image in enumerate(images):
        if not isinstance(image, str):
            raise DataError(
                f"{where}: field 'image_path' must be an array of strings, got {json_type(image)} "
                f"at position {position}"
            )
    return images
