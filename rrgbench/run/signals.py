"""Catching SIGINT/SIGTERM for the length of a block: the trainer's stop request and the suite's forwarding."""

from __future__ import annotations

import signal
import threading
from typing import Any


class SignalCatcher:
    """A context that routes SIGINT/SIGTERM to :meth:`_handle` while it is entered (from the main thread
    only: Python delivers signals there) and restores the previous handlers on exit."""

    def __init__(self) -> None:
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalCatcher:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame: Any) -> None:  # pragma: no cover - subclasses say what a signal does
        raise NotImplementedError
