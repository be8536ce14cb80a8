"""Where a command may write: an output never replaces an input, a run folder, or a file rrgbench did not write.

* :func:`output_file` (``label --out``, ``compare --out``): a file path that is not a folder, not one of the
  inputs (by identity, whatever the spelling) nor inside an input folder; an existing file is replaced only
  when it is recognisably this command's own earlier output, or with ``--force``.
* :func:`output_folder` (``score --out``): a new or empty folder, the command's own earlier output (replaced
  as a whole), or with ``--force`` a foreign folder (its other files are kept). A run folder (training or
  evaluation) is never written into, and a folder holding an input is refused.
* :func:`runs_root` (``run --out``, ``evaluate --out``): a folder that exists or can be created;
  :func:`check_creatable` says early when a path cannot be created (a file on the way, no permission).
* :func:`safe_name`: a name that becomes one path part (a dataset, a model, a suite) cannot climb out of
  the folder it goes in (``../x``, ``/x``, ``.hidden``) nor carry characters a shell or a plot would read.
* :func:`replace_folder`: build a folder's files in a hidden temporary sibling, then put it in place, so
  a crash or a full disk leaves the old folder or the new one, never a mix of both.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rrgbench.errors import ConfigError, DataError

RUN_MARKERS = ("config.json", "status.json", "checkpoints", "train_log.jsonl")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]{0,127}$")


def safe_name(name: str, what: str) -> str:
    """``name`` if it can be one path part (letters, digits, ``_.+=-``, not starting with a dot), else an error."""
    if not isinstance(name, str) or not _SAFE.match(name) or name in (".", ".."):
        raise ConfigError(f"{what} {name!r} cannot name a folder: use letters, digits and _ . + = - "
                          "(not starting with a dot, at most 128 characters)")
    return name


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(path: Path, folder: Path) -> bool:
    path, folder = _resolved(path), _resolved(folder)
    return path == folder or folder in path.parents


def check_creatable(out: Path, flag: str) -> None:
    """Refuse a path that cannot be created: its nearest existing ancestor is a file, or a folder this process
    cannot create files in (probed by making and removing a temporary folder, which also works as root)."""
    for parent in Path(os.path.abspath(out)).parents:
        if parent.exists():
            if not parent.is_dir():
                raise DataError(f"{flag} {out}: {parent} is a file, not a folder")
            try:
                os.rmdir(tempfile.mkdtemp(prefix=".rrgbench-probe-", dir=parent))
            except OSError as exc:
                raise DataError(f"{flag} {out}: cannot create files in {parent} ({exc.strerror or exc})") from None
            return


def is_run_folder(folder: Path) -> bool:
    """A training or evaluation run's folder (see :mod:`rrgbench.run.layout`)."""
    return any((Path(folder) / marker).exists() for marker in RUN_MARKERS)


def output_file(out: Path, inputs: Iterable[Path], *, force: bool, ours: Callable[[Path], bool], flag: str = "--out",
                what: str = "output") -> Path:
    """``out`` if the command may write its ``what`` there (see the module docstring), else a DataError."""
    out = Path(out)
    if out.is_dir():
        raise DataError(f"{flag} {out} is a folder; give the {what} file's name")
    check_creatable(out, flag)
    for source in map(Path, inputs):
        if _same(out, source) or _resolved(out) == _resolved(source):
            raise DataError(f"{flag} {out} is the input {source}; write the {what} to another file")
        if source.is_dir() and _inside(out, source):
            raise DataError(f"{flag} {out} is inside the input folder {source}; write the {what} elsewhere")
    if out.exists() and not force and not ours(out):
        raise DataError(f"{flag} {out} exists and is not an earlier {what} of this command; choose another file, or "
                        "pass --force to replace it")
    return out


def output_folder(out: Path, inputs: Iterable[Path], *, force: bool, ours: Callable[[Path], bool],
                  flag: str = "--out", what: str = "output") -> bool:
    """Check ``out`` as the folder of a command's ``what``; True when it is to be replaced as a whole.

    False means "write the files into the existing folder" (a foreign folder, with ``force``).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{flag} {out} is a file; {what} is a folder")
    check_creatable(out, flag)
    for source in map(Path, inputs):
        if _inside(source, out):
            raise DataError(f"{flag} {out} holds the input {source}; write the {what} to another folder")
    if not out.is_dir() or not any(out.iterdir()):
        return True
    if is_run_folder(out):
        raise DataError(f"{flag} {out} is a run folder (training or evaluation); its files are never replaced: "
                        f"choose another folder for the {what}")
    if ours(out):
        return True
    if not force:
        raise DataError(f"{flag} {out} holds files that are not an earlier {what}; choose a new or empty folder, or "
                        "pass --force to add the files to it (its other files are kept)")
    return False


def runs_root(out: Path, flag: str = "--out") -> Path:
    """A runs folder that is a folder, or can be created."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{flag} {out} is a file; give a folder for the runs")
    check_creatable(out / "run", flag)  # the runs go inside: out itself must take new folders
    return out


_RENAME_EXCHANGE = 2  # renameat2 flag (Linux >= 3.15): swap two paths atomically


def _exchange(a: Path, b: Path) -> bool:
    """Swap folders ``a`` and ``b`` in one atomic step; False where the system cannot (then nothing moved)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_cwd = -100
    if renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # file system or kernel without the flag
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


@contextmanager
def replace_folder(out: Path) -> Iterator[Path]:
    """Yield a hidden temporary sibling of ``out`` to fill; on success it becomes ``out`` (the old one removed).

    On an exception the temporary folder is removed and ``out`` is untouched. An existing ``out`` is swapped
    with the new folder in one atomic step (Linux ``renameat2``), so a reader or a crash sees the old folder
    or the new one; elsewhere two renames do it and, between them, the old folder is a hidden
    ``.NAME.old-*`` sibling. A crash before the swap can leave a hidden ``.NAME.new-*`` sibling.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        yield staging
        staging.chmod(0o755)  # mkdtemp makes it private; an output folder has the usual permissions
        if not out.is_dir() or not any(out.iterdir()):
            os.replace(staging, out)  # over an empty folder too
        elif _exchange(staging, out):
            pass  # staging now holds the old files, removed below
        else:
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old)
            os.replace(staging, out)
            staging = old
    finally:
        shutil.rmtree(staging, ignore_errors=True)
