"""``rrgbench score``, ``rrgbench label`` and ``rrgbench compare``: scoring outside of a training run.

* ``score``: an external system's predictions against references (CSV or JSONL, ``id`` + ``report``), written
  as a run-shaped record (:mod:`rrgbench.scoring.external`).
* ``label``: the 14 CheXpert observations of every report of a file, with any registered labeler.
* ``compare``: paired tests between two runs, or mean ± std over seeds with ``--seeds``
  (:mod:`rrgbench.scoring.compare`).

``--chexbert PATH`` and ``--radgraph DIR`` say where the CheXbert weights and the RadGraph model
folder are. An ``--out`` never replaces an input, a run folder or a file the command did not write, unless
``--force`` (:mod:`rrgbench.outputs`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rrgbench.cli import echo, split_list
from rrgbench.cli.run import local_files

_MAPPINGS = ("auto", "r2gen", "chexbert")


def register(sub: Any) -> None:
    _register_score(sub)
    _register_label(sub)
    _register_compare(sub)


def _weights_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chexbert", metavar="PATH", help="CheXbert weights file chexbert.pth")
    parser.add_argument("--radgraph", metavar="DIR", help="RadGraph model folder")


def _scoring_options(parser: argparse.ArgumentParser, labeler_default: str | None) -> None:
    parser.add_argument("--labeler", default=labeler_default,
                        help="labeler for clinical-efficacy metrics (rrgbench list labelers)"
                             + (f"; default {labeler_default}" if labeler_default else "; default: run A's"))
    parser.add_argument("--uncertain", choices=_MAPPINGS, default=None,
                        help="uncertain-label mapping: auto (the labeler's own: r2gen for chexpert-rules, chexbert "
                             "for chexbert), r2gen (only 1 positive) or chexbert (1 and -1); default auto "
                             "(compare: run A's)")
    parser.add_argument("--skip", action="append", default=[], metavar="METRIC",
                        help="do not compute this metric key (e.g. meteor); recorded as unavailable, never as 0")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="resampling seed (default 0)")
    _weights_options(parser)


def _register_score(sub: Any) -> None:
    cmd = sub.add_parser("score", help="score an external system's reports against references")
    cmd.add_argument("--predictions", required=True, help="CSV or JSONL with id and report columns")
    cmd.add_argument("--references", required=True, help="CSV or JSONL with id and report columns")
    cmd.add_argument("--out", required=True, help="output folder (results.json, predictions.jsonl, scores.jsonl)")
    cmd.add_argument("--name", help="model name in the record (default: the predictions file's stem)")
    cmd.add_argument("--dataset", default="external", help="dataset label in the record (default external)")
    cmd.add_argument("--clean", choices=("none", "whitespace", "iu-xray", "mimic-cxr"), default="none",
                     help="on both sides: none scores texts as given, whitespace included (default); whitespace "
                          "folds runs of whitespace; iu-xray / mimic-cxr: R2Gen's cleaning of that dataset")
    cmd.add_argument("--column", default="report", help="text column of both files (default report)")
    cmd.add_argument("--allow-partial", action="store_true",
                     help="score the common ids when some are missing or extra (recorded in the protocol)")
    cmd.add_argument("--force", action="store_true",
                     help="write into an existing folder that is not an earlier score output (its files are kept)")
    _scoring_options(cmd, "chexpert-rules")
    cmd.set_defaults(handler=cmd_score)


def _register_label(sub: Any) -> None:
    cmd = sub.add_parser("label", help="label reports with the 14 CheXpert observations")
    cmd.add_argument("input", help="CSV or JSONL with id and report columns")
    cmd.add_argument("--out", required=True, help="output CSV: id + 14 observation columns (blank: not mentioned)")
    cmd.add_argument("--labeler", default="chexpert-rules", help="labeler (default chexpert-rules)")
    cmd.add_argument("--column", default="report", help="text column (default report)")
    cmd.add_argument("--set", dest="options", action="append", default=[], metavar="KEY=VALUE",
                     help="labeler option, e.g. --set checkpoint=/models/chexbert.pth (rrgbench list labelers "
                          "--options)")
    cmd.add_argument("--chexbert", metavar="PATH", help="CheXbert weights file chexbert.pth (for --labeler chexbert)")
    cmd.add_argument("--force", action="store_true", help="replace an existing --out file that is not a label CSV")
    cmd.set_defaults(handler=cmd_label)


def _register_compare(sub: Any) -> None:
    cmd = sub.add_parser("compare", help="paired significance tests between two runs (or --seeds summaries)")
    cmd.add_argument("run_a", help="run folder A (with predictions.jsonl); with --seeds a folder of runs")
    cmd.add_argument("run_b", help="run folder B")
    cmd.add_argument("--metrics", action="append", default=[], metavar="KEY",
                     help="metric keys to compare (repeatable or comma-separated; default all)")
    cmd.add_argument("--test", choices=("bootstrap", "randomization"), default="bootstrap",
                     help="paired bootstrap (default) or approximate randomization for the p-value")
    cmd.add_argument("--seeds", action="store_true",
                     help="instead: mean ± std (n) over the runs below each folder, from their results.json")
    cmd.add_argument("--out", metavar="FILE", help="also write the table as JSON")
    cmd.add_argument("--force", action="store_true", help="replace an existing --out file that is not a comparison")
    _scoring_options(cmd, None)
    cmd.set_defaults(handler=cmd_compare)


def _context(args: argparse.Namespace, labeler: str, uncertain: str) -> Any:
    from rrgbench.extension.plugins import registry
    from rrgbench.scoring.engine import ScoringContext

    files = local_files(args)
    return ScoringContext(labeler=labeler, uncertain=uncertain, n_resamples=args.resamples, seed=args.seed,
                          registry=registry(), skip=frozenset(split_list(args.skip)), chexbert=files.chexbert,
                          radgraph=files.radgraph).check()  # one-line errors before any scoring


def _metric_line(key: str, entry: Any) -> str:
    if entry.value is None:
        return f"  {key:<22} n/a  ({entry.unavailable or 'not computed'})"
    ci = entry.ci95
    interval = f"  [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""
    return f"  {key:<22} {entry.value:.4f}{interval}"


def cmd_score(args: argparse.Namespace) -> int:
    from rrgbench.scoring.engine import preflight
    from rrgbench.scoring.external import ExternalRequest, score_external

    context = _context(args, args.labeler, args.uncertain or "auto")
    preflight(context, given_files_only=True)  # a --chexbert / --radgraph file that cannot work fails at once
    request = ExternalRequest(predictions=Path(args.predictions), references=Path(args.references),
                              out=Path(args.out), name=args.name, dataset=args.dataset, clean=args.clean,
                              allow_partial=args.allow_partial, text_column=args.column, force=args.force)
    record = score_external(request, context)
    matching = (record.protocol.external or {})["matching"]
    echo(f"{record.model} on {record.dataset}: {matching['studies']} studies"
         + (f" ({matching['missing_in_predictions']} missing, {matching['extra_in_predictions']} extra left out)"
            if matching["partial"] else ""))
    for key, entry in record.metrics.items():
        echo(_metric_line(key, entry))
    echo(f"results: {Path(args.out) / 'results.json'}")
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from rrgbench.extension.options import parse_assignments
    from rrgbench.metrics.labelers.registry import build_labeler
    from rrgbench.scoring.external import label_file

    options: dict[str, Any] = dict(parse_assignments(args.options))
    if args.chexbert:
        options["checkpoint"] = str(Path(args.chexbert).expanduser())
    labeler = build_labeler(None, args.labeler, options)
    count = label_file(labeler, args.input, args.out, args.column, force=args.force)
    echo(f"labelled {count} reports with {labeler.name}: {args.out}")
    return 0


def _recorded_settings(run: Path) -> dict[str, Any]:
    """Labeler and mapping run A was scored with (from its results.json), if recorded."""
    from rrgbench.errors import RRGBenchError
    from rrgbench.record import RESULTS_FILE, read_record

    try:
        clinical = read_record(run / RESULTS_FILE).protocol.metric_groups.get("clinical") or {}
    except RRGBenchError:
        return {}
    return {"labeler": clinical.get("labeler"), "uncertain": clinical.get("uncertain_mapping")}


def cmd_compare(args: argparse.Namespace) -> int:
    from rrgbench.io import write_json
    from rrgbench.scoring.compare import (
        aggregate_seeds,
        compare_runs,
        format_comparison,
        format_seeds,
        load_records,
        rows_as_json,
        single_run,
    )

    out = _compare_out(args)
    if args.seeds:
        summaries = {args.run_a: aggregate_seeds(load_records(args.run_a)),
                     args.run_b: aggregate_seeds(load_records(args.run_b))}
        echo(format_seeds(summaries))
        if out:
            write_json(out, {label: {k: list(v) for k, v in s.items()} for label, s in summaries.items()})
        return 0
    run_a, run_b = single_run(args.run_a), single_run(args.run_b)
    recorded = _recorded_settings(run_a.path)
    context = _context(args, args.labeler or recorded.get("labeler") or "chexpert-rules",
                       args.uncertain or recorded.get("uncertain") or "auto")
    rows = compare_runs(run_a, run_b, context, metrics=split_list(args.metrics) or None, test=args.test,
                        n_resamples=args.resamples, seed=args.seed)
    echo(f"A: {run_a.path}\nB: {run_b.path}\n{len(run_a.ids)} studies, {args.test} test, {args.resamples} "
         f"resamples, labeler {context.labeler} ({context.uncertain_mapping()}); delta = A - B")
    echo(format_comparison(rows))
    if out:
        write_json(out, {"a": str(run_a.path), "b": str(run_b.path), "test": args.test,
                         "resamples": args.resamples, "seed": args.seed, "labeler": context.labeler,
                         "uncertain": context.uncertain_mapping(), "rows": rows_as_json(rows)})
    return 0


def _compare_out(args: argparse.Namespace) -> Path | None:
    """``--out`` checked before any work: not a folder, not inside run A or B, not a foreign file unless --force."""
    from rrgbench.outputs import output_file

    if not args.out:
        return None
    return output_file(Path(args.out), [Path(args.run_a), Path(args.run_b)], force=args.force,
                       ours=_is_comparison, what="comparison JSON")


def _is_comparison(path: Path) -> bool:
    """An earlier ``compare --out``: the paired table (a, b, test, rows) or the --seeds summaries."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or not data:
        return False
    if {"a", "b", "test", "rows"} <= set(data):
        return True
    return all(isinstance(v, dict) and all(isinstance(x, list) for x in v.values()) for v in data.values())
