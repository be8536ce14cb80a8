"""Checkpoints: round trip, checksum verification, and refusal of pickles that carry code."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest
import torch

from rrgbench.errors import DataError
from rrgbench.run.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state


def test_round_trip_with_rng(tmp_path):
    model = torch.nn.Linear(4, 3)
    state = rng_state()
    expected = torch.rand(3)
    save_checkpoint(tmp_path / "c.pt", {"model": model.state_dict(), "rng": state}, {"epoch": 2, "vocab": ["a"]})
    payload, meta = load_checkpoint(tmp_path / "c.pt")
    assert meta["epoch"] == 2 and meta["vocab"] == ["a"]
    clone = torch.nn.Linear(4, 3)
    clone.load_state_dict(payload["model"])
    assert torch.equal(clone.weight, model.weight)
    set_rng_state(payload["rng"])
    assert torch.equal(torch.rand(3), expected)


def test_modified_file_is_detected(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"w": torch.ones(3)}, {})
    with open(tmp_path / "c.pt", "ab") as handle:
        handle.write(b"garbage")
    with pytest.raises(DataError, match="checksum"):
        load_checkpoint(tmp_path / "c.pt")


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED_MARKER",))


def test_pickle_with_code_is_refused_and_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"model": Exploit()}, handle)
    save_checkpoint(tmp_path / "ok.pt", {"w": torch.ones(1)}, {})
    (tmp_path / "evil.json").write_text((tmp_path / "ok.json").read_text())
    with pytest.raises(DataError, match="refusing to load"):
        load_checkpoint(path, verify=False)
    assert not (tmp_path / "PWNED_MARKER").exists()


# -- keeping the previous checkpoint; half-written files -----------------------------------------
def test_previous_pair_is_used_when_last_is_half_written(tmp_path):
    from rrgbench.io import atomic_write
    from rrgbench.run.checkpoint import load_latest, previous_path

    last = tmp_path / "last.pt"
    save_checkpoint(last, {"w": torch.full((2,), 1.0)}, {"step": 1}, keep_previous=True)
    save_checkpoint(last, {"w": torch.full((2,), 2.0)}, {"step": 2}, keep_previous=True)
    assert load_checkpoint(previous_path(last))[1]["step"] == 1
    # a crash between writing the payload and its metadata: new .pt, old .json
    atomic_write(last, lambda handle: torch.save({"w": torch.full((2,), 3.0)}, handle), binary=True)
    payload, meta, used, problems = load_latest(last)
    assert used == previous_path(last) and meta["step"] == 1 and torch.equal(payload["w"], torch.ones(2))
    assert len(problems) == 1 and "checksum" in problems[0]
    # ``last`` was repaired from ``last.prev``: the next rotation keeps a complete pair
    assert load_checkpoint(last)[1]["step"] == 1
    save_checkpoint(last, {"w": torch.full((2,), 4.0)}, {"step": 4}, keep_previous=True)
    assert load_checkpoint(previous_path(last))[1]["step"] == 1


def test_load_latest_without_checkpoints_and_with_only_broken_ones(tmp_path):
    from rrgbench.run.checkpoint import load_latest

    assert load_latest(tmp_path / "last.pt") is None
    save_checkpoint(tmp_path / "last.pt", {"w": torch.ones(1)}, {})
    (tmp_path / "last.pt").write_bytes(b"cut short")
    with pytest.raises(DataError, match="no usable checkpoint"):
        load_latest(tmp_path / "last.pt")


def test_copy_checkpoint_copies_payload_and_updates_metadata(tmp_path):
    import os

    from rrgbench.run.checkpoint import copy_checkpoint

    save_checkpoint(tmp_path / "last.pt", {"w": torch.arange(3)}, {"name": "last", "step": 7})
    copy_checkpoint(tmp_path / "last.pt", tmp_path / "best.pt", name="best")
    payload, meta = load_checkpoint(tmp_path / "best.pt")
    assert meta["name"] == "best" and meta["step"] == 7 and torch.equal(payload["w"], torch.arange(3))
    assert os.stat(tmp_path / "best.pt").st_ino != os.stat(tmp_path / "last.pt").st_ino  # a copy, not a link
    (tmp_path / "last.pt").write_bytes(b"\x00" + (tmp_path / "last.pt").read_bytes()[1:])  # damage last in place
    assert torch.equal(load_checkpoint(tmp_path / "best.pt")[0]["w"], torch.arange(3))
    save_checkpoint(tmp_path / "last.pt", {"w": torch.zeros(3)}, {"name": "last", "step": 8}, keep_previous=True)
    assert torch.equal(load_checkpoint(tmp_path / "best.pt")[0]["w"], torch.arange(3))  # unaffected


# -- the command line refuses a malicious checkpoint and runs nothing ------------------------------
def _evil_checkpoint(folder):
    from rrgbench.run.checkpoint import sha256

    path = folder / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"model": Exploit()}, handle)
    # metadata with the *right* checksum: only the weights-only unpickler stands in the way
    (folder / "evil.json").write_text(json.dumps({"sha256": sha256(path), "config": {}, "vocab": {}, "n_views": 1}))
    return path


def test_cli_evaluate_refuses_a_pickle_that_runs_code(tmp_path):
    evil = _evil_checkpoint(tmp_path)
    cache = tmp_path / "cache"
    env = {**os.environ, "RRGBENCH_CACHE": str(cache)}
    result = subprocess.run([sys.executable, "-m", "rrgbench", "evaluate", "--checkpoint", str(evil), "--dataset",
                             "synthetic", "--out", str(tmp_path / "out"), "--device", "cpu"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "refusing to load" in result.stderr and "weights-only" in result.stderr
    assert not (tmp_path / "PWNED_MARKER").exists()
    assert not (tmp_path / "out").exists() and not cache.exists()  # nothing else ran


def test_cli_predict_refuses_a_pickle_that_runs_code(tmp_path, monkeypatch, capsys):
    from rrgbench.cli import main

    monkeypatch.chdir(tmp_path)
    evil = _evil_checkpoint(tmp_path)
    image = tmp_path / "x.png"
    image.write_bytes(b"not read")
    assert main(["predict", "--checkpoint", str(evil), str(image), "--device", "cpu"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to load") and err.count("\n") == 1
    assert not (tmp_path / "PWNED_MARKER").exists()
