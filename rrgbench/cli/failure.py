"""One line for any failure that is not an :class:`~rrgbench.errors.RRGBenchError`: the CLI's error boundary.

The user sees ``error: <line>`` and a non-zero exit code; ``--debug`` shows the traceback instead.

* an ``OSError`` (disk full, permission denied, a file where a folder is expected) names the path and the
  system's reason;
* text that is not UTF-8, malformed CSV and running out of memory say so;
* an exception raised inside a plugin's code names the plugin, the file and the line of its innermost
  frame in that plugin (a run also keeps the whole traceback in its ``status.json`` and ``train_log.jsonl``);
* anything else is an internal error, named by the innermost frame of rrgbench's own code.
"""

from __future__ import annotations

import csv
import errno
import os
import traceback
from pathlib import Path

EXIT_CODE = 1  # RRGBenchError subclasses use 2 (settings) and 3 (data); argparse 2; an interruption 130

_HINTS = {errno.ENOSPC: " (the disk is full: free space and rerun)", errno.EFBIG: " (over the file size limit)",
          errno.EROFS: " (read-only file system)"}
_MAX_MESSAGE = 300


def describe(exc: BaseException) -> tuple[str, int]:
    """(one line without the ``error:`` prefix, exit code) for an exception that escaped a command."""
    where = plugin_frame(exc)
    suffix = f" (in plugin '{where[0]}', {where[1]}, line {where[2]})" if where else ""
    if isinstance(exc, OSError):
        return _os_error(exc) + suffix, EXIT_CODE
    if isinstance(exc, UnicodeDecodeError):
        return f"input is not valid UTF-8 text ({_short(exc)}){suffix}", EXIT_CODE
    if isinstance(exc, UnicodeError):
        return f"text encoding failed ({_short(exc)}){suffix}; set a UTF-8 locale (e.g. LANG=C.UTF-8)", EXIT_CODE
    if isinstance(exc, MemoryError) or _out_of_memory(exc):
        return (f"out of memory ({_short(exc) or type(exc).__name__}){suffix}; use smaller sizes (rrgbench list "
                "options)"), EXIT_CODE
    if isinstance(exc, csv.Error):
        return f"malformed CSV: {_short(exc)}{suffix}", EXIT_CODE
    if where:
        return (f"plugin '{where[0]}' failed: {type(exc).__name__}: {_short(exc)} ({where[1]}, line {where[2]}; "
                "--debug shows the traceback)"), EXIT_CODE
    own = _innermost(exc, lambda path: _inside(path, Path(__file__).resolve().parents[1]))
    place = f" ({own[0]}, line {own[1]})" if own else ""
    return (f"internal error: {type(exc).__name__}: {_short(exc)}{place}; rerun with --debug and report the "
            "traceback"), EXIT_CODE


def _os_error(exc: OSError) -> str:
    reason = exc.strerror or _short(exc) or type(exc).__name__
    files = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
    where = " -> ".join(files)
    line = f"{reason}{_HINTS.get(exc.errno or 0, '')}"
    return f"{where}: {line}" if where else line


def _out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE - 3] + "..."


def plugin_frame(exc: BaseException) -> tuple[str, str, int] | None:
    """(plugin name, file, line) of the innermost traceback frame inside a loaded plugin's code, if any."""
    from rrgbench.extension.plugins import plugin_paths

    paths = plugin_paths()
    found = _innermost(exc, lambda path: any(_inside(path, root) for root in paths.values()))
    if found is None:
        return None
    file, line = found
    owner = next(name for name, root in paths.items() if _inside(Path(file), root))
    return owner, file, line


def _innermost(exc: BaseException, wanted) -> tuple[str, int] | None:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(os.path.realpath(frame.filename))
        if wanted(path):
            return str(path), int(frame.lineno or 0)
    return None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
