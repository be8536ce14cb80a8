"""Watching a run: plain progress lines when standard error is not a terminal, phase lines, verbosity flags."""

from __future__ import annotations

import logging

import pytest

from rrgbench import logs
from rrgbench.cli import main


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(logs.time, "perf_counter", fake)
    return fake


def test_progress_writes_a_line_every_tenth_and_at_the_end(clock):
    lines: list[str] = []
    progress = logs.Progress("epoch 1/3", 20, unit="steps", bar=False, say=lines.append)
    for step in range(20):
        clock.now += 0.5
        progress.update(fields={"loss": 3.0 - step / 10, "samples/s": 64.0})
    assert len(lines) == 10  # every 2 steps (a tenth of 20), the last one included
    assert lines[0] == ("epoch 1/3: 2/20 (10%) loss 2.9, samples/s 64 | 2 steps/s, elapsed 1.0 s, eta 9.0 s")
    assert lines[-1].startswith("epoch 1/3: 20/20 (100%) loss 1.1") and "eta" not in lines[-1]


def test_progress_writes_at_least_one_line_a_minute(clock):
    lines: list[str] = []
    progress = logs.Progress("epoch 1/1", 10_000, unit="steps", bar=False, interval=60.0, say=lines.append)
    for _ in range(150):  # 150 steps of 1 s: far fewer than a tenth of the epoch, but 2.5 minutes
        clock.now += 1.0
        progress.update()
    assert [line.split(" (")[0] for line in lines] == ["epoch 1/1: 60/10000", "epoch 1/1: 120/10000"]
    assert "eta 2 h 45 min" in lines[0]


def test_phase_says_when_it_starts_and_how_long_it_took(clock):
    lines: list[str] = []
    with logs.phase("scoring: meteor", lines.append):
        clock.now += 75.0
    assert lines == ["scoring: meteor ...", "scoring: meteor: done in 1 min 15 s"]
    with pytest.raises(ValueError), logs.phase("efficiency", lines.append):
        clock.now += 2.0
        raise ValueError("boom")
    assert lines[-1] == "efficiency: failed after 2.0 s"


def test_in_chunks_keeps_order_and_reports_progress():
    lines: list[str] = []
    calls: list[int] = []

    def label(part):
        calls.append(len(part))
        return [text.upper() for text in part]

    items = [f"r{i}" for i in range(10)]
    assert logs.in_chunks(label, items, "labelling", chunk=4, say=lines.append) == [t.upper() for t in items]
    assert calls == [4, 4, 2] and lines[-1].startswith("labelling: 10/10 (100%)")
    assert logs.in_chunks(label, items[:3], "labelling", chunk=4, say=lines.append) == ["R0", "R1", "R2"]


def test_configure_sets_the_level_and_writes_to_the_current_stderr(capsys):
    try:
        logs.configure(-1)
        logs.info("hidden")
        logs.LOGGER.warning("shown")
        logs.configure(0)
        logs.info("progress line")
        logs.LOGGER.debug("not at info")
        logs.configure(1)
        logs.LOGGER.debug("debug line")
        err = capsys.readouterr().err
        assert "hidden" not in err and "warning: shown" in err
        assert "progress line" in err and "not at info" not in err and "debug line" in err
        assert len([h for h in logs.LOGGER.handlers if isinstance(h, logs._StderrHandler)]) == 1
    finally:
        logs.configure(0)


@pytest.mark.parametrize("argv", [["-q", "list", "datasets"], ["list", "datasets", "--quiet"]])
def test_quiet_and_verbose_are_accepted_before_or_after_the_command(argv, capsys):
    try:
        assert main(argv) == 0
        assert logs.LOGGER.level == logging.WARNING
        assert main(["list", "datasets", "-v"]) == 0 and logs.LOGGER.level == logging.DEBUG
        assert "synthetic" in capsys.readouterr().out
    finally:
        logs.configure(0)
