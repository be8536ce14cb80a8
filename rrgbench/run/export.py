"""Weights a user can share: ``model.safetensors`` (the selected weights only) with ``model.json`` and ``vocab.json``.

Every finished training run writes, into its run directory::

    model.safetensors   the selected (best-on-validation) weights, tensors only (no optimizer, no RNG state)
    model.json          format, the file's SHA-256, the resolved configuration, views per study, report
                        cleaning, the image normalisation the encoder expects, and what was selected
    vocab.json          the vocabulary (already written when the run started)

Those three files rebuild the model anywhere (:func:`read_export`; ``rrgbench evaluate --checkpoint
model.safetensors`` and ``rrgbench predict``); checkpoints keep the full training state for ``--resume``.
safetensors holds no code, so loading never unpickles anything; the checksum in ``model.json`` is verified first.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rrgbench.errors import DataError
from rrgbench.io import read_json, write_json

WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
VOCAB_FILE = "vocab.json"
FORMAT = "rrgbench-model"
FORMAT_VERSION = 1


def is_export(path: Path) -> bool:
    """True for ``model.safetensors`` (any ``.safetensors`` file) or a folder holding one."""
    path = Path(path)
    return path.suffix == ".safetensors" or (path.is_dir() and (path / WEIGHTS_FILE).is_file())


def write_export(folder: Path, model: Any, config: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` (atomically) and ``model.json`` into ``folder``; returns the weights file."""
    from safetensors.torch import save_model

    from rrgbench.run.checkpoint import sha256

    weights = Path(folder) / WEIGHTS_FILE
    partial = weights.with_name(f".{WEIGHTS_FILE}.partial")
    save_model(model, str(partial), metadata={"format": "pt", "rrgbench": FORMAT})
    os.chmod(partial, 0o644)
    os.replace(partial, weights)
    stats = model.encoder.image_stats()
    write_json(Path(folder) / META_FILE, {
        "format": FORMAT, "format_version": FORMAT_VERSION, "weights": WEIGHTS_FILE, "sha256": sha256(weights),
        "vocabulary": VOCAB_FILE, "config": config, "image_stats": asdict(stats), **meta})
    return weights


def read_export(path: Path) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """(weights file, model.json, vocabulary) of an export, after checking the files and the checksum."""
    from rrgbench.run.checkpoint import sha256

    path = Path(path)
    weights = path / WEIGHTS_FILE if path.is_dir() else path
    if not weights.is_file():
        raise DataError(f"model weights not found: {weights}")
    meta_file, vocab_file = weights.with_name(META_FILE), weights.with_name(VOCAB_FILE)
    for needed in (meta_file, vocab_file):
        if not needed.is_file():
            raise DataError(f"{weights}: {needed.name} must sit next to it (the configuration and vocabulary "
                            "written with it)")
    meta = read_json(meta_file, "model description")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{meta_file}: not an rrgbench model description (format '{FORMAT}' expected)")
    if meta.get("sha256") != sha256(weights):
        raise DataError(f"{weights}: checksum differs from {meta_file.name} (changed or cut short); re-export it")
    return weights, meta, read_json(vocab_file, "vocabulary")


def load_weights(model: Any, weights: Path) -> None:
    """Load an export's tensors into ``model`` (strict: every tensor must fit)."""
    from safetensors.torch import load_model

    try:
        load_model(model, str(weights), strict=True, device="cpu")
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise DataError(f"{weights}: the weights do not fit the model its model.json describes ({first})") from None
