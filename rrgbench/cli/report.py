"""``rrgbench leaderboard`` and ``rrgbench suite``: reports from run records, and benchmark suites.

``leaderboard`` builds every dataset's report (Markdown, CSV, HTML, PNG) from the ``results.json``
files below ``--runs``; with ``--check`` it instead verifies an existing report (every expected model
has a row, every metric a value or an explained n/a) and exits 1 when something is missing.
``suite FILE`` runs a suite file's models x datasets x seeds (skipping finished ones), then builds and
checks the leaderboards.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rrgbench.cli import echo, split_list, warn
from rrgbench.errors import ConfigError


def register(sub: Any) -> None:
    board = sub.add_parser("leaderboard", help="build leaderboard reports from run records")
    board.add_argument("--runs", default="runs", help="folder searched for results.json (default runs/)")
    board.add_argument("--out", default="leaderboards", help="output folder (default leaderboards/)")
    board.add_argument("--no-plots", action="store_true", help="skip the PNG plots (and their HTML section)")
    board.add_argument("--sort", metavar="KEY",
                       help="column to rank by (a metric key or efficiency key; default: the dataset's headline "
                            "metric, e.g. ce_f1_micro on synthetic, bleu_4 on real data)")
    board.add_argument("--check", action="store_true",
                       help="verify the report in --out instead of building it (exit 1 when incomplete)")
    board.add_argument("--suite", help="with --check: the suite file whose models and datasets must be present "
                                       "(default: those of the records under --runs)")
    board.add_argument("--models", action="append", default=[], metavar="NAMES",
                       help="with --check: models that must have a row (comma-separated, repeatable)")
    board.set_defaults(handler=cmd_leaderboard)

    suite = sub.add_parser("suite", help="run a benchmark suite file (models x datasets x seeds), then report")
    suite.add_argument("file", help="suite YAML, e.g. benchmarks/suites/synthetic.yaml")
    suite.add_argument("--runs", help="runs folder (default runs/suite-<name>)")
    suite.add_argument("--leaderboard", default="leaderboards",
                       help="leaderboard output folder (default leaderboards/)")
    suite.add_argument("--only", action="append", default=[], metavar="PATTERN",
                       help="run only models matching these glob patterns (comma-separated, repeatable)")
    suite.add_argument("--data-dir", help="data folder for real datasets (as rrgbench run --data-dir)")
    suite.add_argument("--chexbert", metavar="PATH", help="CheXbert weights file chexbert.pth (default: the suite's "
                                                          "chexbert key)")
    suite.add_argument("--radgraph", metavar="DIR", help="RadGraph model folder (default: the suite's radgraph key)")
    suite.add_argument("--jobs", type=int, metavar="N",
                       help="runs at once, each in its own process with one torch thread (default: the suite "
                            "file's jobs, else 1)")
    suite.add_argument("--dry-run", action="store_true", help="list the planned runs and exit")
    suite.add_argument("--no-progress", action="store_true", help="no progress bars")
    suite.set_defaults(handler=cmd_suite)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    if args.check:
        return _check(args)
    from rrgbench.report.leaderboard import build_reports

    reports = build_reports(Path(args.runs), Path(args.out), with_plots=not args.no_plots, sort=args.sort)
    for dataset, paths in reports.items():
        echo(f"{dataset}: wrote {len(paths)} files to {paths[0].parent}")
        for path in paths:
            echo(f"  {path}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from rrgbench.extension.plugins import registry
    from rrgbench.report.leaderboard import check_complete, records_by_dataset
    from rrgbench.run.suite import expected_metrics, load_suite

    if args.suite:
        expected = load_suite(Path(args.suite)).expected()
    else:
        found = records_by_dataset(Path(args.runs))
        expected = {d: sorted({r.model for r in records}) for d, records in found.items()}
    models = split_list(args.models)
    if models:
        expected = {d: sorted(set(m) | set(models)) for d, m in expected.items()} or {"synthetic": models}
    if not expected:
        warn(f"error: nothing to check: no suite, no --models and no run records below {args.runs}")
        return 1
    problems = check_complete(Path(args.out), expected, expected_metrics(registry()))
    for problem in problems:
        warn(f"incomplete: {problem}")
    if not problems:
        echo(f"complete: {', '.join(f'{d} ({len(m)} models)' for d, m in expected.items())} in {args.out}")
    return 1 if problems else 0


def cmd_suite(args: argparse.Namespace) -> int:
    from rrgbench.cli.run import local_files
    from rrgbench.extension.plugins import registry
    from rrgbench.outputs import safe_name
    from rrgbench.run.results import LocalFiles
    from rrgbench.run.suite import load_suite, plan, run_suite

    reg = registry()
    suite = load_suite(Path(args.file))
    safe_name(suite.name, f"{args.file}: suite name")  # it names the runs folder runs/suite-<name>
    only = split_list(args.only)
    runs = Path(args.runs or f"runs/suite-{suite.name}")
    planned = plan(suite, reg, only)  # validates every configuration before anything heavy runs
    echo(f"suite '{suite.name}': {len(planned)} runs into {runs}")
    if args.dry_run:
        for item in planned:
            echo(f"  {item.label}  [{item.config.fingerprint()}]")
        return 0
    if args.jobs is not None and args.jobs < 1:  # as the suite file's own jobs
        raise ConfigError(f"--jobs: expected at least 1, got {args.jobs}")
    jobs = args.jobs or suite.jobs
    flags = local_files(args)  # the flags win over the suite's keys
    files = LocalFiles(chexbert=flags.chexbert or suite.chexbert, radgraph=flags.radgraph or suite.radgraph)
    result = run_suite(suite, reg, runs, leaderboard=Path(args.leaderboard), only=only,
                       progress=jobs == 1 and not args.no_progress and sys.stderr.isatty(), log=echo,
                       data_dir=args.data_dir, jobs=jobs, files=files)
    echo(f"suite '{suite.name}': {len(result.finished)} ran, {len(result.skipped)} already finished, "
         f"{len(result.failed)} failed, {result.seconds / 60:.1f} min")
    for label, message in result.failed:
        warn(f"failed: {label}: {message}")
    for dataset, paths in result.reports.items():
        echo(f"{dataset}: report in {paths[0].parent}")
    for problem in result.problems:
        warn(f"incomplete: {problem}")
    return 0 if result.ok else 1
