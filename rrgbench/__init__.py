"""rrgbench: a benchmark suite for radiology report generation (chest X-ray -> report).

The public extension API is :mod:`rrgbench.extension.hookspecs` (hooks) with ``rrgbench.hookimpl``,
:mod:`rrgbench.extension.components` (component contracts) and :mod:`rrgbench.extension.options` (option schemas).

For notebooks: ``rrgbench.score(hyps=..., refs=...)`` (:mod:`rrgbench.scoring.api`: the numbers of
``rrgbench score``) and ``rrgbench.load_runs(DIR)`` (:mod:`rrgbench.report.runs_table`: run records as a
DataFrame). Both are imported on first use, so ``import rrgbench`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from rrgbench.extension.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl", "load_runs", "score"]

_LAZY = {"score": "rrgbench.scoring.api", "load_runs": "rrgbench.report.runs_table"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rrgbench' has no attribute '{name}'")
