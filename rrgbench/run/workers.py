"""Several training runs at once, each in its own worker process (``rrgbench suite --jobs N``).

Each run gets a fresh process (``multiprocessing`` with the ``spawn`` start method: safe with CUDA and with
a parent that already used torch), so its peak-memory figures are its own (they are also reset before the
run) and a crash or an out-of-memory kill takes down that run only. A worker uses ``threads`` torch
threads (1 unless the suite says otherwise), rebuilds the plugin registry (the parent's extra plugin
modules included) and the configuration from its plain form, checks that the fingerprint is unchanged,
and prints its log lines prefixed with ``[n/N]``. It runs in its own process group, so a Ctrl-C in the
terminal reaches the parent only: the parent forwards SIGINT/SIGTERM to every running worker (which saves a
checkpoint and stops, as a single run does), starts nothing new, waits for the workers, then raises
:class:`rrgbench.run.resume.RunInterrupted`.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from rrgbench.run.signals import SignalCatcher

Train = Callable[..., Any]
Outcome = tuple[str, str]  # ("finished" | "failed" | "interrupted", message)


@dataclass(frozen=True)
class WorkerTask:
    """Everything a worker needs, in picklable form."""

    n: int
    total: int
    label: str
    config: dict[str, Any]  # RunConfig.to_dict()
    fingerprint: str
    plugins: tuple[str, ...]  # extra plugin modules the parent loaded
    out: str
    device: str
    data_dir: str | None
    resume: str | None
    threads: int
    train: Train | None = None  # a module-level function like run_training (tests); default run_training
    chexbert: str | None = None  # local metric model files (--chexbert, --radgraph)
    radgraph: str | None = None


def extra_plugin_modules(registry: Any) -> tuple[str, ...]:
    """Plugin modules loaded by name (``-p``, ``RRGBENCH_PLUGINS``, tests), which a worker must load too."""
    plugins = getattr(registry, "plugins", {}) or {}
    return tuple(name for name, plugin in plugins.items()
                 if isinstance(plugin, types.ModuleType) and plugin.__name__ == name)


def _registry(modules: Sequence[str]) -> Any:
    from rrgbench.extension.plugins import get_host, load_modules

    host = get_host()
    loaded = {getattr(p, "__name__", None) for p in host.pm.get_plugins()}
    load_modules(host, [m for m in modules if m not in loaded])
    return host.registry


def work(conn: Connection, task: WorkerTask) -> None:
    """The worker process: one training run; sends its outcome through ``conn``."""
    os.setpgrp()  # the terminal's Ctrl-C goes to the parent, which forwards it once
    prefix = f"[{task.n}/{task.total}]"
    outcome: Outcome = ("failed", "the worker stopped before reporting")
    try:
        import torch

        from rrgbench.config import RunConfig
        from rrgbench.run.efficiency import reset_peak_memory
        from rrgbench.run.request import RunRequest
        from rrgbench.run.results import LocalFiles
        from rrgbench.run.resume import RunInterrupted

        torch.set_num_threads(task.threads)
        registry = _registry(task.plugins)
        config = RunConfig.from_dict(task.config, registry)
        if config.fingerprint() != task.fingerprint:
            raise RuntimeError(f"the configuration changed in the worker ({task.fingerprint} -> "
                               f"{config.fingerprint()}); run the suite with --jobs 1 and report this")
        train = task.train
        if train is None:
            from rrgbench.run.loop import run_training as train
        reset_peak_memory()
        request = RunRequest(data_dir=task.data_dir, out=Path(task.out), device=task.device, progress=False,
                             log=lambda message: print(f"{prefix} {message}", flush=True), resume=task.resume,
                             files=LocalFiles(chexbert=task.chexbert, radgraph=task.radgraph))
        try:
            train(registry, config, request)
            outcome = ("finished", "")
        except RunInterrupted as exc:
            outcome = ("interrupted", str(exc))
    except KeyboardInterrupt:  # a forwarded signal before the run installed its own handlers
        outcome = ("interrupted", "stopped by a signal before training started")
    except BaseException as exc:  # reported by the parent; one failing run must not stop the suite
        outcome = ("failed", f"{type(exc).__name__}: {exc}"[:500])
    finally:
        conn.send(outcome)
        conn.close()


@dataclass
class _Running:
    task: WorkerTask
    process: Any
    conn: Connection
    began: float


class _Forward(SignalCatcher):
    """While installed: SIGINT/SIGTERM are recorded and forwarded to the running workers."""

    def __init__(self, running: dict[int, _Running]) -> None:
        super().__init__()
        self.running = running

    def _handle(self, signum: int, _frame: Any) -> None:
        self.requested = self.requested or signum
        for job in self.running.values():
            if job.process.is_alive():
                os.kill(job.process.pid, signum)


def run_in_workers(tasks: Sequence[WorkerTask], jobs: int, on_start: Callable[[WorkerTask, int], None],
                   on_done: Callable[[WorkerTask, Outcome, float], None]) -> None:
    """Run ``tasks`` at most ``jobs`` at a time, each in a fresh process; ``on_done`` gets each outcome and
    wall time (in order of completion). Raises RunInterrupted after the workers stopped on a signal."""
    from rrgbench.run.resume import RunInterrupted

    context = multiprocessing.get_context("spawn")
    queue, running = list(tasks), {}
    with _Forward(running) as signals:
        while queue or running:
            while queue and len(running) < jobs and signals.requested is None:
                task = queue.pop(0)
                receive, send = context.Pipe(duplex=False)
                process = context.Process(target=work, args=(send, task), name=f"rrgbench-run-{task.n}")
                process.start()
                send.close()
                running[process.sentinel] = _Running(task, process, receive, time.perf_counter())
                on_start(task, process.pid)
            if not running:
                break
            for sentinel in wait(list(running)):
                job = running.pop(sentinel)  # type: ignore[call-overload]
                job.process.join()
                try:
                    outcome = job.conn.recv()
                except EOFError:  # the process died before reporting
                    outcome = ("failed", f"worker process exited with code {job.process.exitcode} without a "
                                         "result (killed, e.g. out of memory?)")
                job.conn.close()
                on_done(job.task, outcome, time.perf_counter() - job.began)
    if signals.requested is not None:
        raise RunInterrupted(f"suite interrupted by {signal.Signals(signals.requested).name}", signals.requested)
