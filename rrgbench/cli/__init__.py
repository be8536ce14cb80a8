"""The ``rrgbench`` command line: argument parsing and terminal output only.

Each sub-command lives in its own module of this package with ``register(subparsers)``; the handler
calls ordinary functions of rrgbench (everything is usable from a notebook). :func:`main` is the one error
boundary: a user error, and any other failure (disk full, permissions, encodings, memory, an exception in a
plugin's code: :mod:`rrgbench.cli.failure`), is printed as one line, ``error: ...``, with a non-zero exit
code; ``--debug`` shows the traceback. Heavy
modules (torch, metrics) are imported inside handlers so ``rrgbench --help`` and ``list`` stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from rrgbench import __version__
from rrgbench.errors import RRGBenchError

COMMAND_MODULES = ("run", "listing", "report", "data", "scoring", "evaluate")


def echo(message: str = "") -> None:
    """Print one line to standard output (the only place rrgbench prints results)."""
    print(message, flush=True)


def warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def split_list(values: Sequence[str]) -> list[str]:
    """Flatten repeatable, comma-separated option values."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rrgbench", description="Benchmark suite for radiology report generation.")
    parser.add_argument("--version", action="version", version=f"rrgbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("-p", "--plugin", action="append", default=[], metavar="MODULE",
                        help="load an extra plugin module (repeatable); also RRGBENCH_PLUGINS=mod1,mod2")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"rrgbench.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        if args.plugin:
            from rrgbench.extension.plugins import get_host

            get_host(args.plugin)
        return args.handler(args)
    except RRGBenchError as exc:
        if args.debug:
            raise
        warn(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        warn("interrupted")
        return 130
    except Exception as exc:  # the error boundary: one line, never a traceback (--debug: raise)
        if args.debug:
            raise
        from rrgbench.cli.failure import describe

        message, code = describe(exc)
        warn(f"error: {message}")
        return code
