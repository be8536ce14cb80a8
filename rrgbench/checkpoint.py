"""Checkpoints: safe to load, verified, self-describing.

A checkpoint is two files written atomically: ``NAME.pt`` (tensors and plain containers only, loaded
with ``torch.load(weights_only=True)`` so a pickle carrying code is refused and never executed) and
``NAME.json`` (metadata: resolved config, vocabulary, epoch/step, the SHA-256 of ``NAME.pt``). A
``.pt`` whose checksum does not match its metadata is a half-written checkpoint and is rejected.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rrgbench.errors import DataError
from rrgbench.io import atomic_write, write_json

CHECKPOINT_VERSION = 1


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


def save_checkpoint(path: Path, payload: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write ``path`` (.pt payload) and its ``.json`` metadata with the payload's checksum."""
    path = Path(path)
    atomic_write(path, lambda handle: torch.save(payload, handle), binary=True)
    write_json(path.with_suffix(".json"), {**meta, "checkpoint_version": CHECKPOINT_VERSION, "sha256": sha256(path)})


def read_meta(path: Path) -> dict[str, Any]:
    meta_path = Path(path).with_suffix(".json")
    if not meta_path.is_file():
        raise DataError(f"checkpoint metadata missing: {meta_path} (a checkpoint is NAME.pt + NAME.json)")
    try:
        return json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{meta_path}: malformed JSON at line {exc.lineno} column {exc.colno}") from None


def load_checkpoint(path: Path, verify: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load a checkpoint safely: checksum first, then weights-only unpickling. Returns (payload, meta)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint not found: {path}")
    meta = read_meta(path)
    if verify and meta.get("sha256") != sha256(path):
        raise DataError(f"checkpoint {path} does not match its recorded checksum (incomplete or modified file)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DataError(f"refusing to load {path}: it is not a weights-only checkpoint ({first})") from None
    return payload, meta
