"""``rrgbench leaderboard``: leaderboard reports from run records."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rrgbench.cli import echo


def register(sub: Any) -> None:
    board = sub.add_parser("leaderboard", help="build leaderboard reports from run records")
    board.add_argument("--runs", default="runs", help="folder searched for results.json")
    board.add_argument("--out", default="leaderboards", help="output folder")
    board.set_defaults(handler=cmd_leaderboard)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from rrgbench.leaderboard import build_leaderboards

    for path in build_leaderboards(Path(args.runs), Path(args.out)):
        echo(f"wrote {path}")
    return 0
