"""What a dataset plugin hands the harness: studies per split, where the images are, and how to read them.

Also owns where data lives on disk: ``--data-dir`` or ``$RRGBENCH_DATA/<dataset>`` for user data, and
``$RRGBENCH_CACHE`` (default ``~/.cache/rrgbench``) for generated data such as the synthetic set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rrgbench.data.studies import SPLITS, Study
from rrgbench.errors import DataError


def available_cores() -> int:
    """CPU cores this process may run on (sizes the synthetic generator's processes and the data loader's workers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class DatasetSource:
    """A loaded, validated dataset."""

    name: str
    splits: dict[str, list[Study]]
    image_root: Path
    n_views: int
    cleaning_style: str
    notes: dict[str, Any] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        return {split: len(self.splits.get(split, [])) for split in SPLITS}


def cache_dir() -> Path:
    """Folder for generated data (``$RRGBENCH_CACHE`` or ``~/.cache/rrgbench``)."""
    return Path(os.environ.get("RRGBENCH_CACHE") or Path.home() / ".cache" / "rrgbench")


def data_dir_for(dataset: str, data_dir: str | Path | None, how_to_prepare: str) -> Path:
    """The user's folder for ``dataset``; a clear error saying where data goes when it is absent."""
    if data_dir:
        path = Path(data_dir).expanduser()
        origin = "--data-dir"
    elif os.environ.get("RRGBENCH_DATA"):
        path = Path(os.environ["RRGBENCH_DATA"]).expanduser() / dataset
        origin = "$RRGBENCH_DATA"
    else:
        raise DataError(
            f"no data for '{dataset}': pass --data-dir DIR (a folder with annotation.json and the images) or set "
            f"RRGBENCH_DATA so that $RRGBENCH_DATA/{dataset} is that folder; {how_to_prepare}"
        )
    if not (path / "annotation.json").is_file():
        raise DataError(f"no annotation.json in {path} (from {origin}); {how_to_prepare}")
    return path
