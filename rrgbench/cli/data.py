"""``rrgbench data prepare|validate``: build R2Gen annotations from the raw releases, and check a data folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rrgbench.cli import echo


def register(sub: Any) -> None:
    data = sub.add_parser("data", help="prepare raw datasets or validate a data folder")
    actions = data.add_subparsers(dest="action", required=True)
    prepare = actions.add_parser("prepare", help="write annotation.json from an official raw release")
    kinds = prepare.add_subparsers(dest="dataset", required=True)
    mimic = kinds.add_parser("mimic-cxr", help="from MIMIC-CXR reports + MIMIC-CXR-JPG images + split CSV")
    mimic.add_argument("--reports", required=True, type=Path, help="folder with files/p10/p10000032/s50414267.txt")
    mimic.add_argument("--images", required=True, type=Path, help="MIMIC-CXR-JPG folder (files/p10/...)")
    mimic.add_argument("--split-csv", required=True, type=Path, help="mimic-cxr-2.0.0-split.csv")
    mimic.add_argument("--section", default="findings", choices=("findings", "impression", "findings+impression"),
                       help="report section(s) to keep (default findings, as R2Gen)")
    mimic.add_argument("--out", required=True, type=Path, help="output folder (annotation.json)")
    mimic.add_argument("--force", action="store_true", help="replace an annotation.json prepare did not write")
    mimic.set_defaults(handler=cmd_prepare_mimic)
    iu = kinds.add_parser("iu-xray", help="from the Open-i XML reports and PNG images")
    iu.add_argument("--reports", required=True, type=Path, help="ecgen-radiology/ folder of XML reports")
    iu.add_argument("--images", required=True, type=Path, help="folder of Open-i PNGs")
    iu.add_argument("--seed", type=int, default=42, help="seed of the 7:1:2 split by study (default 42)")
    iu.add_argument("--out", required=True, type=Path, help="output folder (annotation.json)")
    iu.add_argument("--force", action="store_true", help="replace an annotation.json prepare did not write")
    iu.set_defaults(handler=cmd_prepare_iu)
    check = actions.add_parser("validate", help="check a data folder (every problem, one pass) without training")
    check.add_argument("dataset", choices=("iu-xray", "mimic-cxr"))
    check.add_argument("--data-dir", required=True, help="folder with annotation.json")
    check.add_argument("--allow-missing", action="store_true", help="treat absent images as skippable")
    check.set_defaults(handler=cmd_validate)


def cmd_prepare_mimic(args: argparse.Namespace) -> int:
    from rrgbench.data.prepare import prepare_mimic_cxr

    summary = prepare_mimic_cxr(args.reports, args.images, args.split_csv, args.out, section=args.section,
                                force=args.force)
    echo(summary.format())
    return 0


def cmd_prepare_iu(args: argparse.Namespace) -> int:
    from rrgbench.data.prepare import prepare_iu_xray

    summary = prepare_iu_xray(args.reports, args.images, args.out, seed=args.seed, force=args.force)
    echo(summary.format())
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from rrgbench.config import resolve_config
    from rrgbench.extension.plugins import registry
    from rrgbench.run.loop import load_source

    reg = registry()
    config = resolve_config(reg, "transformer", args.dataset,
                            {"data.allow_missing": "true"} if args.allow_missing else {})
    source = load_source(reg, config, args.data_dir)
    sizes = ", ".join(f"{split} {n}" for split, n in source.sizes().items())
    skipped = source.notes.get("data", {}).get("skipped_missing_images", 0)
    echo(f"{args.dataset}: ok ({sizes}; {skipped} studies skipped for missing images)")
    return 0
