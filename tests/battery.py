"""The bad-input battery's harness: run one CLI case in-process, classify its outcome, keep the tally.

A case is an ``argv`` for :func:`rrgbench.cli.main` run inside a workspace folder. Before and after, every
file below the workspace is hashed; only the paths a case names as its intended output may change. The
outcome is one of:

* ``clean_error``: a non-zero exit, exactly one ``error:`` line on stderr, no traceback, not an internal error;
* ``success``: exit 0 and the case's own check of the result passed;
* ``traceback``: an exception escaped ``main`` or a traceback / "internal error" was printed;
* ``unclear_error``: a non-zero exit without exactly one clean ``error:`` line (or with the wrong message);
* ``silent_accept``: an error was expected and the command exited 0;
* ``failed_success``: a success was expected and the command failed or its result was wrong;
* ``data_loss``: a file outside the intended output was created, changed or removed.

Every outcome is appended to :data:`OUTCOMES`; ``python tests/run_battery.py`` runs the battery and prints
the tally (:func:`tally`). The test asserts the expected outcome, so the normal test suite fails on any
regression.
"""

from __future__ import annotations

import hashlib
import io
import os
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

GOOD = ("clean_error", "success")
KINDS = ("clean_error", "success", "traceback", "unclear_error", "silent_accept", "failed_success", "data_loss")


@dataclass(frozen=True)
class Outcome:
    command: str
    case: str
    kind: str
    detail: str = ""


OUTCOMES: list[Outcome] = []


@dataclass
class Result:
    code: int | None
    out: str
    err: str
    escaped: BaseException | None = None
    trace: str = ""

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error:") or ": error: " in line]


BIG = 1 << 20  # files over this (checkpoints) are compared by size, mtime and inode instead of content


def tree(root: Path) -> dict[str, str]:
    """relative path -> content hash (``dir`` for folders, ``link:target`` for symlinks) of everything below root.

    A file over :data:`BIG` bytes is represented by its size, modification time and inode: any write changes
    the time, an atomic replacement the inode.
    """
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = f"link:{os.readlink(path)}"
            elif path.is_dir():
                found[rel] = "dir"
            elif path.stat().st_size > BIG:
                info = path.stat()
                found[rel] = f"stat:{info.st_size}:{info.st_mtime_ns}:{info.st_ino}"
            else:
                try:
                    found[rel] = hashlib.sha1(path.read_bytes()).hexdigest()
                except OSError as exc:  # unreadable (a FIFO, permissions): its mode stands in
                    found[rel] = f"unreadable:{exc.errno}"
    return found


def changed(before: dict[str, str], after: dict[str, str], allowed: Sequence[str]) -> list[str]:
    """Paths created, changed or removed outside the ``allowed`` prefixes (relative paths)."""
    paths = sorted(set(before) | set(after))
    diff = [p for p in paths if before.get(p) != after.get(p)]
    return [p for p in diff if not any(p == a or p.startswith(a.rstrip("/") + "/") for a in allowed)]


def invoke(argv: Sequence[str]) -> Result:
    """``rrgbench.cli.main(argv)`` with stdout and stderr captured; an escaping exception is kept, not raised."""
    from rrgbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int | None = None
    escaped, trace = None, ""
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException as exc:  # the battery reports it as a traceback
            escaped, trace = exc, traceback.format_exc()
    return Result(code, out.getvalue(), err.getvalue(), escaped, trace)


def invoke_forked(argv: Sequence[str], prepare: Callable[[], None] | None = None) -> Result:
    """``main(argv)`` in a forked child (after ``prepare()`` there: resource limits, a simulated kill -9).

    The child's exit status is the result's code (a signal ``-N``); stdout and stderr come through pipes
    (which a file size limit does not apply to), drained by threads while the child runs.
    """
    import sys
    import threading

    pipes = [os.pipe(), os.pipe()]
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            for (read, write), fd in zip(pipes, (1, 2), strict=True):
                os.close(read)
                os.dup2(write, fd)
            sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), write_through=True)
            sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), write_through=True)
            if prepare is not None:
                prepare()
            from rrgbench.cli import main

            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # the child reports a traceback like an uncaught exception would
            traceback.print_exc()
            code = 99
        finally:  # whatever happens (a flush that fails), the child ends here
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except BaseException:  # nothing is left to report it to
                    pass
            os._exit(code)
    texts: list[bytes] = [b"", b""]

    def drain(index: int, fd: int) -> None:
        with os.fdopen(fd, "rb") as handle:
            texts[index] = handle.read()

    readers = []
    for index, (read, write) in enumerate(pipes):
        os.close(write)
        readers.append(threading.Thread(target=drain, args=(index, read)))
        readers[-1].start()
    _, status = os.waitpid(pid, 0)
    for reader in readers:
        reader.join()
    return Result(os.waitstatus_to_exitcode(status), texts[0].decode(errors="replace"),
                  texts[1].decode(errors="replace"))


def classify(result: Result, expect: str, message: str | None, check_ok: str | None, lost: list[str]) -> Outcome:
    printed = result.out + result.err
    if result.escaped is not None or "Traceback (most recent call last)" in printed or "internal error" in printed:
        return Outcome("", "", "traceback", (result.trace or printed)[-1500:])
    if expect == "safe":  # either a clean error or a success: whichever happened, judged as such
        expect = "success" if result.code == 0 else "error"
    if expect == "error" and result.code == 0:
        return Outcome("", "", "silent_accept", result.out[-300:])
    if lost:
        return Outcome("", "", "data_loss", f"changed outside the output: {lost[:5]}")
    if expect == "error":
        lines = result.error_lines
        if len(lines) != 1 or (message is not None and message.lower() not in lines[0].lower()):
            return Outcome("", "", "unclear_error", result.err[-600:])
        return Outcome("", "", "clean_error", lines[0][:300])
    if result.code != 0:
        return Outcome("", "", "failed_success", result.err[-600:])
    if check_ok:
        return Outcome("", "", "failed_success", check_ok)
    return Outcome("", "", "success", "")


class Battery:
    """Runs cases in one workspace folder and records their outcomes (see the module docstring)."""

    def __init__(self, root: Path, command: str) -> None:
        self.root, self.command = Path(root), command

    def run(self, argv: Sequence[str], expect: str, *, case: str = "", outputs: Iterable[str] = (),
            message: str | None = None, check: Callable[[Result], str | None] | None = None,
            watch: Path | None = None, fork: Callable[[], None] | bool | None = None) -> Result:
        """Run one case; ``outputs`` are the paths (relative to the watched folder) it may change.

        ``expect``: ``error`` (a clean error, whose line contains ``message``), ``success`` (and ``check(result)``
        returns None) or ``safe`` (either, for behaviour another part of the project decides).
        ``fork``: run it in a forked child (True, or a function the child calls first, e.g. to set a limit).
        """
        root = Path(watch or self.root)
        before = tree(root)
        cwd = os.getcwd()
        os.chdir(self.root)
        try:
            if fork:
                result = invoke_forked(argv, fork if callable(fork) else None)
            else:
                result = invoke(argv)
            ran = result.code == 0 and result.escaped is None
            problem = check(result) if check is not None and ran else None  # relative paths: the workspace's
        finally:
            os.chdir(cwd)
        lost = changed(before, tree(root), list(outputs))
        outcome = classify(result, expect, message, problem, lost)
        outcome = Outcome(self.command, case or " ".join(map(str, argv))[:120], outcome.kind, outcome.detail)
        OUTCOMES.append(outcome)
        wanted = {"error": ("clean_error",), "success": ("success",), "safe": GOOD}[expect]
        assert outcome.kind in wanted, f"{outcome.kind}: {outcome.detail}\nstdout: {result.out[-800:]}"
        return result

    def error(self, argv: Sequence[str], message: str | None = None, **kwargs) -> Result:
        return self.run(argv, "error", message=message, **kwargs)

    def ok(self, argv: Sequence[str], **kwargs) -> Result:
        return self.run(argv, "success", **kwargs)


def tally(outcomes: Sequence[Outcome] = ()) -> str:
    """Counts by outcome kind and by command, e.g. for ``python tests/run_battery.py``."""
    outcomes = list(outcomes or OUTCOMES)
    kinds = Counter(o.kind for o in outcomes)
    commands = Counter(o.command for o in outcomes)
    lines = [f"battery: {len(outcomes)} cases: " + ", ".join(f"{k} {kinds.get(k, 0)}" for k in KINDS)]
    lines.append("by command: " + ", ".join(f"{c} {n}" for c, n in sorted(commands.items())))
    generated = sum(o.case.startswith("generated") for o in outcomes)
    lines.append(f"generated by hypothesis: {generated}; the others (written cases and their setup runs): "
                 f"{len(outcomes) - generated}")
    for bad in (o for o in outcomes if o.kind not in GOOD):
        lines.append(f"  {bad.kind}: {bad.command}: {bad.case}: {bad.detail.splitlines()[-1] if bad.detail else ''}")
    return "\n".join(lines)
