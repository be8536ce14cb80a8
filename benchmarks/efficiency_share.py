"""How much of a default run the efficiency measurement takes: an upper bound, measured in one process.

    OMP_NUM_THREADS=1 python benchmarks/efficiency_share.py [--model mcsam] [--steps 30]

Builds the default run's configuration (``rrgbench run --model M``: synthetic data, ``small`` profile),
times ``--steps`` real training steps, then the efficiency measurement of that model in each mode
(``auto`` chooses ``fast`` under 2,000 training steps, which includes the default run's 1,017, else ``full``).
Generation is timed twice: as the model decodes (early stop at end-of-report) and with end-of-report
disabled, so every generated report runs to ``decode.max_len`` (the longest a trained model can make it).
The share divides the longest efficiency time by the default run's *training steps alone* (steps per run x
median step), a lower bound of its wall time (data, validation, test decode and scoring left out), so the
printed share is an upper bound.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mcsam")
    parser.add_argument("--steps", type=int, default=30, help="training steps to time")
    args = parser.parse_args()

    from rrgbench.config import EfficiencyOptions, resolve_config
    from rrgbench.extension.plugins import registry
    from rrgbench.run import efficiency as eff
    from rrgbench.run.loop import Trainer
    from rrgbench.run.request import RunRequest

    reg = registry()
    default = resolve_config(reg, args.model, "synthetic")
    n_train = default.dataset_options.n_train
    run_steps = default.train.epochs * math.ceil(n_train / default.data.batch_size)
    config = resolve_config(reg, args.model, "synthetic", {"train.epochs": 1, "train.max_steps_per_epoch": args.steps,
                                                           "efficiency.mode": "off"})
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(reg, config, RunRequest(out=Path(out), device="cpu", progress=False))
        trainer.start()
        trainer.train_epoch()
        trainer.finish()
        steps = sorted(trainer.state.step_seconds[1:])
        inputs = eff.EfficiencyInputs(
            model=trainer.model, config=config, device=trainer.device, test_loader=trainer.loader("test", train=False),
            bos_id=trainer.tokenizer.bos_id, eos_id=trainer.tokenizer.eos_id,
            train_step_seconds=list(trainer.state.step_seconds), train_samples=list(trainer.state.step_samples),
            registry=reg)
        seconds: dict[str, float] = {}
        for early_stop in (True, False):
            inputs.eos_id = trainer.tokenizer.eos_id if early_stop else -1
            for mode in ("off", "fast", "full"):
                inputs.settings = eff.EfficiencySettings.for_run(EfficiencyOptions(mode=mode), run_steps)
                start = time.perf_counter()
                eff.measure_efficiency(inputs)
                seconds[f"{mode}{'' if early_stop else ' (to max_len)'}"] = time.perf_counter() - start
    median = steps[len(steps) // 2]
    training = run_steps * median
    print(json.dumps({
        "model": args.model, "threads": torch.get_num_threads(), "default_run_steps": run_steps,
        "train_step_median_s": round(median, 4), "default_run_training_s": round(training, 1),
        "efficiency_s": {k: round(v, 2) for k, v in seconds.items()},
        "share_of_training_upper_bound": round(max(seconds.values()) / training, 4),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None,
    }, indent=1))


if __name__ == "__main__":
    main()
