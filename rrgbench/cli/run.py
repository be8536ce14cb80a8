"""``rrgbench run``: train a recipe on a dataset, decode the test split once, score, write the record.

``--resume`` continues the latest unfinished run (running with a dead process, failed or interrupted)
of the same configuration in ``--out``, or ``--resume RUN_DIR`` that run (``--model`` may then be
omitted: the run's own configuration is used; given options must agree with it). Several seeds
(``--seed 1,2,3``) give one run directory each and a closing ``mean ± std`` line. Under ``torchrun``
every rank runs this command; only rank 0 prints and writes.

``--config run.yaml`` reads a run configuration file (:mod:`rrgbench.run.runfile`; flags win over it);
``--print-config`` prints the resolved configuration with the origin of every value and exits.
``--report-to tensorboard|wandb`` sends every training and validation scalar to a tracker
(:mod:`rrgbench.run.tracking`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rrgbench.cli import echo, split_list
from rrgbench.errors import ConfigError, RRGBenchError


def register(sub: Any) -> None:
    run = sub.add_parser("run", help="train a model on a dataset, evaluate on test, write a run record")
    run.add_argument("--config", metavar="FILE", help="run configuration file (YAML: model, datasets, seeds, profile, "
                                                      "overrides; flags override it)")
    run.add_argument("--print-config", action="store_true",
                     help="print the resolved configuration and the source of every value, then exit")
    run.add_argument("--model", help="model recipe (rrgbench list models); required unless --config or "
                                     "--resume RUN_DIR gives it")
    run.add_argument("--dataset", default=None, help="dataset (default: synthetic)")
    run.add_argument("--data-dir", help="folder with annotation.json and images (or $RRGBENCH_DATA/<dataset>)")
    run.add_argument("--epochs", type=int, help="shortcut for --set train.epochs=N")
    run.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
    run.add_argument("--seed", default=None, help="training seed, or several: 1,2,3 (default 0)")
    run.add_argument("--out", default="runs", help="runs folder (default runs/)")
    run.add_argument("--profile", help="size profile: small or paper (default: the dataset's)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override an option, e.g. --set memory.size=4096 (repeatable)")
    run.add_argument("--allow-missing", action="store_true", help="skip studies whose images are absent")
    add_scoring_flags(run)
    run.add_argument("--efficiency", choices=("auto", "full", "fast", "off"),
                     help="cost measurements after the test decode (shortcut for --set efficiency.mode=...; "
                          "default auto: fast under 2,000 training steps, else full)")
    run.add_argument("--resume", nargs="?", const="auto", default=None, metavar="RUN_DIR",
                     help="continue the latest unfinished run of this configuration in --out (or RUN_DIR); "
                          "starts a new run when there is none")
    run.add_argument("--report-to", default="none", choices=("none", "tensorboard", "wandb"),
                     help="experiment tracker for training/validation scalars (default none; tensorboard writes "
                          "<run>/tensorboard; wandb honours WANDB_PROJECT and WANDB_MODE=offline)")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bars (plain progress lines instead, as when standard error is a file)")
    run.set_defaults(handler=cmd_run)


def add_scoring_flags(parser: argparse.ArgumentParser) -> None:
    """--labeler, --skip, --chexbert and --radgraph: shared by run, evaluate and suite."""
    parser.add_argument("--labeler", help="labeler for clinical-efficacy metrics (shortcut for --set "
                                          "scoring.labeler=...; default chexpert-rules)")
    parser.add_argument("--skip", action="append", default=[], metavar="METRIC",
                        help="do not compute this metric key (e.g. meteor); recorded as unavailable, never as 0")
    parser.add_argument("--chexbert", metavar="PATH",
                        help="CheXbert weights file chexbert.pth (for --labeler chexbert)")
    parser.add_argument("--radgraph", metavar="DIR", help="RadGraph model folder (for the radgraph_* metrics)")


def local_files(args: argparse.Namespace) -> Any:
    from rrgbench.run.results import LocalFiles

    def path(value: str | None) -> str | None:
        return str(Path(value).expanduser()) if value else None

    return LocalFiles(chexbert=path(getattr(args, "chexbert", None)), radgraph=path(getattr(args, "radgraph", None)))


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """``--set`` assignments plus the flags that are shortcuts for one (flags win over --set)."""
    from rrgbench.extension.options import parse_assignments

    overrides: dict[str, Any] = dict(parse_assignments(args.overrides))
    if getattr(args, "epochs", None) is not None:
        overrides["train.epochs"] = str(args.epochs)
    if getattr(args, "allow_missing", False):
        overrides["data.allow_missing"] = "true"
    if getattr(args, "labeler", None):
        overrides["scoring.labeler"] = args.labeler
    if split_list(getattr(args, "skip", [])):
        overrides["scoring.skip"] = split_list(args.skip)
    if getattr(args, "efficiency", None):
        overrides["efficiency.mode"] = args.efficiency
    return overrides


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise RRGBenchError(f"--seed expects integers separated by commas, got '{text}'") from None
    if not seeds:
        raise RRGBenchError(f"--seed expects integers separated by commas, got '{text}'")
    return seeds


def resolve_configs(reg: Any, args: argparse.Namespace) -> list[Any]:
    """One validated RunConfig per seed (from the run directory itself for ``--resume RUN_DIR`` alone).

    A ``--config`` file gives model, dataset, seeds, profile and the ``file`` overrides; each flag wins over it.
    """
    from rrgbench.config import resolve_config
    from rrgbench.run.runfile import RunFile, load_run_file

    resume_dir = args.resume not in (None, "auto")
    file = load_run_file(Path(args.config)) if getattr(args, "config", None) else RunFile()
    model = args.model or file.model
    if model is None:
        if not resume_dir:
            raise ConfigError("run: --model is required (rrgbench list models), unless --config FILE names a model "
                              "or --resume RUN_DIR is given")
        from rrgbench.run.layout import existing_run

        return [existing_run(args.resume).config(reg)]
    seeds = parse_seeds(args.seed) if args.seed is not None else list(file.seeds or (0,))
    if resume_dir and len(seeds) > 1:
        raise ConfigError("--resume RUN_DIR continues one run; give a single --seed (or none)")
    overrides = overrides_from(args)
    dataset = args.dataset or file.dataset or "synthetic"
    try:
        return [resolve_config(reg, model, dataset, overrides, profile=args.profile or file.profile, seed=seed,
                               file_overrides=file.overrides) for seed in seeds]
    except ConfigError as exc:
        if str(exc).startswith("file: "):  # name the run file
            raise ConfigError(f"{args.config}: overrides: {str(exc).removeprefix('file: ')}") from None
        raise


def cmd_run(args: argparse.Namespace) -> int:
    from rrgbench.extension.plugins import registry
    from rrgbench.outputs import runs_root

    reg = registry()
    runs_root(Path(args.out))
    configs = resolve_configs(reg, args)  # all validated before anything heavy is imported
    if args.print_config:
        from rrgbench.run.runfile import resolved_lines

        for n, config in enumerate(configs):
            for line in ([""] if n else []) + resolved_lines(config):
                echo(line)
        return 0
    from rrgbench.logs import info as log_info
    from rrgbench.run import distributed
    from rrgbench.run.loop import RunRequest, run_training
    from rrgbench.run.tracking import check_tracker

    check_tracker(args.report_to)
    info = distributed.env_info()
    say = distributed.silence(info, echo)
    runs = []
    try:
        for config in configs:
            request = RunRequest(data_dir=args.data_dir, out=Path(args.out), device=args.device,
                                 progress=not args.no_progress and sys.stderr.isatty(),
                                 log=distributed.silence(info, log_info), files=local_files(args),
                                 resume=args.resume, report_to=args.report_to)
            run = run_training(reg, config, request)
            if run is not None:
                say(f"results: {run.path / 'results.json'}")
                runs.append(run)
    finally:
        distributed.teardown()
    if len(configs) > 1 and info.is_main:
        say(aggregate_line([config.seed for config in configs], [_record(run) for run in runs]))
    return 0


def _record(run: Any) -> Any:
    from rrgbench.record import RESULTS_FILE, read_record

    return read_record(run.path / RESULTS_FILE)


def aggregate_line(seeds: list[int], records: list[Any]) -> str:
    """``mean ± std over seeds ...: metric m ± s, ...`` for every metric all records have a value for."""
    from rrgbench.metrics.statistics import mean_std

    keys = list(records[0].metrics) if records else []
    parts = []
    for key in keys:
        values = [r.value(key) for r in records]
        if values and all(isinstance(v, (int, float)) for v in values):
            mean, std = mean_std(values)
            parts.append(f"{key} {mean:.4f} ± {std:.4f}")
    label = ",".join(str(s) for s in seeds)
    return f"mean ± std over {len(records)} seeds ({label}): " + (", ".join(parts) or "no metric has values")
