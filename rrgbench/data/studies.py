"""The study record shared by every dataset: one report and its images, with the dataset's own id."""

from __future__ import annotations

from dataclasses import dataclass, field

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Study:
    """One imaging study. ``image_paths`` are relative to the dataset's image root, in view order."""

    id: str
    report: str
    image_paths: tuple[str, ...]
    split: str
    labels: dict[str, int] | None = field(default=None, compare=False)
