"""Content validation of a dataset's studies: one pass that finds every problem and reports them together.

``read_annotation`` checks structure; this module checks content, so a user fixes everything in one go:

- ``empty_report``: the report is empty after ``strip()``;
- ``path_escape``: an image path is absolute or leaves the image root (``..``, a symlink pointing out);
  such a path is refused and the file is never opened;
- ``missing_image``: the file does not exist;
- ``unreadable_image``: the file exists but is not a complete, decodable image (corrupt, truncated, ...);
- ``wrong_views``: ``n_views`` is set and a study has a different number of images, or a study has no
  image at all (a study without images can never be used, whatever ``n_views`` is);
- ``empty_split``: a split has no studies (or none left after skipping).

Every image is decoded completely (truncation is caught), in a thread pool: Pillow's decoders release the
GIL, and each distinct file is checked once.

With ``allow_missing=True`` a study with any missing image is skipped (counted in ``skipped_missing``)
instead of being a problem; all other problems still count, including those of skipped studies (a path
escaping the image root is never acceptable). ``kept`` holds every study that was not skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rrgbench.data import images
from rrgbench.data.studies import SPLITS, Study
from rrgbench.errors import DataError

PROBLEM_KINDS: dict[str, str] = {
    "missing_image": "missing image",
    "unreadable_image": "unreadable image",
    "empty_report": "empty report",
    "path_escape": "image path outside the image root (refused, not opened)",
    "wrong_views": "wrong number of views",
    "empty_split": "empty split",
}
_MAX_WORKERS = 32
_CHUNK = 64


@dataclass(frozen=True)
class Problem:
    """One problem: where it is (split, entry index, study id, image path as written) and what it is."""

    kind: str
    split: str
    detail: str
    index: int | None = None
    study_id: str | None = None
    file: str | None = None

    def describe(self) -> str:
        """A short one-line description, e.g. ``val[3] CXR7_IM-2263 'CXR7_IM-2263/0.png': file not found``."""
        place = self.split if self.index is None else f"{self.split}[{self.index}]"
        parts = [place]
        if self.study_id is not None:
            parts.append(self.study_id)
        if self.file is not None:
            parts.append(repr(self.file))
        return " ".join(parts) + f": {self.detail}"


@dataclass
class ProblemGroup:
    """All problems of one kind: the total count and the first ``max_examples`` of them."""

    kind: str
    count: int = 0
    examples: list[Problem] = field(default_factory=list)


@dataclass
class ValidationReport:
    """Result of ``validate_studies``: problems by kind, the studies kept and how many were skipped."""

    annotation_name: str
    image_root: Path
    n_studies: int
    problems: dict[str, ProblemGroup]
    kept: dict[str, list[Study]]
    skipped_missing: int = 0
    studies_with_problems: int = 0
    allow_missing: bool = False

    @property
    def ok(self) -> bool:
        """True when no problem of any kind was found."""
        return self.n_problems == 0

    @property
    def n_problems(self) -> int:
        """Total number of problems of all kinds."""
        return sum(group.count for group in self.problems.values())

    def summary(self) -> str:
        """A multi-line summary: a header, one line per kind with its first examples, and what to do."""
        if self.ok:
            return self._ok_summary()
        lines = [self._header()]
        for kind, group in self.problems.items():
            if group.count:
                lines.append(_group_line(kind, group))
        lines.append(self._advice())
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        """Raise ``DataError(summary())`` when any problem was found."""
        if not self.ok:
            raise DataError(self.summary())

    def _header(self) -> str:
        head = f"{self.annotation_name}: {_count(self.n_problems, 'problem')}"
        if self.studies_with_problems:
            head += f" in {_count(self.studies_with_problems, 'study', 'studies')}"
        return head

    def _ok_summary(self) -> str:
        text = f"{self.annotation_name}: no problems in {_count(self.n_studies, 'study', 'studies')}"
        if self.skipped_missing:
            text += f"; skipped {_count(self.skipped_missing, 'study', 'studies')} with missing images"
        return text

    def _advice(self) -> str:
        where = f"image paths are relative to the image root {self.image_root}"
        if self.problems["missing_image"].count and not self.allow_missing:
            return (
                f"{where}; fix the entries, or pass --allow-missing to skip studies whose images are absent"
            )
        return f"{where}; fix the entries listed above"


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def _group_line(kind: str, group: ProblemGroup) -> str:
    shown = "; ".join(problem.describe() for problem in group.examples)
    more = group.count - len(group.examples)
    if more > 0:
        shown += f"; ... and {more} more"
    return f"  {PROBLEM_KINDS[kind]} ({group.count}): {shown}"


@dataclass
class _Collector:
    """Accumulates problems by kind, keeping the first examples and the ids of studies with problems."""

    max_examples: int
    groups: dict[str, ProblemGroup] = field(
        default_factory=lambda: {kind: ProblemGroup(kind) for kind in PROBLEM_KINDS}
    )
    studies: set[tuple[str, int]] = field(default_factory=set)

    def add(self, problem: Problem) -> None:
        group = self.groups[problem.kind]
        group.count += 1
        if len(group.examples) < self.max_examples:
            group.examples.append(problem)
        if problem.index is not None:
            self.studies.add((problem.split, problem.index))


@dataclass(frozen=True)
class _ImageRef:
    split: str
    index: int
    study_id: str
    file: str


def _split_names(studies: dict[str, list[Study]]) -> list[str]:
    return list(SPLITS) + [name for name in studies if name not in SPLITS]


def _iter_studies(studies: dict[str, list[Study]]) -> Iterator[tuple[str, int, Study]]:
    for split in _split_names(studies):
        for index, study in enumerate(studies.get(split, [])):
            yield split, index, study


def _check_text_and_views(studies: dict[str, list[Study]], n_views: int | None, out: _Collector) -> None:
    """Record empty reports and wrong view counts."""
    for split, index, study in _iter_studies(studies):
        where = {"split": split, "index": index, "study_id": study.id}
        if not study.report.strip():
            out.add(Problem("empty_report", detail="report is empty", **where))
        views = len(study.image_paths)
        if views == 0 or (n_views is not None and views != n_views):
            expected = f", expected {n_views}" if n_views is not None else ""
            out.add(Problem("wrong_views", detail=f"has {_count(views, 'image')}{expected}", **where))


def _image_refs(studies: dict[str, list[Study]]) -> list[_ImageRef]:
    return [
        _ImageRef(split, index, study.id, file)
        for split, index, study in _iter_studies(studies)
        for file in study.image_paths
    ]


def _image_problem(root: Path, file: str) -> tuple[str, str] | None:
    """``(kind, detail)`` for one image path of an annotation, or None when the image decodes completely.

    A path escaping the root is refused before anything is opened.
    """
    path = images.resolve_inside(root, file)
    if path is None:
        return "path_escape", "path leaves the image root"
    problem = images.check_image(path)
    if problem is None:
        return None
    return ("missing_image" if problem == images.NOT_FOUND else "unreadable_image"), problem


def _check_chunk(root: Path, files: list[str]) -> list[tuple[str, str] | None]:
    return [_image_problem(root, file) for file in files]


def _check_files(root: Path, files: list[str]) -> dict[str, tuple[str, str] | None]:
    """Check each distinct image path once, in a thread pool (Pillow's decoders release the GIL).

    Paths go to the pool in chunks: one future per image would cost more than checking a small image.
    """
    unique = list(dict.fromkeys(files))
    workers = max(1, min(_MAX_WORKERS, (os.cpu_count() or 1) * 2))
    size = max(1, min(_CHUNK, len(unique) // (workers * 4)))
    chunks = [unique[i : i + size] for i in range(0, len(unique), size)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = [r for chunk in pool.map(_check_chunk, [root] * len(chunks), chunks) for r in chunk]
    return dict(zip(unique, results, strict=True))


def _record_image_problems(
    refs: list[_ImageRef], results: dict[str, tuple[str, str] | None], allow_missing: bool, out: _Collector
) -> set[tuple[str, int]]:
    """Record problems found in image paths and files; return the (split, index) of studies to skip."""
    skipped: set[tuple[str, int]] = set()
    for ref in refs:
        result = results[ref.file]
        if result is None:
            continue
        kind, detail = result
        if kind == "missing_image" and allow_missing:
            skipped.add((ref.split, ref.index))
            continue
        out.add(Problem(kind, ref.split, detail, ref.index, ref.study_id, ref.file))
    return skipped


def _keep(studies: dict[str, list[Study]], skipped: set[tuple[str, int]]) -> dict[str, list[Study]]:
    return {
        split: [s for i, s in enumerate(studies.get(split, [])) if (split, i) not in skipped]
        for split in _split_names(studies)
    }


def _check_splits(studies: dict[str, list[Study]], kept: dict[str, list[Study]], out: _Collector) -> None:
    for split in _split_names(studies):
        before, after = len(studies.get(split, [])), len(kept[split])
        if before == 0:
            absent = "is missing" if split not in studies else "has no studies"
            out.add(Problem("empty_split", split, f"split '{split}' {absent}"))
        elif after == 0:
            detail = f"split '{split}' has no studies left after skipping {before} with missing images"
            out.add(Problem("empty_split", split, detail))


def validate_studies(
    studies: dict[str, list[Study]],
    image_root: Path,
    n_views: int | None,
    allow_missing: bool = False,
    annotation_name: str = "annotation.json",
    max_examples: int = 5,
) -> ValidationReport:
    """Check every study and image once and return a report of all problems found, grouped by kind.

    ``image_root`` is the folder image paths are relative to; ``n_views`` the number of images each
    study must have (None: any number, but at least one). See the module docstring for the checks.
    Raises ``DataError`` at once if ``image_root`` is not a folder (every image would be missing).
    """
    image_root = Path(image_root)
    if not image_root.is_dir():
        raise DataError(f"image root {image_root} does not exist or is not a folder")
    real_root = Path(os.path.realpath(image_root))
    if real_root.parent == real_root:
        raise DataError(f"image root {image_root} is the file system's root: every file of the machine would be "
                        "an image path; point it at the dataset's image folder")
    out = _Collector(max_examples=max_examples)
    _check_text_and_views(studies, n_views, out)
    refs = _image_refs(studies)
    results = _check_files(real_root, [ref.file for ref in refs])
    skipped = _record_image_problems(refs, results, allow_missing, out)
    kept = _keep(studies, skipped)
    _check_splits(studies, kept, out)
    return ValidationReport(
        annotation_name=annotation_name,
        image_root=image_root,
        n_studies=sum(len(v) for v in studies.values()),
        problems=out.groups,
        kept=kept,
        skipped_missing=len(skipped),
        studies_with_problems=len(out.studies),
        allow_missing=allow_missing,
    )
