"""Run directories: where a run's files go, how they are named and found, and the lock that makes one run one writer.

Layout of one run (``--out`` default ``runs/``)::

    runs/<dataset>/<model>/<YYYYmmdd-HHMMSS>-<config fingerprint>-s<seed>/
        config.json            resolved configuration (RunConfig.to_dict())
        vocab.json             tokenizer (also inside every checkpoint's metadata)
        status.json            running (+ pid, host) | finished | failed (+ error, traceback) | interrupted
                               (+ signal), updated atomically
        .lock                  held (flock) by the process that trains or evaluates into the folder
        train_log.jsonl        one line per logged training step / validation; on resume it is cut back to
                               the rows the checkpoint knew (a line cut by a crash is dropped)
        checkpoints/           last.pt/.json (each epoch and every ``train.checkpoint_every`` steps),
                               last.prev.pt/.json (the one before, used when ``last`` is half-written),
                               best.pt/.json (best on validation)
        predictions.jsonl      id, prediction, reference (cleaned, untruncated)
        scores.jsonl           per-study metric values
        <table>.csv            side tables of the metric groups (ce_per_observation.csv)
        results.json           the run record (:mod:`rrgbench.record`)

Names used as path parts (dataset, model) are checked by :func:`rrgbench.outputs.safe_name` (the one
check, for run folders, score outputs, suite folders and the records a leaderboard reads): a record or a
plugin cannot make rrgbench write outside the folder it was given.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rrgbench.config import RunConfig
from rrgbench.errors import ConfigError, DataError
from rrgbench.extension.plugins import Registry
from rrgbench.io import read_json, write_json
from rrgbench.outputs import safe_name


@dataclass
class RunDir:
    path: Path
    _lock: IO[Any] | None = field(default=None, repr=False, compare=False)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def status(self) -> dict[str, Any]:
        file = self.path / "status.json"
        try:
            status = json.loads(file.read_text()) if file.is_file() else {"status": "unknown"}
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return {"status": "unknown"}
        return status if isinstance(status, dict) else {"status": "unknown"}

    def set_status(self, status: str, **extra: Any) -> None:
        write_json(self.path / "status.json", {"status": status, "updated": now(), **extra})

    def config_dict(self) -> dict[str, Any]:
        data = read_json(self.path / "config.json", "run configuration")
        if not isinstance(data, dict):
            raise DataError(f"{self.path / 'config.json'}: not a run configuration")
        return data

    def config(self, registry: Registry) -> RunConfig:
        try:
            return RunConfig.from_dict(self.config_dict(), registry)
        except ConfigError as exc:
            raise DataError(f"{self.path / 'config.json'}: {exc}") from None

    def lock(self) -> None:
        """Hold the run's lock until the process ends or :meth:`unlock`; a second holder is refused."""
        handle = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ConfigError(f"run {self.path} is in use by another rrgbench process; wait for it or stop it "
                              "first") from None
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def locked_by_other(self) -> bool:
        """Whether another process holds this run's lock right now."""
        if self._lock is not None or not (self.path / ".lock").is_file():
            return False
        with open(self.path / ".lock", "a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def create_run(out: Path, config: RunConfig) -> RunDir:
    """A fresh run directory holding the resolved config, locked by this process and marked running."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = model_folder(out, config)
    name = f"{stamp}-{config.fingerprint()}-s{config.seed}"
    base.mkdir(parents=True, exist_ok=True)
    path, n = base / name, 1
    while True:
        try:
            path.mkdir()  # atomic: two processes never get the same folder
            break
        except FileExistsError:
            n += 1
            path = base / f"{name}-{n}"
    run = RunDir(path)
    run.lock()
    try:
        write_json(path / "config.json", config.to_dict())
        run.set_status("running", pid=os.getpid(), host=socket.gethostname())
    except BaseException:  # a disk full here: no half-made run folder is left behind
        run.unlock()
        shutil.rmtree(path, ignore_errors=True)
        raise
    return run


def model_folder(out: Path, config: RunConfig) -> Path:
    """``out/<dataset>/<model>``: the folder of every run of ``config``'s model on its dataset."""
    return Path(out) / safe_name(config.dataset, "dataset") / safe_name(config.model, "model")


def existing_run(spec: str | Path) -> RunDir:
    """The run directory ``--resume RUN_DIR`` names; ConfigError when it has no config.json."""
    run = RunDir(Path(spec))
    if not (run.path / "config.json").is_file():
        raise ConfigError(f"--resume {spec}: not a run directory (no config.json in it)")
    return run


def find_runs(root: Path) -> list[RunDir]:
    """Every run directory below ``root`` (those with a config.json), oldest first."""
    return sorted((RunDir(p.parent) for p in Path(root).rglob("config.json")), key=lambda r: r.path.name)


def find_matching(root: Path, config: RunConfig, status: str | Collection[str] | None = None,
                  include_evaluations: bool = False) -> list[RunDir]:
    """Runs below ``root`` with the same configuration fingerprint (and status, or one of several), oldest first.

    Records written by ``rrgbench evaluate`` share their checkpoint's fingerprint but are not training
    runs; they are left out unless ``include_evaluations``.
    """
    fingerprint = config.fingerprint()
    base = model_folder(root, config)
    if not base.is_dir():
        return []
    wanted = {status} if isinstance(status, str) else set(status or ())
    found = []
    for run in find_runs(base):
        if f"-{fingerprint}-" not in run.path.name:
            continue
        state = run.status()
        if (not wanted or state.get("status") in wanted) and (include_evaluations or not state.get("evaluated_from")):
            found.append(run)
    return found


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
