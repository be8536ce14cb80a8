"""Benchmark suites: a YAML file lists models x datasets x seeds x overrides; run them, then report.

A suite file (``benchmarks/suites/*.yaml``)::

    name: synthetic                # names the default runs folder (runs/suite-<name>)
    description: every model and ablation, 3 seeds, on the synthetic dataset
    datasets: [synthetic]
    seeds: [0, 1, 2]
    profile: small                 # optional; default: each dataset's own
    device: auto                   # auto, cpu or cuda[:N]
    labeler: chexpert-rules        # labeler of the clinical-efficacy metrics
    chexbert: ~/models/chexbert.pth  # optional: CheXbert weights (for labeler chexbert), as --chexbert
    radgraph: ~/models/radgraph    # optional: RadGraph model folder, as --radgraph
    skip: [meteor]                 # metric keys not computed (recorded as unavailable, never as 0)
    threads: 0                     # torch intra-op threads per run (0: torch's default; 1 with jobs > 1)
    jobs: 1                        # runs at once, each in its own process (``rrgbench suite --jobs N`` wins)
    efficiency: fast               # efficiency.mode of the runs: auto, full, fast or off (rrgbench.run.efficiency)
    overrides:                     # suite-wide and *soft*: applied where the model has the option
      dataset.n_train: 300
      train.epochs: 3
    models:
      - transformer                # a recipe name, or a mapping:
      - model: nearest-neighbor
        overrides: {train.epochs: 0}   # per-model overrides are strict (a typo is an error)
      - model: mcsam
        seeds: [0]                     # per-model seeds / datasets replace the suite's
        overrides: {memory.size: 1024}

Soft suite-wide overrides let one file shrink every model although their option sets differ (the
LSTM decoder has no ``decoder.heads``), exactly like the size profiles; they are kept apart from the
per-model overrides in each record (``config.overrides.suite``), so they do not label leaderboard rows.
Every configuration is resolved and validated before anything runs. A configuration that already has a
finished run in the runs folder (same config fingerprint, ``status.json`` finished, ``results.json``
present, and the same code identity of the plugins that contributed to it, see
:mod:`rrgbench.run.environment`) is skipped, so an interrupted suite continues where it stopped and a
changed plugin re-runs its runs.
A run left unfinished by an earlier, interrupted suite continues from its last checkpoint
(:func:`rrgbench.run.resume.resolve_resume`). A failing run is reported and the suite goes on; the result
says which failed; an interruption (SIGINT/SIGTERM, :class:`rrgbench.run.resume.RunInterrupted`) stops the
suite after the running runs saved their checkpoints. Before anything runs, and after every finished run,
the suite says how many runs remain and roughly how long they take (:class:`RemainingTime`: the mean wall time
of finished runs of the same model, earlier suites' included, divided by the jobs).

With ``jobs: 1`` (the default) runs share this process, one after another; before each, the peak-memory
counters are reset (:func:`rrgbench.run.efficiency.reset_peak_memory`). With ``--jobs N`` up to N runs go
at once, each in a fresh worker process with one torch thread (:mod:`rrgbench.run.workers`); what that
gains is measured as described in ``benchmarks/suites/synthetic.yaml``. With jobs > 1 a run's cost figures
are measured at 1 thread next to another run.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rrgbench.config import RunConfig
from rrgbench.errors import ConfigError, RRGBenchError, did_you_mean
from rrgbench.extension.plugins import Registry
from rrgbench.logs import duration
from rrgbench.run.results import LocalFiles

SUITE_KEYS = ("name", "description", "datasets", "seeds", "profile", "device", "labeler", "chexbert", "radgraph",
              "skip", "threads", "jobs", "efficiency", "overrides", "models")
MODEL_KEYS = ("model", "overrides", "seeds", "datasets")
Logger = Callable[[str], None]


@dataclass(frozen=True)
class ModelEntry:
    model: str
    overrides: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] | None = None
    datasets: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Suite:
    """A parsed suite file."""

    name: str
    models: tuple[ModelEntry, ...]
    datasets: tuple[str, ...] = ("synthetic",)
    seeds: tuple[int, ...] = (0,)
    description: str = ""
    profile: str | None = None
    device: str = "auto"
    labeler: str = "chexpert-rules"
    chexbert: str | None = None  # local metric model files (never part of a run's configuration)
    radgraph: str | None = None
    skip: tuple[str, ...] = ()
    threads: int = 0
    jobs: int = 1
    efficiency: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def model_names(self) -> list[str]:
        return list(dict.fromkeys(entry.model for entry in self.models))

    def expected(self) -> dict[str, list[str]]:
        """Dataset -> models that the suite's report must have a row for."""
        out: dict[str, list[str]] = {}
        for entry in self.models:
            for dataset in entry.datasets or self.datasets:
                out.setdefault(dataset, [])
                if entry.model not in out[dataset]:
                    out[dataset].append(entry.model)
        return out


# -- parsing -------------------------------------------------------------------------------------------
def read_yaml(path: Path, not_found: str) -> Any:
    """Parse the YAML file at ``path`` (suite and run files); ``not_found`` is the error when it is missing."""
    import yaml

    if not path.is_file():
        raise ConfigError(not_found)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (bad byte at offset {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None


def load_suite(path: Path) -> Suite:
    """Read and check a suite file; errors name the file and the offending entry."""
    path = Path(path)
    return parse_suite(read_yaml(path, f"suite file not found: {path}"), str(path), path)


def parse_suite(data: Any, where: str = "suite", path: Path | None = None) -> Suite:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: a suite is a mapping with at least 'models'")
    _known_keys(data, SUITE_KEYS, where)
    if not data.get("models") or not isinstance(data["models"], list):
        raise ConfigError(f"{where}: 'models' must list at least one model recipe")
    models = tuple(_model_entry(item, f"{where}: models[{i}]") for i, item in enumerate(data["models"]))
    from rrgbench.outputs import safe_name

    name = safe_name(str(data.get("name") or (path.stem if path else "suite")), f"{where}: suite name")
    jobs = _count(data.get("jobs", 1), f"{where}: jobs")
    if jobs < 1:
        raise ConfigError(f"{where}: jobs: expected at least 1, got {jobs}")
    return Suite(
        name=name, models=models, jobs=jobs,
        datasets=_strings(data.get("datasets", ["synthetic"]), f"{where}: datasets"),
        seeds=_ints(data.get("seeds", [0]), f"{where}: seeds"), description=str(data.get("description") or ""),
        profile=data.get("profile"), device=str(data.get("device", "auto")),
        labeler=str(data.get("labeler", "chexpert-rules")), skip=_strings(data.get("skip", []), f"{where}: skip"),
        chexbert=_path(data.get("chexbert"), f"{where}: chexbert"),
        radgraph=_path(data.get("radgraph"), f"{where}: radgraph"),
        threads=_count(data.get("threads", 0), f"{where}: threads"),
        efficiency=_choice(data.get("efficiency"), EFFICIENCY_MODES, f"{where}: efficiency"),
        overrides=_mapping(data.get("overrides"), f"{where}: overrides"), path=path)


EFFICIENCY_MODES = ("auto", "full", "fast", "off")


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: expected a non-negative integer, got {value!r}")
    return value


def _choice(value: Any, choices: Sequence[str], where: str) -> str | None:
    if value is None:
        return None
    if value not in choices:
        raise ConfigError(f"{where}: expected one of {', '.join(choices)}, got {value!r}"
                          f"{did_you_mean(str(value), choices)}")
    return str(value)


def _path(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected a file or folder path, got {value!r}")
    return str(Path(value).expanduser())


def _known_keys(data: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    for key in data:
        if key not in known:
            raise ConfigError(f"{where}: unknown key '{key}'{did_you_mean(str(key), known)}; known: {', '.join(known)}")


def _model_entry(item: Any, where: str) -> ModelEntry:
    if isinstance(item, str):
        return ModelEntry(item)
    if not isinstance(item, Mapping) or "model" not in item:
        raise ConfigError(f"{where}: expected a recipe name or a mapping with 'model'")
    _known_keys(item, MODEL_KEYS, where)
    return ModelEntry(str(item["model"]), _mapping(item.get("overrides"), f"{where}.overrides"),
                      _ints(item["seeds"], f"{where}.seeds") if "seeds" in item else None,
                      _strings(item["datasets"], f"{where}.datasets") if "datasets" in item else None)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping of section.key: value")
    return {str(k): v for k, v in value.items()}


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise ConfigError(f"{where}: expected a list of names")
    return tuple(items)


def _ints(value: Any, where: str) -> tuple[int, ...]:
    items = [value] if isinstance(value, int) else value
    if not isinstance(items, list) or not items or not all(isinstance(x, int) and not isinstance(x, bool)
                                                           for x in items):
        raise ConfigError(f"{where}: expected a non-empty list of integers")
    return tuple(items)


# -- planning ------------------------------------------------------------------------------------------
@dataclass
class PlannedRun:
    config: RunConfig
    label: str


def suite_settings(suite: Suite) -> dict[str, Any]:
    """The suite-wide settings as soft overrides: labeler, skipped metrics, efficiency, then ``overrides``."""
    settings: dict[str, Any] = {"scoring.labeler": suite.labeler, "scoring.skip": list(suite.skip)}
    if suite.efficiency is not None:
        settings["efficiency.mode"] = suite.efficiency
    return {**settings, **suite.overrides}


def plan(suite: Suite, registry: Registry, only: Sequence[str] = ()) -> list[PlannedRun]:
    """Every run of the suite, resolved and validated (nothing runs yet)."""
    from rrgbench.config import resolve_config

    planned = []
    for i, entry in enumerate(suite.models):
        if only and not any(fnmatch.fnmatch(entry.model, pattern) for pattern in only):
            continue
        for dataset in entry.datasets or suite.datasets:
            where = f"suite '{suite.name}', models[{i}] ({entry.model} on {dataset})"
            try:
                for seed in entry.seeds or suite.seeds:
                    config = resolve_config(registry, entry.model, dataset, entry.overrides, profile=suite.profile,
                                            seed=seed, suite_overrides=suite_settings(suite))
                    planned.append(PlannedRun(config, _label(entry, dataset, seed)))
            except RRGBenchError as exc:
                raise ConfigError(f"{where}: {exc}") from None
    return planned


def _label(entry: ModelEntry, dataset: str, seed: int) -> str:
    extra = "".join(f" {k}={v}" for k, v in entry.overrides.items())
    return f"{entry.model} on {dataset}, seed {seed}{extra}"


# -- running -------------------------------------------------------------------------------------------
@dataclass
class SuiteResult:
    planned: int = 0
    skipped: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    reports: dict[str, list[Path]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.problems


def already_finished(registry: Registry, runs: Path, config: RunConfig) -> Path | None:
    """A finished run of exactly this configuration and plugin code below ``runs`` (record present), if any."""
    from rrgbench.record import RESULTS_FILE, read_record
    from rrgbench.run.environment import code_identity, plugin_code
    from rrgbench.run.layout import find_matching

    wanted = code_identity(plugin_code(registry, config))
    for run in reversed(find_matching(runs, config, status="finished")):
        try:
            record = read_record(run.path / RESULTS_FILE)
        except RRGBenchError:
            continue
        if code_identity(record.environment.plugins) == wanted:
            return run.path
    return None


def unfinished_run(registry: Registry, runs: Path, config: RunConfig) -> Path | None:
    """An interrupted run of exactly this configuration that can continue from its checkpoint, if any."""
    from rrgbench.run.resume import resolve_resume

    try:
        run = resolve_resume(registry, runs, config, "auto")
    except RRGBenchError:  # e.g. no checkpoint yet: start afresh
        return None
    if run is None or run.status().get("status") == "finished":
        return None
    return run.path


@contextmanager
def _threads(suite: Suite) -> Iterator[None]:
    """Torch's intra-op threads for the suite's runs, restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    if suite.threads:
        torch.set_num_threads(suite.threads)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class Execution:
    """Where and how the suite's runs execute."""

    runs: Path
    device: str
    data_dir: str | None
    log: Logger
    progress: bool = False
    jobs: int = 1
    threads: int = 0
    train: Callable[..., Any] | None = None  # default: rrgbench.run.loop.run_training
    files: LocalFiles = field(default_factory=LocalFiles)  # local metric model files (--chexbert, --radgraph)


@dataclass
class Todo:
    n: int
    item: PlannedRun
    resume: Path | None


class RemainingTime:
    """How many runs remain and roughly how long: each remaining run is estimated by the mean wall time of the
    finished runs of its model (of all finished runs when its model has none), divided by the parallel jobs."""

    def __init__(self, total: int, jobs: int) -> None:
        self.total, self.jobs = total, jobs
        self.seconds: dict[str, list[float]] = {}

    def finished(self, model: str, seconds: float | None) -> None:
        if seconds is not None and seconds >= 0:
            self.seconds.setdefault(model, []).append(seconds)

    def eta(self, remaining: Sequence[str]) -> str:
        if not remaining:
            return "nothing left"
        known = [s for found in self.seconds.values() for s in found]
        if not known:
            return f"{len(remaining)} left (ETA after the first finished run)"
        overall = sum(known) / len(known)
        total = sum(sum(found) / len(found) if (found := self.seconds.get(model)) else overall
                    for model in remaining)
        return (f"{len(remaining)} left, about {duration(total / self.jobs)} (estimated from {len(known)} "
                f"finished runs' wall times, {self.jobs} at a time)")


def wall_seconds(run: Path) -> float | None:
    """A finished run's wall time: from its folder's creation stamp to its final status update."""
    import datetime

    from rrgbench.run.layout import RunDir

    try:
        began = datetime.datetime.strptime(run.name[:15], "%Y%m%d-%H%M%S")
        ended = datetime.datetime.strptime(RunDir(run).status()["updated"], "%Y-%m-%dT%H:%M:%S%z")
    except (ValueError, KeyError, TypeError):
        return None
    return (ended.replace(tzinfo=None) - began).total_seconds()


def run_suite(suite: Suite, registry: Registry, runs: Path, *, leaderboard: Path | None = None,
              only: Sequence[str] = (), progress: bool = False, log: Logger = print,
              data_dir: str | None = None, jobs: int | None = None,
              train: Callable[..., Any] | None = None, files: LocalFiles | None = None) -> SuiteResult:
    """Run every planned configuration not finished yet (``jobs`` at a time; default the suite's ``jobs``),
    then build (and check) the leaderboards. ``files`` (default: the suite's ``chexbert`` / ``radgraph`` keys)
    are checked before the first run."""
    from rrgbench.run.results import check_scoring

    planned = plan(suite, registry, only)
    files = files or LocalFiles(chexbert=suite.chexbert, radgraph=suite.radgraph)
    check_scoring(registry, [item.config for item in planned], files)
    execution = Execution(Path(runs), suite.device, data_dir, log, progress, max(1, jobs or suite.jobs),
                          suite.threads, train, files)
    result, start = SuiteResult(planned=len(planned)), time.perf_counter()
    tracker = RemainingTime(len(planned), execution.jobs)
    todo = []
    for n, item in enumerate(planned, 1):
        done = already_finished(registry, execution.runs, item.config)
        if done is not None:
            log(f"[{n}/{len(planned)}] skip {item.label}: finished in {done}")
            result.skipped.append(item.label)
            tracker.finished(item.config.model, wall_seconds(done))
            continue
        todo.append(Todo(n, item, unfinished_run(registry, execution.runs, item.config)))
    log(f"suite '{suite.name}': {len(todo)} of {len(planned)} runs to do, {execution.jobs} at a time; "
        + tracker.eta([t.item.config.model for t in todo]))
    if todo:
        (_run_in_workers if execution.jobs > 1 else _run_here)(suite, registry, todo, execution, result, tracker)
    result.seconds = time.perf_counter() - start
    if leaderboard is not None:
        result.reports, result.problems = report(suite, registry, execution.runs, leaderboard, only)
    return result


def _record(todo: Todo, total: int, outcome: tuple[str, str], seconds: float, result: SuiteResult,
            tracker: RemainingTime, left: Sequence[str], log: Logger) -> None:
    """Log and count one run's outcome."""
    status, message = outcome
    prefix = f"[{todo.n}/{total}]"
    if status == "finished":
        tracker.finished(todo.item.config.model, seconds)
        result.finished.append(todo.item.label)
        log(f"{prefix} done in {seconds:.0f} s: {todo.item.label}; {tracker.eta(left)}")
    elif status == "failed":
        result.failed.append((todo.item.label, message))
        log(f"{prefix} FAILED {todo.item.label}: {message}")
    else:
        log(f"{prefix} interrupted {todo.item.label}: {message}")


def _run_here(suite: Suite, registry: Registry, todo: Sequence[Todo], execution: Execution, result: SuiteResult,
              tracker: RemainingTime) -> None:
    """One run after another in this process (peak-memory counters reset before each)."""
    from rrgbench.run import loop
    from rrgbench.run.efficiency import reset_peak_memory
    from rrgbench.run.resume import RunInterrupted

    total = result.planned
    with _threads(suite):
        for i, item in enumerate(todo):
            log, config = execution.log, item.item.config
            log(f"[{item.n}/{total}] {'resume' if item.resume else 'run'} {item.item.label}")
            reset_peak_memory()
            request = loop.RunRequest(data_dir=execution.data_dir, out=execution.runs, device=execution.device,
                                      progress=execution.progress, log=log, files=execution.files,
                                      resume=str(item.resume) if item.resume else None)
            began = time.perf_counter()
            try:
                (execution.train or loop.run_training)(registry, config, request)
                outcome = ("finished", "")
            except (KeyboardInterrupt, SystemExit, RunInterrupted):
                raise
            except Exception as exc:  # one failing model must not stop the suite
                outcome = ("failed", f"{type(exc).__name__}: {exc}"[:500])
            left = [t.item.config.model for t in todo[i + 1:]]
            _record(item, total, outcome, time.perf_counter() - began, result, tracker, left, log)


def _run_in_workers(suite: Suite, registry: Registry, todo: Sequence[Todo], execution: Execution,
                    result: SuiteResult, tracker: RemainingTime) -> None:
    """``execution.jobs`` runs at a time, each in its own process with one torch thread (or the suite's
    ``threads``): see :mod:`rrgbench.run.workers`."""
    from rrgbench.run.workers import WorkerTask, extra_plugin_modules, run_in_workers

    total, plugins = result.planned, extra_plugin_modules(registry)
    by_n = {t.n: t for t in todo}
    tasks = [WorkerTask(t.n, total, t.item.label, t.item.config.to_dict(), t.item.config.fingerprint(), plugins,
                        str(execution.runs), execution.device, execution.data_dir,
                        str(t.resume) if t.resume else None, execution.threads or 1, execution.train,
                        execution.files.chexbert, execution.files.radgraph) for t in todo]
    pending = {t.n for t in todo}

    def started(task: WorkerTask, pid: int) -> None:
        execution.log(f"[{task.n}/{total}] {'resume' if task.resume else 'run'} {task.label} (worker {pid})")

    def done(task: WorkerTask, outcome: tuple[str, str], seconds: float) -> None:
        pending.discard(task.n)
        left = [by_n[n].item.config.model for n in sorted(pending)]
        _record(by_n[task.n], total, outcome, seconds, result, tracker, left, execution.log)

    run_in_workers(tasks, execution.jobs, started, done)


def expected_metrics(registry: Registry) -> list[str]:
    """Every metric key the registered metric groups produce."""
    from rrgbench.scoring.engine import all_keys

    return list(all_keys(registry))


def expected_rows(suite: Suite, only: Sequence[str] = ()) -> dict[str, list[str]]:
    """Dataset -> models that must have a row (those matching ``only``, when given)."""
    expected = suite.expected()
    if only:
        expected = {dataset: [m for m in models if any(fnmatch.fnmatch(m, p) for p in only)]
                    for dataset, models in expected.items()}
    return expected


def report(suite: Suite, registry: Registry, runs: Path, out: Path,
           only: Sequence[str] = ()) -> tuple[dict[str, list[Path]], list[str]]:
    """Build the leaderboards from the runs folder and check that the suite's report is complete."""
    from rrgbench.report.leaderboard import build_reports, check_complete

    try:
        reports = build_reports(runs, out, registry=registry)
    except RRGBenchError as exc:  # e.g. no run finished, or an unreadable record: nothing was written
        return {}, [f"no leaderboard: {exc}"]
    return reports, check_complete(out, expected_rows(suite, only), expected_metrics(registry))
