"""``RunRequest``: everything about a run that is not part of its configuration (where, on what, how loudly)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rrgbench.logs import info
from rrgbench.run.results import LocalFiles

Logger = Callable[[str], None]


@dataclass
class RunRequest:
    """Where data and runs live, the device, progress output, local metric model files, resume, trackers.

    ``progress``: tqdm bars allowed (on a terminal); otherwise :class:`rrgbench.logs.Progress` writes a plain
    line every tenth of an epoch or minute. ``log`` receives every line a run says.
    """

    data_dir: str | None = None
    out: Path = Path("runs")
    device: str = "auto"
    progress: bool = True
    log: Logger = info
    files: LocalFiles = field(default_factory=LocalFiles)
    resume: str | None = None  # "auto": the latest unfinished run with this config in ``out``; or a run directory
    report_to: str = "none"  # experiment tracker: none, tensorboard or wandb (rrgbench.run.tracking)
