"""Every file a run writes, written by rank 0 through one object (other ranks hold one that writes nothing).

(Checkpoint code imports torch; it is imported on use, so scoring an external system never loads torch.)

The trainer and the evaluator never open a file themselves: status changes, training-log rows, the
vocabulary, checkpoints, the shareable weights (:mod:`rrgbench.run.export`), predictions, per-study scores,
side tables and the run record all go through
:class:`RunWriter`, so "only rank 0 writes" is true by construction and every write is atomic
(:mod:`rrgbench.io`), the log's appends aside.
"""

from __future__ import annotations

import csv
import io
import json
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rrgbench.data.tokenizer import Tokenizer
from rrgbench.io import write_jsonl, write_text
from rrgbench.record import RESULTS_FILE, RunRecord, write_record
from rrgbench.run.layout import RunDir


class RunWriter:
    """Rank 0's writer into one run directory; ``RunWriter(None)`` (other ranks) ignores every call."""

    def __init__(self, run: RunDir | None) -> None:
        self.run = run

    @property
    def enabled(self) -> bool:
        return self.run is not None

    @property
    def path(self) -> Path:
        assert self.run is not None, "only rank 0 has a run directory"
        return self.run.path

    def status(self, status: str, **extra: Any) -> None:
        if self.run is not None:
            self.run.set_status(status, **extra)

    def failed(self, exc: BaseException, *, log_row: bool = False) -> None:
        """status.json ``failed`` with the error and the traceback of ``exc`` (with ``log_row``, a ``failed``
        training-log row too); best effort (the disk may be full), so the original error is the one reported.
        Call it from the ``except`` block that caught ``exc``."""
        error, trace = f"{type(exc).__name__}: {exc}"[:500], traceback.format_exc()[-4000:]
        try:
            self.status("failed", error=error, traceback=trace)
            if log_row:
                self.log_row({"event": "failed", "error": error, "traceback": trace})
        except OSError:
            pass

    def log_row(self, row: dict[str, Any]) -> bool:
        """Append one row to train_log.jsonl; True when it was written (the caller counts rows)."""
        if self.run is None:
            return False
        with open(self.path / "train_log.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": time.time(), **row}, default=str) + "\n")
        return True

    def vocabulary(self, tokenizer: Tokenizer) -> None:
        if self.run is not None:
            tokenizer.save(self.path / "vocab.json")

    def checkpoint(self, name: str, payload: dict[str, Any], meta: dict[str, Any]) -> None:
        """Write checkpoint ``name`` (``last`` keeps the previous pair as ``last.prev``)."""
        if self.run is not None:
            from rrgbench.run.checkpoint import save_checkpoint

            save_checkpoint(self.run.checkpoints / f"{name}.pt", payload, meta, keep_previous=name == "last")

    def export_model(self, model: Any, config: Any, tokenizer: Tokenizer, meta: dict[str, Any]) -> None:
        """``model.safetensors`` (the weights ``model`` holds now) with ``model.json``; ``vocab.json`` beside them."""
        if self.run is not None:
            from rrgbench.run.export import VOCAB_FILE, write_export

            if not (self.path / VOCAB_FILE).is_file():
                self.vocabulary(tokenizer)
            write_export(self.path, model, config.to_dict(), meta)

    def mark_best(self) -> None:
        """``best`` becomes a copy of the ``last`` just written."""
        if self.run is not None:
            from rrgbench.run.checkpoint import copy_checkpoint

            copy_checkpoint(self.run.checkpoints / "last.pt", self.run.checkpoints / "best.pt", name="best")

    def outputs(self, rows: Sequence[dict[str, Any]], per_study: Sequence[dict[str, Any]],
                tables: dict[str, list[dict[str, Any]]]) -> None:
        """predictions.jsonl, scores.jsonl and one CSV per side table."""
        if self.run is None:
            return
        write_jsonl(self.path / "predictions.jsonl", rows)
        write_jsonl(self.path / "scores.jsonl", per_study)
        for name, table in tables.items():
            write_text(self.path / f"{name}.csv", table_csv(table))

    def record(self, record: RunRecord) -> None:
        if self.run is not None:
            write_record(self.path / RESULTS_FILE, record)


def table_csv(rows: Sequence[dict[str, Any]]) -> str:
    """A side table as CSV (floats with 4 decimals)."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.4f}" if isinstance(v, float) else v for k, v in row.items()})
    return buffer.getvalue()
