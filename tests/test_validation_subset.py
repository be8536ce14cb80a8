"""``train.validate_studies`` and ``train.validate_method``: a fixed validation subset, greedy validation."""

from __future__ import annotations

import pytest

from rrgbench.config import resolve_config
from rrgbench.extension.plugins import registry
from rrgbench.run.selection import validation_method, validation_subset


def config(tiny, **extra):
    return resolve_config(registry(), "transformer", "synthetic", {**tiny, **extra}, seed=3)


def test_subset_is_fixed_by_the_seed_sorted_and_sized(tiny):
    chosen = validation_subset(100, config(tiny, **{"train.validate_studies": 10}))
    assert chosen == sorted(set(chosen)) and len(chosen) == 10 and all(0 <= i < 100 for i in chosen)
    assert validation_subset(100, config(tiny, **{"train.validate_studies": 10})) == chosen
    other_seed = resolve_config(registry(), "transformer", "synthetic", {**tiny, "train.validate_studies": 10}, seed=4)
    assert validation_subset(100, other_seed) != chosen
    assert validation_subset(100, config(tiny)) is None  # default: every study
    assert validation_subset(8, config(tiny, **{"train.validate_studies": 10})) is None


def test_validation_method(tiny):
    assert validation_method(config(tiny)) == "beam"
    assert validation_method(config(tiny, **{"train.validate_method": "greedy"})) == "greedy"
    assert validation_method(config(tiny, **{"decode.method": "greedy"})) == "greedy"


@pytest.mark.parametrize("studies, method", [(0, "decode"), (5, "greedy")])
def test_training_validates_the_subset_with_the_method(tmp_path, tiny, monkeypatch, studies, method):
    from rrgbench.run import loop

    calls = []
    original = loop.decode_loader

    def spy(model, loader, config, tokenizer, device, progress=False, method=None, on_batch=None, **extra):
        rows = original(model, loader, config, tokenizer, device, progress, method=method, on_batch=on_batch, **extra)
        calls.append((len(rows), method))
        return rows

    monkeypatch.setattr(loop, "decode_loader", spy)
    cfg = config(tiny, **{"train.validate_studies": studies, "train.validate_method": method, "scoring.skip": "meteor",
                          "scoring.resamples": 10, "efficiency.mode": "off"})
    loop.run_training(registry(), cfg, loop.RunRequest(out=tmp_path, device="cpu", progress=False, log=lambda _: None))
    validation, test = calls[0], calls[-1]
    assert validation == ((5, "greedy") if studies else (12, "beam"))
    assert test == (12, None)  # the test split: every study, decode.method
