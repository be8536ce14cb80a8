"""The constant baseline of a run's test split: the most frequent training report predicted for every study.

    python benchmarks/constant_baseline.py                      # the README Quickstart's run (mcsam, synthetic)
    python benchmarks/constant_baseline.py --model r2gen --json benchmarks/results/constant_baseline.json

It resolves the run's configuration exactly as ``rrgbench run --model M --dataset D`` does, loads the same
splits, cleans reports with the dataset's R2Gen cleaning (as a run cleans its references), and scores the
constant prediction with :func:`rrgbench.score` (chexpert-rules, 1,000-resample study bootstrap, seed 0, as a
run does). A model that scores near this has not learned to read the image.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

KEYS = ("ce_f1_micro", "ce_f1_macro", "bleu_4", "rouge_l", "cider")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mcsam")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    import rrgbench
    from rrgbench.config import resolve_config
    from rrgbench.data.cleaning import r2gen_text
    from rrgbench.extension.plugins import registry
    from rrgbench.run.setup import load_source

    reg = registry()
    config = resolve_config(reg, args.model, args.dataset, {}, seed=0)
    source = load_source(reg, config, None)
    clean = source.cleaning_style
    counts = Counter(r2gen_text(study.report, clean) for study in source.splits["train"])
    constant, times = counts.most_common(1)[0]
    test = source.splits["test"]
    result = rrgbench.score(hyps=[constant] * len(test), refs=[r2gen_text(s.report, clean) for s in test],
                            ids=[s.id for s in test], skip=("meteor",))
    figures = {key: {"value": result.metrics[key].value, "ci95": result.metrics[key].ci95} for key in KEYS}
    out = {"model_config": args.model, "dataset": args.dataset, "config_fingerprint": config.fingerprint(),
           "train_studies": len(source.splits["train"]), "test_studies": len(test),
           "constant_report": constant, "constant_report_train_share": times / len(source.splits["train"]),
           "metrics": figures}
    for key, figure in figures.items():
        low, high = figure["ci95"] or (None, None)
        print(f"{key}: {figure['value']:.4f}" + (f" [{low:.4f}, {high:.4f}]" if low is not None else ""))
    print(f"constant report ({times} of {len(source.splits['train'])} training studies): {constant}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
