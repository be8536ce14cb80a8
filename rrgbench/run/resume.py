"""Resuming runs exactly: which run to continue, its training log, signals, reproducible augmentation.

A run is resumed from ``checkpoints/last`` (or ``last.prev`` when ``last`` is half-written). The
checkpoint records the *position* ``(epoch, batch)``: the number of batches of that epoch already
trained. Because the order of an epoch is a function of ``(seed, epoch)`` only (see
:func:`rrgbench.run.distributed.shard_indices`) the resumed run skips exactly those batches, without
loading them; every random generator (python, numpy, torch, CUDA, per rank) is restored from the
checkpoint, so dropout continues its stream. Augmentation does not draw from that stream at all:
:class:`SeededSamples` seeds each sample's transform from ``(seed, epoch, index)``, which keeps it
identical whether the sample is loaded in the main process or a worker, before or after a resume,
by one process or by a rank of a multi-process job.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from rrgbench.config import RunConfig
from rrgbench.errors import ConfigError, RRGBenchError
from rrgbench.extension.plugins import Registry
from rrgbench.io import atomic_write
from rrgbench.run.layout import RunDir, existing_run, find_matching, find_runs, model_folder
from rrgbench.run.signals import SignalCatcher

UNFINISHED = ("running", "failed", "interrupted")
_SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


class RunInterrupted(RRGBenchError):
    """SIGINT/SIGTERM stopped a run after it wrote a checkpoint; ``--resume`` continues it."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = _SIGNAL_EXIT.get(signal.Signals(signum), 128 + int(signum))


# -- which run -------------------------------------------------------------------------------------
def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    if not isinstance(data, dict) or (prefix and not data):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def config_diff(recorded: RunConfig, requested: RunConfig) -> list[str]:
    """``key: recorded -> requested`` for every setting that determines the result (overrides, sources and
    cost-measurement settings are not such settings)."""
    old = flatten(recorded.result_settings())
    new = flatten(requested.result_settings())
    missing = object()
    keys = sorted(set(old) | set(new))
    return [f"{key}: {old.get(key, '<absent>')!r} -> {new.get(key, '<absent>')!r}" for key in keys
            if old.get(key, missing) != new.get(key, missing)]


def check_same_config(registry: Registry, run: RunDir, requested: RunConfig) -> None:
    """Refuse to resume ``run`` with a different configuration, naming what differs."""
    diff = config_diff(run.config(registry), requested)
    if diff:
        shown = "; ".join(diff[:8]) + (f"; ... ({len(diff)} in all)" if len(diff) > 8 else "")
        raise ConfigError(f"--resume {run.path}: the configuration differs from the run's ({shown}); resume with "
                          "the run's settings, or start a new run without --resume")


def process_alive(status: dict[str, Any]) -> bool:
    """Whether the process recorded in a ``running`` status still runs (on this host)."""
    pid, host = status.get("pid"), status.get("host")
    if not isinstance(pid, int) or (host and host != socket.gethostname()):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.is_file():
        try:
            return b"rrgbench" in cmdline.read_bytes()
        except OSError:
            return True
    return True


def in_use(run: RunDir, status: dict[str, Any]) -> bool:
    """Whether another process holds ``run`` (its lock, or a live ``running`` process in its ``status``)."""
    return run.locked_by_other() or (status.get("status") == "running" and process_alive(status))


def check_resumable(run: RunDir, status: dict[str, Any]) -> None:
    """ConfigError when ``run`` (with its ``status``, as read) is in use by another process."""
    if in_use(run, status):
        raise ConfigError(f"--resume: run {run.path} is still running (pid {status.get('pid')}); stop it first")


def resolve_resume(registry: Registry, out: Path, config: RunConfig, spec: str) -> RunDir | None:
    """The run ``--resume`` continues: ``spec`` is ``auto`` (latest unfinished run with this config) or a dir.

    ``None`` means there is nothing to resume (a new run starts). A finished run is returned as is;
    the caller reports it instead of training again.
    """
    if spec != "auto":
        run = existing_run(spec)
        check_same_config(registry, run, config)
        status = run.status()
        if status.get("status") != "finished":
            check_resumable(run, status)
        return run
    matching = [(r, r.status()) for r in find_matching(out, config) if not config_diff(r.config(registry), config)]
    unfinished = [(r, status) for r, status in matching if status.get("status") in UNFINISHED]
    for run, status in reversed(unfinished):
        if not in_use(run, status):
            return run
    finished = [r for r, status in matching if status.get("status") == "finished"]
    if finished:
        return finished[-1]
    if unfinished:
        check_resumable(*unfinished[-1])
    return None


def near_misses(registry: Registry, out: Path, config: RunConfig) -> list[tuple[RunDir, list[str]]]:
    """Unfinished runs of the same model, dataset and seed whose configuration differs (for a hint)."""
    base = model_folder(out, config)
    if not base.is_dir():
        return []
    found = []
    for run in find_runs(base):
        if run.status().get("status") in UNFINISHED:
            try:
                recorded = run.config(registry)
            except RRGBenchError:
                continue
            if recorded.seed == config.seed:
                diff = config_diff(recorded, config)
                if diff:
                    found.append((run, diff))
    return found


# -- the training log ------------------------------------------------------------------------------
def complete_rows(path: Path) -> list[str]:
    """The log's complete, valid JSON lines (a line cut by a crash is dropped)."""
    if not path.is_file():
        return []
    rows = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break
            try:
                json.loads(line)
            except json.JSONDecodeError:
                break
            rows.append(line)
    return rows


def truncate_log(path: Path, keep: int) -> int:
    """Keep the first ``keep`` complete rows of a JSONL log (the rows a checkpoint knew); returns the count."""
    rows = complete_rows(path)[:keep]
    atomic_write(path, lambda handle: handle.writelines(rows))
    return len(rows)


# -- signals ---------------------------------------------------------------------------------------
class StopSignals(SignalCatcher):
    """SIGINT/SIGTERM ask the trainer to checkpoint and stop at the next safe point.

    A second signal stops at once (KeyboardInterrupt): the previous checkpoint is still intact.
    The handler only sets a flag (printing from it could re-enter a write the signal interrupted); the
    trainer reports it.
    """

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested = signum


# -- reproducible augmentation ---------------------------------------------------------------------
def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for one sample of one epoch."""
    return int(np.random.SeedSequence([seed % 2**32, epoch, index]).generate_state(2, dtype=np.uint64)[0] >> 1)


class SeededSamples(Dataset):
    """Wraps a dataset so that item ``i``'s random transform is seeded from ``(seed, epoch, i)``.

    The global torch generator is forked around the load, so augmentation neither consumes nor
    depends on the stream dropout uses.
    """

    def __init__(self, dataset: Any, seed: int, epoch: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, epoch
        self.tokenizer = dataset.tokenizer

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(sample_seed(self.seed, self.epoch, index))
            return self.dataset[index]

