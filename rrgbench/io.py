"""Atomic file writes: every file rrgbench produces is written to a temporary sibling and renamed."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from rrgbench.errors import DataError


def atomic_write(path: Path, write: Callable[[IO[Any]], None], binary: bool = False) -> None:
    """Call ``write(handle)`` on a temp file next to ``path``, fsync it, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as handle:
            os.fchmod(handle.fileno(), 0o644)  # mkstemp creates 0600; give the usual permissions
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda h: h.write(json.dumps(data, indent=2, sort_keys=False, default=_default) + "\n"))


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    def write(handle: IO[str]) -> None:
        for row in rows:
            handle.write(json.dumps(row, default=_default) + "\n")

    atomic_write(path, write)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda h: h.write(text))


def read_json(path: Path, what: str = "JSON file") -> Any:
    """Parse the JSON file at ``path``; a DataError names the file and, for bad JSON, the line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a {what}") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: {what} is not UTF-8 text (bad byte at offset {error.start})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read {what}: {error.strerror or error}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
