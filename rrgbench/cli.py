"""The ``rrgbench`` command line: argument parsing and terminal output only.

Every command calls ordinary functions of the package (usable from a notebook). A user error is
printed as one line, ``error: ...``, with a non-zero exit code; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rrgbench import __version__
from rrgbench.errors import RRGBenchError

Handler = Callable[[argparse.Namespace], int]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rrgbench", description="Benchmark suite for radiology report generation.")
    parser.add_argument("--version", action="version", version=f"rrgbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("-p", "--plugin", action="append", default=[], metavar="MODULE",
                        help="load an extra plugin module (repeatable); also RRGBENCH_PLUGINS=mod1,mod2")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train a model on a dataset, evaluate on test, write a run record")
    run.add_argument("--model", required=True, help="model recipe (rrgbench list models)")
    run.add_argument("--dataset", default="synthetic", help="dataset (default: synthetic)")
    run.add_argument("--data-dir", help="folder with annotation.json and images (or $RRGBENCH_DATA/<dataset>)")
    run.add_argument("--epochs", type=int, help="shortcut for --set train.epochs=N")
    run.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
    run.add_argument("--seed", default="0", help="training seed (default 0)")
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

    lst = sub.add_parser("list", help="list registered models, components, datasets, metrics or labelers")
    lst.add_argument("what", choices=("models", "components", "encoders", "memories", "alignments", "decoders",
                                      "datasets", "metrics", "labelers"))
    lst.add_argument("pattern", nargs="?", default="*", help="wildcard filter, e.g. 'mcsam*'")
    lst.add_argument("--options", action="store_true", help="show each entry's options")
    lst.set_defaults(handler=cmd_list)

    plugins = sub.add_parser("plugins", help="list loaded plugins, their versions and hooks")
    plugins.set_defaults(handler=cmd_plugins)

    board = sub.add_parser("leaderboard", help="build leaderboard reports from run records")
    board.add_argument("--runs", default="runs", help="folder searched for results.json")
    board.add_argument("--out", default="leaderboards", help="output folder")
    board.set_defaults(handler=cmd_leaderboard)
    return parser


# -- commands ------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from rrgbench.config import resolve_config
    from rrgbench.options import parse_assignments
    from rrgbench.plugins import registry

    overrides = parse_assignments(args.overrides)
    if args.epochs is not None:
        overrides["train.epochs"] = str(args.epochs)
    if args.allow_missing:
        overrides["data.allow_missing"] = "true"
    reg = registry()
    configs = [resolve_config(reg, args.model, args.dataset, overrides, profile=args.profile, seed=seed)
               for seed in _seeds(args.seed)]  # every config is validated before anything heavy is imported
    from rrgbench.scoring import ScoringContext
    from rrgbench.train import RunRequest, run_training

    for config in configs:
        request = RunRequest(data_dir=args.data_dir, out=Path(args.out), device=args.device,
                             progress=not args.no_progress and sys.stderr.isatty(), log=_echo,
                             scoring=ScoringContext(labeler=args.labeler, skip=frozenset(_split(args.skip))))
        run = run_training(reg, config, request)
        _echo(f"results: {run.path / 'results.json'}")
    return 0


def _split(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise RRGBenchError(f"--seed expects integers separated by commas, got '{text}'") from None


_KIND_OF = {"models": "model", "encoders": "encoder", "memories": "memory", "alignments": "alignment",
            "decoders": "decoder", "datasets": "dataset", "metrics": "metric", "labelers": "labeler"}


def cmd_list(args: argparse.Namespace) -> int:
    from rrgbench.plugins import registry

    reg = registry()
    kinds = ("encoder", "memory", "alignment", "decoder") if args.what == "components" else (_KIND_OF[args.what],)
    for kind in kinds:
        entries = reg.entries(kind, args.pattern)
        if len(kinds) > 1:
            _echo(f"{kind}s:")
        for entry in entries:
            _echo(_describe_entry(reg, entry, args.options))
    return 0


def _describe_entry(reg: Any, entry: Any, with_options: bool) -> str:
    from rrgbench.options import describe

    lines = [f"  {entry.name:<24} {entry.description}"]
    if entry.kind == "model":
        parts = ", ".join(f"{k}={entry.extra.get(k, d)}" for k, d in
                          (("encoder", "timm"), ("memory", "none"), ("alignment", "none"), ("decoder", "transformer")))
        lines.append(f"  {'':<24} components: {parts}")
        if with_options:
            for key, value in (entry.extra.get("overrides") or {}).items():
                lines.append(f"      {key} = {value!r}")
            for kind in ("encoder", "memory", "alignment", "decoder"):
                component = reg.get(kind, entry.extra.get(kind, {"encoder": "timm", "decoder": "transformer"}
                                                          .get(kind, "none")))
                for info in describe(component.options):
                    lines.append(f"      {kind}.{info.name}: {info.type} = {info.default!r}  {info.help}")
    elif with_options:
        for info in describe(entry.options):
            choices = f" (one of {', '.join(map(str, info.choices))})" if info.choices else ""
            lines.append(f"      {info.name}: {info.type} = {info.default!r}  {info.help}{choices}")
    return "\n".join(lines)


def cmd_plugins(args: argparse.Namespace) -> int:
    from rrgbench.plugins import get_host

    host = get_host()
    for info in host.plugin_info():
        hooks = ", ".join(h.removeprefix("rrgbench_register_") for h in info["hooks"])
        version = info["version"] or "-"
        _echo(f"{info['name']:<28} {version:<10} {hooks}")
    for problem in host.load_errors:
        _echo(f"warning: {problem}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from rrgbench.leaderboard import build_leaderboards

    written = build_leaderboards(Path(args.runs), Path(args.out))
    for path in written:
        _echo(f"wrote {path}")
    return 0


# -- plumbing ------------------------------------------------------------------------------------
def _echo(message: str) -> None:
    print(message, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        if args.plugin:
            from rrgbench.plugins import get_host

            get_host(args.plugin)
        return args.handler(args)
    except RRGBenchError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
