"""rrgbench: a benchmark suite for radiology report generation (chest X-ray -> report).

The public extension API is :mod:`rrgbench.extension.hookspecs` (hooks) with ``rrgbench.hookimpl``,
:mod:`rrgbench.extension.components` (component contracts) and :mod:`rrgbench.extension.options` (option schemas).
"""

from __future__ import annotations

from rrgbench.extension.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
