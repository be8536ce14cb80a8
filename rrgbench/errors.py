"""User-facing errors: every failure a user can fix is an `RRGBenchError` with a one-line message.

The CLI prints ``error: <message>`` and exits with ``exit_code``; no traceback unless ``--debug``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RRGBenchError(Exception):
    """An error whose message tells the user what to do. Printed without a traceback."""

    exit_code = 2


class ConfigError(RRGBenchError):
    """Bad option, unknown key, invalid value or a config that does not match a checkpoint."""


class UnknownNameError(RRGBenchError):
    """A name (model, component, dataset, metric, labeler) that no plugin registered."""


class DataError(RRGBenchError):
    """Missing, malformed or invalid data (annotation files, images, predictions)."""

    exit_code = 3


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest known names, or an empty string."""
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5)
    if not close:
        return ""
    return " (did you mean " + " or ".join(f"'{c}'" for c in close) + "?)"


class UnavailableError(RRGBenchError):
    """A component that cannot run here (missing weights, missing Java): the message says why."""
