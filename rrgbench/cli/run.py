"""``rrgbench run``: train a recipe on a dataset, decode the test split once, score, write the record."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rrgbench.cli import echo, split_list
from rrgbench.errors import RRGBenchError


def register(sub: Any) -> None:
    run = sub.add_parser("run", help="train a model on a dataset, evaluate on test, write a run record")
    run.add_argument("--model", required=True, help="model recipe (rrgbench list models)")
    run.add_argument("--dataset", default="synthetic", help="dataset (default: synthetic)")
    run.add_argument("--data-dir", help="folder with annotation.json and images (or $RRGBENCH_DATA/<dataset>)")
    run.add_argument("--epochs", type=int, help="shortcut for --set train.epochs=N")
    run.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
    run.add_argument("--seed", default="0", help="training seed, or several: 1,2,3 (default 0)")
    run.add_argument("--out", default="runs", help="runs folder (default runs/)")
    run.add_argument("--profile", help="size profile: small or paper (default: the dataset's)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override an option, e.g. --set memory.size=4096 (repeatable)")
    run.add_argument("--allow-missing", action="store_true", help="skip studies whose images are absent")
    run.add_argument("--labeler", default="chexpert-rules", help="labeler for clinical-efficacy metrics")
    run.add_argument("--skip", action="append", default=[], metavar="METRIC",
                     help="do not compute this metric key (e.g. meteor); recorded as unavailable, never as 0")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(handler=cmd_run)


def overrides_from(args: argparse.Namespace) -> dict[str, str]:
    from rrgbench.options import parse_assignments

    overrides = parse_assignments(args.overrides)
    if args.epochs is not None:
        overrides["train.epochs"] = str(args.epochs)
    if getattr(args, "allow_missing", False):
        overrides["data.allow_missing"] = "true"
    return overrides


def parse_seeds(text: str) -> list[int]:
    try:
        return [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise RRGBenchError(f"--seed expects integers separated by commas, got '{text}'") from None


def cmd_run(args: argparse.Namespace) -> int:
    from rrgbench.config import resolve_config
    from rrgbench.plugins import registry

    reg = registry()
    overrides = overrides_from(args)
    configs = [resolve_config(reg, args.model, args.dataset, overrides, profile=args.profile, seed=seed)
               for seed in parse_seeds(args.seed)]  # all validated before anything heavy is imported
    from rrgbench.scoring import ScoringContext
    from rrgbench.train import RunRequest, run_training

    for config in configs:
        request = RunRequest(data_dir=args.data_dir, out=Path(args.out), device=args.device,
                             progress=not args.no_progress and sys.stderr.isatty(), log=echo,
                             scoring=ScoringContext(labeler=args.labeler, skip=frozenset(split_list(args.skip))))
        run = run_training(reg, config, request)
        echo(f"results: {run.path / 'results.json'}")
    return 0
