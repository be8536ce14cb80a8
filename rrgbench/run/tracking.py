"""Experiment trackers a run reports its scalars to: TensorBoard, Weights & Biases, or none (``--report-to``).

Rank 0 reports every training step (``train/loss``, each loss term, ``train/lr_*``, ``train/samples_per_second``),
every validation (``val/<metric>`` for each computed metric, x = the training step) and the final test metrics
(``test/<metric>``). Neither tracker is a dependency of rrgbench:

- ``tensorboard``: event files in ``<run>/tensorboard`` through ``torch.utils.tensorboard`` (needs the
  ``tensorboard`` package, ``pip install 'rrgbench[tensorboard]'``; TensorFlow is not needed). A resumed
  run drops the events after its checkpoint's step (``purge_step``), so curves do not double back.
- ``wandb``: ``pip install 'rrgbench[wandb]'``; the W&B run is named after the run directory, keeps its
  files inside it, has the resolved configuration as its config, and a resumed run continues it. The
  project is ``$WANDB_PROJECT`` (default ``rrgbench``); ``WANDB_MODE=offline`` works without a network.

A missing package is refused in one line before training starts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rrgbench.errors import ConfigError

TRACKERS = ("none", "tensorboard", "wandb")


class Tracker:
    """Reports nothing (``--report-to none``; also every rank but 0)."""

    enabled = False

    def scalars(self, values: Mapping[str, float | None], step: int) -> None:
        """Report each numeric value under its name at ``step``."""

    def close(self) -> None:
        """Flush and close."""


class TensorBoardTracker(Tracker):
    enabled = True

    def __init__(self, folder: Path, purge_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder), purge_step=purge_step)

    def scalars(self, values: Mapping[str, float | None], step: int) -> None:
        for name, value in values.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(name, float(value), step)

    def close(self) -> None:
        self.writer.close()


class WandbTracker(Tracker):
    enabled = True

    def __init__(self, folder: Path, name: str, config: dict[str, Any]) -> None:
        import wandb

        run_id = re.sub(r"[^A-Za-z0-9_-]", "-", name)[-64:]
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "rrgbench"), name=name, id=run_id,
                              resume="allow", dir=str(folder), config=config)

    def scalars(self, values: Mapping[str, float | None], step: int) -> None:
        numbers = {k: float(v) for k, v in values.items() if isinstance(v, (int, float))}
        if numbers:
            self.run.log(numbers, step=step)

    def close(self) -> None:
        self.run.finish()


def check_tracker(kind: str) -> None:
    """Refuse an unknown tracker or one whose package is not installed (one line, before any work)."""
    if kind not in TRACKERS:
        raise ConfigError(f"--report-to: unknown tracker '{kind}'; choose one of {', '.join(TRACKERS)}")
    module = {"tensorboard": "tensorboard", "wandb": "wandb"}.get(kind)
    if module is None:
        return
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"--report-to {kind} needs the {module} package: pip install 'rrgbench[{kind}]' "
                          f"(or --report-to none)")


def open_tracker(kind: str, run_path: Path | None, config: dict[str, Any], resume_step: int | None = None) -> Tracker:
    """The tracker of a run directory (a silent one without a directory, i.e. on ranks > 0)."""
    check_tracker(kind)
    if run_path is None or kind == "none":
        return Tracker()
    if kind == "tensorboard":
        return TensorBoardTracker(run_path / "tensorboard", resume_step)
    return WandbTracker(run_path, run_path.name, config)
