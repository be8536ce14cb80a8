"""Exact resume: run selection, log repair, signals, seeded augmentation, and kill-then-resume end to end.

The end-to-end test kills a run with SIGKILL after step 5, resumes it, stops the resumed run with
SIGTERM (which writes a checkpoint), corrupts that checkpoint as a crash mid-write would, resumes
again (falling back to ``last.prev``) and requires predictions and metrics identical to an
uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from rrgbench.config import RunConfig, resolve_config
from rrgbench.errors import ConfigError
from rrgbench.extension.plugins import registry
from rrgbench.run.layout import create_run
from rrgbench.run.resume import (
    SeededSamples,
    StopSignals,
    complete_rows,
    config_diff,
    resolve_resume,
    sample_seed,
    truncate_log,
)

DRIVER = '''
import os, signal, sys
from rrgbench.run import loop as train
action, at_step = sys.argv[1], int(sys.argv[2])
original = train.Trainer.train_step
def train_step(self, batch):
    out = original(self, batch)
    if self.state.step == at_step and action != "none":
        os.kill(os.getpid(), signal.SIGKILL if action == "kill" else signal.SIGTERM)
    return out
train.Trainer.train_step = train_step
from rrgbench.cli import main
raise SystemExit(main(sys.argv[3:]))
'''


def _config(seed: int = 0, lr: float = 1e-3) -> RunConfig:
    return resolve_config(registry(), "transformer", "synthetic", {"train.lr": lr, "train.epochs": 2,
                                                                   "data.batch_size": 8}, seed=seed)


def _left_behind(out, config: RunConfig, status: str, **extra):
    """A run folder left behind by a process that has ended (so its lock is free)."""
    run = create_run(out, config)
    run.set_status(status, **extra)
    run.unlock()
    return run


def _resolve(out, config: RunConfig, spec: str = "auto"):
    return resolve_resume(registry(), out, config, spec)


# -- which run ---------------------------------------------------------------------------------------
def test_config_diff_names_the_keys():
    assert config_diff(_config(), _config()) == []
    assert config_diff(_config(lr=1e-3), _config(lr=1e-2)) == ["sections.train.lr: 0.001 -> 0.01"]


def test_resume_picks_the_latest_unfinished_run_of_the_same_config(tmp_path):
    old = _left_behind(tmp_path, _config(), "failed", error="boom")
    newer = _left_behind(tmp_path, _config(), "interrupted")
    _left_behind(tmp_path, _config(seed=1), "failed")
    assert _resolve(tmp_path, _config()).path == newer.path
    newer.set_status("finished")
    assert _resolve(tmp_path, _config()).path == old.path  # unfinished before finished
    old.set_status("finished")
    assert _resolve(tmp_path, _config()).path == newer.path  # finished: reported, not retrained
    assert _resolve(tmp_path, _config(seed=2)) is None  # nothing: a new run starts
    _left_behind(tmp_path, _config(seed=2), "finished", evaluated_from="/x/best.pt")
    assert _resolve(tmp_path, _config(seed=2)) is None  # an evaluation record is no training run


def test_a_run_whose_process_is_alive_is_not_resumed(tmp_path):
    run = _left_behind(tmp_path, _config(), "running")  # status running with this test's pid ...
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # rrgbench"])
    try:
        run.set_status("running", pid=sleeper.pid, host=os.uname().nodename)
        with pytest.raises(ConfigError, match="still running"):
            _resolve(tmp_path, _config(), str(run.path))
    finally:
        sleeper.kill()
        sleeper.wait()
    assert _resolve(tmp_path, _config(), str(run.path)).path == run.path  # dead now: resumable


def test_a_locked_run_is_not_resumed_even_when_its_status_looks_dead(tmp_path):
    run = _left_behind(tmp_path, _config(), "failed")
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; h = open(sys.argv[1], 'a'); "
                               "fcntl.flock(h, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
                               str(run.path / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match="still running"):
            _resolve(tmp_path, _config(), str(run.path))
    finally:
        holder.kill()
        holder.wait()


def test_a_config_change_on_resume_is_refused_naming_the_keys(tmp_path):
    run = _left_behind(tmp_path, _config(), "interrupted")
    with pytest.raises(ConfigError) as info:
        _resolve(tmp_path, _config(lr=0.5), str(run.path))
    message = str(info.value)
    assert "sections.train.lr: 0.001 -> 0.5" in message and "\n" not in message
    with pytest.raises(ConfigError, match="not a run directory"):
        _resolve(tmp_path, _config(), str(tmp_path / "nope"))


def test_cli_resume_with_a_different_setting_is_one_line(tmp_path, tiny, capsys):
    from rrgbench.cli import main
    from rrgbench.config import resolve_config
    from rrgbench.extension.plugins import registry

    config = resolve_config(registry(), "transformer", "synthetic", {k: str(v) for k, v in tiny.items()})
    run = _left_behind(tmp_path, config, "failed", error="x")
    sets = [arg for key, value in tiny.items() for arg in ("--set", f"{key}={value}")]
    code = main(["run", "--model", "transformer", "--out", str(tmp_path), "--resume", str(run.path), *sets,
                 "--set", "train.lr=0.5"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "sections.train.lr: 0.001 -> 0.5" in err


# -- the training log --------------------------------------------------------------------------------
def test_log_is_cut_back_to_the_checkpoint_and_a_partial_line_dropped(tmp_path):
    log = tmp_path / "train_log.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"ste')
    assert len(complete_rows(log)) == 3
    assert truncate_log(log, 2) == 2
    assert log.read_text() == '{"step": 1}\n{"step": 2}\n'
    assert truncate_log(log, 10) == 2
    assert truncate_log(tmp_path / "absent.jsonl", 3) == 0


# -- signals and augmentation ------------------------------------------------------------------------
def test_sigterm_sets_a_flag_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):  # a second signal stops at once
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


class _Noisy:
    tokenizer = None

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.rand(3)


def test_augmentation_depends_on_seed_epoch_and_index_only():
    first = SeededSamples(_Noisy(), seed=3, epoch=1)
    torch.manual_seed(0)
    a = [first[i] for i in (2, 0)]
    state = torch.get_rng_state()
    torch.manual_seed(123)  # any global stream, any order, any skipping
    b = [first[i] for i in (0, 2)]
    assert torch.equal(a[0], b[1]) and torch.equal(a[1], b[0])
    torch.manual_seed(0)
    first[2]
    assert torch.equal(torch.get_rng_state(), state)  # the global stream (dropout's) is not consumed
    assert not torch.equal(SeededSamples(_Noisy(), seed=3, epoch=2)[2], a[0])
    assert sample_seed(3, 1, 2) == sample_seed(3, 1, 2) != sample_seed(3, 1, 3)


# -- kill, resume, interrupt, resume again: identical results ----------------------------------------
def _args(tiny):
    sets = {**tiny, "encoder.backbone": "test_resnet", "train.epochs": 2, "train.max_steps_per_epoch": 3,
            "train.checkpoint_every": 2, "decode.max_len": 12}
    return ["run", "--model", "transformer", "--dataset", "synthetic", "--device", "cpu", "--skip", "meteor",
            "--no-progress", "--efficiency", "off",
            *(arg for key, value in sets.items() for arg in ("--set", f"{key}={value}"))]


def _drive(tmp_path, action, step, tiny, *extra):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    # the same for every run; no thread oversubscription; no efficiency timing (not compared)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(driver), action, str(step), *_args(tiny), *extra],
                          capture_output=True, text=True, timeout=600, env=env)


def _only_run(root):
    [run] = [p.parent for p in root.rglob("config.json")]
    return run


@pytest.mark.slow
def test_killed_and_interrupted_run_resumes_to_identical_results(tmp_path, tiny, capsys):
    reference = _drive(tmp_path, "none", 0, tiny, "--out", str(tmp_path / "a"))
    assert reference.returncode == 0, reference.stderr
    expected = _only_run(tmp_path / "a")

    out = ["--out", str(tmp_path / "b")]
    killed = _drive(tmp_path, "kill", 5, tiny, *out)  # steps 1-3: epoch 1; checkpoints at steps 2, 3 and 4
    assert killed.returncode == -signal.SIGKILL
    run = _only_run(tmp_path / "b")
    assert json.loads((run / "status.json").read_text())["status"] == "running"

    stopped = _drive(tmp_path, "term", 5, tiny, *out, "--resume")  # resumes at step 4, stops after step 5
    assert stopped.returncode == 143, stopped.stderr
    assert "from last.pt (epoch 2, batch 1, step 4)" in stopped.stderr  # the run's log
    last = stopped.stderr.strip().splitlines()[-1]  # the error: one line, no traceback
    assert last.startswith("error: ") and "interrupted by SIGTERM" in last and "Traceback" not in stopped.stderr
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "interrupted" and status["step"] == 5
    assert json.loads((run / "checkpoints" / "last.json").read_text())["step"] == 5

    with open(run / "checkpoints" / "last.pt", "ab") as handle:  # as if the write had been cut short
        handle.write(b"\0" * 16)
    with open(run / "train_log.jsonl", "a") as handle:
        handle.write('{"event": "st')
    resumed = _drive(tmp_path, "none", 0, tiny, *out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "using last.prev.pt" in resumed.stderr and "(epoch 2, batch 1, step 4)" in resumed.stderr
    assert _only_run(tmp_path / "b") == run  # still one run directory

    assert (run / "predictions.jsonl").read_bytes() == (expected / "predictions.jsonl").read_bytes()
    got, want = (json.loads((r / "results.json").read_text()) for r in (run, expected))
    assert got["metrics"] == want["metrics"]
    for record in (got, want):  # wall-clock seconds differ between runs; everything else must not
        for point in record["validation"]["history"]:
            point.pop("seconds")
    assert got["validation"] == want["validation"]
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r["event"] == "validate"] == [0, 1]
    best = json.loads((run / "checkpoints" / "best.json").read_text())
    assert best["best_epoch"] == got["validation"]["best_epoch"]

    from rrgbench.cli import main

    assert main([*_args(tiny), *out, "--resume"]) == 0  # finished: reported, not trained again
    assert f"already finished: {run}" in capsys.readouterr().err
