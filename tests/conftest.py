"""Test-wide setup: offline, no third-party plugin autoload, a private data cache, tiny run settings."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["RRGBENCH_DISABLE_PLUGIN_AUTOLOAD"] = "1"
os.environ.setdefault("RRGBENCH_CACHE", tempfile.mkdtemp(prefix="rrgbench-test-cache-"))

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

TINY = {
    "dataset.n_train": 48,
    "dataset.n_val": 12,
    "dataset.n_test": 12,
    "dataset.image_size": 64,
    "data.image_size": 64,
    "data.train_resize": 72,
    "data.batch_size": 8,
    "data.eval_batch_size": 12,
    "model.d_model": 32,
    "encoder.backbone": "resnet18",
    "decoder.layers": 1,
    "decoder.encoder_layers": 1,
    "decoder.heads": 2,
    "decoder.d_ff": 64,
    "train.epochs": 1,
    "train.max_steps_per_epoch": 2,
    "train.validate_from": 1,
    "decode.beam_size": 2,
    "data.max_len": 40,
}
"""Overrides that make any transformer-decoder recipe train and decode in seconds on synthetic data."""


@pytest.fixture
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip(f"shared real data not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture
def tiny() -> dict[str, object]:
    return dict(TINY)


@pytest.fixture
def no_metric_weights(monkeypatch, tmp_path):
    """No RadGraph model and no CheXbert weights anywhere (so the optional metrics are unavailable)."""
    empty = tmp_path / "no-weights"
    empty.mkdir()
    monkeypatch.setenv("RRGBENCH_RADGRAPH", str(empty))
    monkeypatch.setenv("RRGBENCH_CHEXBERT", str(empty / "chexbert.pth"))


@pytest.fixture
def fresh_plugins():
    """A fresh plugin host for the test, restored afterwards."""
    from rrgbench.extension import plugins

    plugins.reset()
    yield plugins.get_host()
    plugins.reset()


@pytest.fixture(scope="session")
def benchmark_module():
    """Loads a module of ``benchmarks/`` by name: the reference implementations that tests compare with."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
