"""``rrgbench evaluate`` (score a saved checkpoint on a test split) and ``rrgbench predict`` (one study).

Both rebuild the model from the checkpoint alone: its recorded config and vocabulary, then its
weights, loaded weights-only after the checksum is verified. A checkpoint that is not plain tensors
(a pickle that would run code) is refused with a one-line error before anything else happens.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rrgbench.cli import echo
from rrgbench.cli.run import add_scoring_flags, local_files, overrides_from

_SET_HELP = ("evaluation-time override: dataset.*, decode.*, scoring.* or data.eval_batch_size/num_workers/"
             "allow_missing")


def register(sub: Any) -> None:
    ev = sub.add_parser("evaluate", help="decode and score a test split with a saved checkpoint")
    ev.add_argument("--checkpoint", required=True, help="NAME.pt of a run (NAME.json must sit next to it)")
    ev.add_argument("--dataset", help="dataset to evaluate on (default: the one the checkpoint was trained on)")
    ev.add_argument("--data-dir", help="folder with annotation.json and images (or $RRGBENCH_DATA/<dataset>)")
    ev.add_argument("--out", default="runs", help="runs folder for the record (default runs/)")
    ev.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
    ev.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=_SET_HELP)
    add_scoring_flags(ev)
    ev.add_argument("--no-progress", action="store_true", help="no progress bars")
    ev.set_defaults(handler=cmd_evaluate)

    pr = sub.add_parser("predict", help="write the report of one study (its images, views in order)")
    pr.add_argument("--checkpoint", required=True, help="NAME.pt of a run (NAME.json must sit next to it)")
    pr.add_argument("images", nargs="+", metavar="IMAGE", help="the study's images, in the checkpoint's view order")
    pr.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
    pr.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="decoding override, e.g. decode.beam_size=5")
    pr.set_defaults(handler=cmd_predict)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from rrgbench.extension.plugins import registry
    from rrgbench.outputs import runs_root
    from rrgbench.run.evaluate import evaluate_checkpoint
    from rrgbench.run.request import RunRequest

    runs_root(Path(args.out))
    overrides = overrides_from(args)
    request = RunRequest(data_dir=args.data_dir, out=Path(args.out), device=args.device,
                         progress=not args.no_progress and sys.stderr.isatty(), log=echo, files=local_files(args))
    run = evaluate_checkpoint(registry(), args.checkpoint, request, dataset=args.dataset, overrides=overrides)
    echo(f"results: {run.path / 'results.json'}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from rrgbench.extension.options import parse_assignments
    from rrgbench.extension.plugins import registry
    from rrgbench.run.evaluate import predict_report

    report = predict_report(registry(), args.checkpoint, args.images, device=args.device,
                            overrides=parse_assignments(args.overrides))
    echo(report)
    return 0
