"""Shared setup of the pytest-benchmark suites: offline, built-in plugins only, a private data cache.

Run them with ``tox -e bench`` (or ``python -m pytest benchmarks --benchmark-only``). Each module
also holds plain tests (output equality of the fast and reference decoders, input sanity) that run
without ``--benchmark-only``. At the end of a benchmark session the derived figures (speed-up of the
cached decoder over recomputation, retrieval time over the score product alone, milliseconds retrieval
adds to the no-memory path) are printed and written into the saved JSON under ``rrgbench_ratios``, next
to the machine's load average at the start and end of the session (``rrgbench_load_average``: 1, 5 and
15-minute averages; on a shared machine they say how busy it was).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["RRGBENCH_DISABLE_PLUGIN_AUTOLOAD"] = "1"
os.environ.setdefault("RRGBENCH_CACHE", tempfile.mkdtemp(prefix="rrgbench-bench-cache-"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchutil, reference_decoding

from benchutil import computed_ratios

_LOAD_AVERAGE: dict[str, list[float]] = {}


def pytest_sessionstart(session: Any) -> None:
    _LOAD_AVERAGE["start"] = list(os.getloadavg())


@pytest.fixture(scope="session")
def registry():
    from rrgbench.extension.plugins import registry as get_registry

    return get_registry()


@pytest.fixture(scope="session")
def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def pytest_benchmark_update_json(config: Any, benchmarks: Any, output_json: dict[str, Any]) -> None:
    output_json["rrgbench_ratios"] = computed_ratios()
    output_json["rrgbench_load_average"] = {**_LOAD_AVERAGE, "end": list(os.getloadavg())}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    ratios = computed_ratios()
    if ratios:
        terminalreporter.section("rrgbench derived figures (from benchmark medians)")
        for name, value in ratios.items():
            terminalreporter.write_line(f"{name}: {value:.2f}")
