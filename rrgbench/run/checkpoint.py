"""Checkpoints: safe to load, verified, self-describing.

A checkpoint is two files written atomically: ``NAME.pt`` (tensors and plain containers only, loaded
with ``torch.load(weights_only=True)`` so a pickle carrying code is refused and never executed) and
``NAME.json`` (metadata: resolved config, vocabulary, epoch/step, the SHA-256 of ``NAME.pt``). A
``.pt`` whose checksum does not match its metadata is a half-written checkpoint and is rejected.

The ``.pt`` is written before its ``.json``, so a crash between the two leaves a pair whose checksum
disagrees. ``save_checkpoint(..., keep_previous=True)`` first hard-links the current pair to
``NAME.prev.pt/.json`` (a rename-free, copy-free snapshot; the new ``NAME.pt`` is then written as a new
file, so the two never share bytes afterwards), so at every instant at least one of the two pairs is
complete; :func:`load_latest` takes the newest complete one and repairs the other name with a copy.
``best`` is a copy of ``last`` (:func:`copy_checkpoint`), never a link: damage to one file (a flipped
byte on disk) cannot reach the other.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rrgbench.errors import DataError
from rrgbench.io import atomic_write, read_json, write_json

CHECKPOINT_VERSION = 2  # 2: resume state (position, log rows, per-rank RNG) in every training checkpoint


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def rng_state() -> dict[str, Any]:
    """Every random generator's state, in weights-only-loadable form."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(v) for v in value)
    return value


def previous_path(path: Path) -> Path:
    """``last.pt`` -> ``last.prev.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def _link_or_copy(src: Path, dst: Path) -> None:
    """Make ``dst`` an atomic snapshot of ``src`` (hard link, or a copy where links are not supported)."""
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        os.link(src, tmp)
        os.replace(tmp, dst)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        _copy(src, dst)


def save_checkpoint(path: Path, payload: dict[str, Any], meta: dict[str, Any], keep_previous: bool = False) -> None:
    """Write ``path`` (.pt payload) and its ``.json`` metadata with the payload's checksum.

    With ``keep_previous`` the existing pair is first kept as ``NAME.prev.pt/.json`` (see the module
    docstring); the caller guarantees the existing pair is complete (``load_latest`` repairs it).
    """
    path = Path(path)
    meta_path = path.with_suffix(".json")
    if keep_previous and path.is_file() and meta_path.is_file():
        prev = previous_path(path)
        _link_or_copy(path, prev)
        _link_or_copy(meta_path, prev.with_suffix(".json"))
    atomic_write(path, lambda handle: torch.save(payload, handle), binary=True)
    write_json(meta_path, {**meta, "checkpoint_version": CHECKPOINT_VERSION, "sha256": sha256(path)})


def _copy(src: Path, dst: Path) -> None:
    """Make ``dst`` an independent copy of ``src`` (its own inode), written atomically."""
    with open(src, "rb") as source:
        atomic_write(dst, lambda handle: shutil.copyfileobj(source, handle), binary=True)


def copy_checkpoint(src: Path, dst: Path, **meta_updates: Any) -> None:
    """Make ``dst`` a copy of checkpoint ``src`` (payload copied, metadata updated), e.g. ``last`` -> ``best``."""
    src, dst = Path(src), Path(dst)
    meta = read_meta(src)
    _copy(src, dst)
    write_json(dst.with_suffix(".json"), {**meta, **meta_updates})


def load_latest(path: Path) -> tuple[dict[str, Any], dict[str, Any], Path, list[str]] | None:
    """The newest complete checkpoint of ``path`` or its ``.prev``: (payload, meta, path used, problems).

    ``None`` when neither exists. When ``path`` is unusable and ``.prev`` is used, ``path`` is repaired
    (replaced by ``.prev``) so that the next ``save_checkpoint(keep_previous=True)`` keeps a complete pair.
    A DataError lists both problems when neither is usable.
    """
    path = Path(path)
    problems: list[str] = []
    for candidate in (path, previous_path(path)):
        if not candidate.is_file() and not candidate.with_suffix(".json").is_file():
            continue
        try:
            payload, meta = load_checkpoint(candidate)
        except DataError as exc:
            problems.append(str(exc))
            continue
        if candidate != path:
            _copy(candidate, path)
            _copy(candidate.with_suffix(".json"), path.with_suffix(".json"))
        return payload, meta, candidate, problems
    if problems:
        raise DataError("no usable checkpoint: " + "; ".join(problems))
    return None


def read_meta(path: Path) -> dict[str, Any]:
    meta_path = Path(path).with_suffix(".json")
    if not meta_path.is_file():
        raise DataError(f"checkpoint metadata missing: {meta_path} (a checkpoint is NAME.pt + NAME.json)")
    meta = read_json(meta_path, "checkpoint metadata")
    if not isinstance(meta, dict):
        raise DataError(f"{meta_path}: checkpoint metadata must be a JSON object, got {type(meta).__name__}")
    return meta


def load_checkpoint(path: Path, verify: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load a checkpoint safely: checksum first, then weights-only unpickling. Returns (payload, meta)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint not found: {path}")
    meta = read_meta(path)
    if verify and meta.get("sha256") != sha256(path):
        raise DataError(f"checkpoint {path} does not match its recorded checksum (incomplete or modified file)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's note on the pickle protocol: noise here
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError, EOFError, ValueError) as exc:
        raise DataError(f"refusing to load {path}: it is not a weights-only checkpoint (tensors and plain "
                        f"containers only; {_unpickler_reason(exc)})") from None
    return payload, meta


def _unpickler_reason(exc: BaseException) -> str:
    """The informative line of a weights-only unpickling error (torch wraps it in paragraphs of advice)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            rest = line.split("WeightsUnpickler error:", 1)[1].strip() or (lines[i + 1] if i + 1 < len(lines) else "")
            return rest[:200]
    return (lines[0] if lines else type(exc).__name__)[:200]
