"""Checkpoints: round trip, checksum verification, and refusal of pickles that carry code."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from rrgbench.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from rrgbench.errors import DataError


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
