"""What a person watching a run sees: Python logging for rrgbench, phase lines, and progress that reaches a log file.

Everything rrgbench says while it works goes through the ``rrgbench`` logger (results the user asked for,
such as a printed report, are written by the command line to standard output). The library never
installs a handler by itself: the command line calls :func:`configure` (``--quiet``: warnings only,
``--verbose``: debug), a notebook may call it too or set up :mod:`logging` as it likes.

:func:`phase` announces a stage of work ("decoding test", "scoring: meteor", "efficiency") and its elapsed
time. :class:`Progress` follows a loop over a known number of items: on a terminal a transient tqdm bar,
otherwise (a batch job writing its standard error to a file) one plain line every tenth of the items or
``interval`` seconds, whichever comes first, and at the end, with the rate, extra fields (loss, samples/s)
and the estimated time left.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

LOGGER = logging.getLogger("rrgbench")
LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}
Say = Callable[[str], None]
T = TypeVar("T")

_bars = True  # progress bars allowed (``--no-progress`` turns them into plain lines)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted (a redirect or a test's capture)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class _Formatter(logging.Formatter):
    """``HH:MM:SS message``; warnings and errors say so."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
        return f"{self.formatTime(record, '%H:%M:%S')} {prefix}{record.getMessage()}"


def configure(verbosity: int = 0, bars: bool = True) -> None:
    """Send rrgbench's log to standard error: ``verbosity`` -1 warnings only, 0 progress and phases, 1 debug."""
    global _bars
    _bars = bars
    for handler in [h for h in LOGGER.handlers if isinstance(h, _StderrHandler)]:
        LOGGER.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    LOGGER.addHandler(handler)
    LOGGER.setLevel(LEVELS[max(-1, min(1, verbosity))])


def info(message: str) -> None:
    """Log one line at INFO on the ``rrgbench`` logger (the default ``log`` of a run)."""
    LOGGER.info(message)


def bars_wanted() -> bool:
    """Whether a progress bar may be drawn: allowed, standard error is a terminal, and INFO is shown."""
    return _bars and sys.stderr.isatty() and LOGGER.isEnabledFor(logging.INFO)


def duration(seconds: float) -> str:
    """``4.2 s``, ``3 min 05 s``, ``2 h 07 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@contextmanager
def phase(name: str, say: Say = info) -> Iterator[None]:
    """``name ...`` when a stage starts and ``name: done in T`` when it ends (``failed after T`` on an error)."""
    say(f"{name} ...")
    start = time.perf_counter()
    try:
        yield
    except BaseException:
        say(f"{name}: failed after {duration(time.perf_counter() - start)}")
        raise
    say(f"{name}: done in {duration(time.perf_counter() - start)}")


class Progress:
    """Progress over ``total`` items: a tqdm bar on a terminal, else a plain line now and then (see the module).

    ``bar`` None decides by :func:`bars_wanted`.
    """

    def __init__(self, desc: str, total: int, *, unit: str = "it", bar: bool | None = None, interval: float = 60.0,
                 say: Say = info) -> None:
        self.desc, self.total, self.unit, self.say = desc, max(0, int(total)), unit, say
        self.every = max(1, math.ceil(self.total / 10))
        self.interval = interval
        self.done = 0
        self.fields: dict[str, str] = {}
        self.start = self._last_time = time.perf_counter()
        self._last_done = 0
        self._bar: Any = None
        if bar if bar is not None else bars_wanted():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)

    def update(self, n: int = 1, fields: Mapping[str, Any] | None = None) -> None:
        """``n`` more items done; ``fields`` (e.g. ``{"loss": 2.31}``) are shown with the next line or on the bar."""
        self.done += n
        fields = fields or {}
        self.fields.update({k: f"{v:.4g}" if isinstance(v, float) else str(v) for k, v in fields.items()})
        if self._bar is not None:
            self._bar.update(n)
            if fields:
                self._bar.set_postfix(self.fields, refresh=False)
            return
        now = time.perf_counter()
        due = self.done - self._last_done >= self.every or now - self._last_time >= self.interval
        if due or self.done >= self.total:
            self.say(self.line(now))
            self._last_done, self._last_time = self.done, now

    def line(self, now: float | None = None) -> str:
        """``desc: 230/1013 (23%) loss 3.41, samples/s 118 | 2.1 it/s, elapsed 1 min 49 s, eta 6 min 12 s``."""
        elapsed = (now if now is not None else time.perf_counter()) - self.start
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        extra = ", ".join(f"{k} {v}" for k, v in self.fields.items())
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 and self.total >= self.done else None
        timing = f"{rate:.3g} {self.unit}/s, elapsed {duration(elapsed)}"
        timing += f", eta {duration(eta)}" if eta is not None and self.done < self.total else ""
        return f"{self.desc}: {self.done}/{self.total}{share}" + (f" {extra}" if extra else "") + f" | {timing}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def in_chunks(fn: Callable[[list[Any]], list[T]], items: list[Any], desc: str, *, chunk: int = 256,
              unit: str = "reports", say: Say = info) -> list[T]:
    """``fn`` over ``items`` in chunks, with progress when there is more than one chunk (labelling, RadGraph)."""
    if len(items) <= chunk:
        return list(fn(items))
    out: list[T] = []
    with Progress(desc, len(items), unit=unit, say=say) as progress:
        for begin in range(0, len(items), chunk):
            part = items[begin: begin + chunk]
            out.extend(fn(part))
            progress.update(len(part))
    return out
