"""``TrainState``: exactly what a training checkpoint saves and restores, and nothing else.

A checkpoint is the tensors (model, optimizer, scheduler, every RNG, per rank) plus this state as JSON
metadata: the position ``(epoch, batch, step)`` (``batch`` batches of epoch ``epoch`` are trained), the
selection so far (best validation value, its epoch and step, and every validation point), the number of
training-log rows the checkpoint knows, the data-driven initialisation report and the step timings. The
metadata also carries the resolved config and vocabulary, so a checkpoint rebuilds its model alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from rrgbench.errors import DataError

POSITION_KEYS = ("epoch", "batch", "step", "best_step", "log_rows")


@dataclass
class TrainState:
    """Position, selection, log rows, initialisation and timings of a training run."""

    epoch: int = 0  # the epoch in progress (0-based)
    batch: int = 0  # batches of that epoch already trained
    step: int = 0  # batches trained over the whole run
    best_value: float | None = None  # best validation value so far (selection direction applied)
    best_epoch: int = -1
    best_step: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per validation
    log_rows: int = 0
    init_report: dict[str, Any] = field(default_factory=dict)
    step_seconds: list[float] = field(default_factory=list)
    step_samples: list[int] = field(default_factory=list)
    train_seconds: float = 0.0  # wall time spent in training steps and data loading (validation excluded)

    def improved(self, value: float) -> bool:
        return self.best_value is None or value > self.best_value

    def select(self, value: float) -> None:
        self.best_value, self.best_epoch, self.best_step = value, self.epoch, self.step

    def next_epoch(self) -> None:
        self.epoch, self.batch = self.epoch + 1, 0

    def to_meta(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> TrainState:
        """The state recorded in a checkpoint's metadata (refuses one without resume state)."""
        missing = [key for key in POSITION_KEYS if key not in meta]
        if missing:
            raise DataError(f"checkpoint {meta.get('name', 'last')} has no resume state ({', '.join(missing)} missing; "
                            "written by an older rrgbench?): start a new run without --resume")
        timings = meta.get("timings") or {}  # checkpoints written before TrainState kept the timings apart
        best_value = meta.get("best_value")
        return cls(epoch=int(meta["epoch"]), batch=int(meta["batch"]), step=int(meta["step"]),
                   best_value=None if best_value is None else float(best_value),
                   best_epoch=int(meta.get("best_epoch", -1)), best_step=int(meta["best_step"]),
                   history=list(meta.get("history") or []), log_rows=int(meta["log_rows"]),
                   init_report=dict(meta.get("init_report") or {}),
                   step_seconds=list(meta.get("step_seconds", timings.get("train_step", []))),
                   step_samples=list(meta.get("step_samples", timings.get("samples", []))),
                   train_seconds=float(meta.get("train_seconds", 0.0)))
