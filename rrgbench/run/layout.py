"""Run directories and run records.

Layout of one run (``--out`` default ``runs/``)::

    runs/<dataset>/<model>/<YYYYmmdd-HHMMSS>-<config fingerprint>-s<seed>/
        config.json        resolved configuration (RunConfig.to_dict())
        vocab.json         tokenizer (also inside every checkpoint's metadata)
        status.json        running (+ pid, host) | finished | failed (+ error) | interrupted (+ signal),
                           updated atomically
        train_log.jsonl    one line per logged training step / validation; on resume it is cut back to
                           the rows the checkpoint knew (a line cut by a crash is dropped)
        checkpoints/       last.pt/.json (each epoch and every ``train.checkpoint_every`` steps),
                           last.prev.pt/.json (the one before, used when ``last`` is half-written),
                           best.pt/.json (best on validation)
        predictions.jsonl  id, prediction, reference (cleaned, untruncated)
        scores.jsonl       per-study metric values
        results.json       the record leaderboards read (schema below)

``results.json`` keys: ``schema_version``, ``run_id``, ``model``, ``dataset``, ``profile``, ``seed``,
``metrics`` (key -> {value, ci95, higher_is_better[, unavailable]}), ``validation``, ``protocol``,
``efficiency``, ``environment``, ``config``, ``created``; a record written by ``rrgbench evaluate`` adds
``evaluated_from`` (the checkpoint's path; ``protocol.evaluation`` holds its SHA-256).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import time
from collections.abc import Collection
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from rrgbench.config import RunConfig
from rrgbench.io import write_json

SCHEMA_VERSION = 1
_PACKAGES = ("rrgbench", "torch", "torchvision", "timm", "numpy", "pycocoevalcap", "pluggy", "transformers",
             "f1chexbert", "radgraph")


@dataclass
class RunDir:
    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def status(self) -> dict[str, Any]:
        file = self.path / "status.json"
        try:
            return json.loads(file.read_text()) if file.is_file() else {"status": "unknown"}
        except (OSError, json.JSONDecodeError):
            return {"status": "unknown"}

    def set_status(self, status: str, **extra: Any) -> None:
        write_json(self.path / "status.json", {"status": status, "updated": _now(), **extra})

    def config(self) -> RunConfig:
        return RunConfig.from_dict(json.loads((self.path / "config.json").read_text()))

    def results(self) -> dict[str, Any] | None:
        file = self.path / "results.json"
        return json.loads(file.read_text()) if file.is_file() else None


def create_run(out: Path, config: RunConfig) -> RunDir:
    """A fresh run directory holding the resolved config, marked running."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(out) / config.dataset / config.model
    name = f"{stamp}-{config.fingerprint()}-s{config.seed}"
    path, n = base / name, 1
    while path.exists():
        n += 1
        path = base / f"{name}-{n}"
    path.mkdir(parents=True)
    run = RunDir(path)
    write_json(path / "config.json", config.to_dict())
    run.set_status("running", pid=os.getpid(), host=socket.gethostname())
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
    base = Path(root) / config.dataset / config.model
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


def environment(device: str) -> dict[str, Any]:
    """Package versions, device, platform and git revision, for the record."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"packages": versions, "python": platform.python_version(), "platform": platform.platform(),
            "device": device, "device_name": _device_name(device), "git": git_revision()}


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(0)
    return platform.processor() or platform.machine()


def git_revision() -> dict[str, Any] | None:
    """The rrgbench source checkout's commit and whether it had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": rev, "dirty": bool(dirty)}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def results_record(run: RunDir, config: RunConfig, metrics: dict[str, Any], *, validation: dict[str, Any],
                   protocol: dict[str, Any], efficiency: dict[str, Any], env: dict[str, Any],
                   **extra: Any) -> dict[str, Any]:
    """The ``results.json`` record; ``extra`` adds keys (``evaluated_from`` for ``rrgbench evaluate``)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run.run_id,
        "model": config.model,
        "dataset": config.dataset,
        "profile": config.profile,
        "seed": config.seed,
        "metrics": metrics,
        "validation": validation,
        "protocol": protocol,
        "efficiency": efficiency,
        "environment": env,
        "config": config.to_dict(),
        "created": _now(),
        **extra,
    }
