"""The ``chexbert`` labeler: CheXbert (Smit et al., 2020) through the ``f1chexbert`` package, fully offline.

CheXbert is a BERT-base model with 14 linear heads; f1chexbert (0.0.2) ships its architecture
(``bert_labeler``), its report preprocessing (``tokenize``: strip, fold whitespace, WordPiece, cut at 512) and
the meaning of each head's classes. f1chexbert itself would download ``chexbert.pth`` from the Hugging Face Hub
and read the ``bert-base-uncased`` tokenizer and config by hub name; rrgbench never downloads, so it resolves
both on disk and builds the model with f1chexbert's classes:

* weights (``chexbert.pth``, from StanfordAIMI/RRG_scorers or the CheXbert release): ``--chexbert PATH``
  (the labeler option ``checkpoint``), else ``$RRGBENCH_CHEXBERT``, else f1chexbert's own cache file
  (``f1chexbert.CACHE_DIR``, ``~/.cache/chexbert/chexbert.pth`` on Linux);
* tokenizer + config of ``bert-base-uncased`` (a folder with ``config.json`` and ``vocab.txt``): the option
  ``bert``, else ``$RRGBENCH_CHEXBERT_BERT``, else a ``bert-base-uncased/`` folder next to the weights, else
  the Hugging Face hub cache (offline).

When either is missing the labeler raises :class:`UnavailableError` with one line saying where to put it and
naming the flag (``--chexbert``); a run checks this before it trains (the ``clinical`` group's preflight), and
CE metrics scored without it are recorded as unavailable, never as 0.

Uncertain labels: f1chexbert's own F1 (``get_label(mode="rrg")``) counts class 3 (uncertain) as positive,
like class 1, and blank and negative as negative; that is rrgbench's ``chexbert`` mapping, the one this
labeler declares as its own (``scoring.uncertain auto``).

Seam: f1chexbert's ``bert_labeler(inference=True)`` reads its config with
``AutoConfig.from_pretrained('bert-base-uncased')``; while the model is built, that module-level name is
replaced by a shim returning the resolved config (nothing else of f1chexbert is patched). f1chexbert loads the
weights with ``strict=False``; here every model parameter must be present in the checkpoint (only the
``position_ids`` buffer of older transformers versions may be extra), otherwise the labeler is unavailable -
a silently half-random labeler would be worse than none.

Classes of the 13 four-way heads: 0 blank, 1 positive, 2 negative, 3 uncertain; of the "No Finding" head:
0 blank, 1 positive (CheXbert's ``label.py``; f1chexbert's ``get_label(mode="classification")``). Inference
is batched (reports sorted by length, padding masked), which gives CheXbert's labels up to float rounding.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from rrgbench.errors import DataError, UnavailableError
from rrgbench.extension.options import option
from rrgbench.metrics.labelers.chexpert_rules import OBSERVATIONS, Label

ENV_CHECKPOINT = "RRGBENCH_CHEXBERT"
ENV_BERT = "RRGBENCH_CHEXBERT_BERT"
CHECKPOINT_NAME = "chexbert.pth"
FLAG = "--chexbert"
BERT_NAME = "bert-base-uncased"

HEAD_ORDER: tuple[str, ...] = (
    "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation",
    "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
    "Support Devices", "No Finding",
)  # fmt: skip
"""The observation of each CheXbert head, in head order (f1chexbert's ``target_names``)."""

FOUR_WAY: dict[int, Label] = {0: None, 1: 1, 2: 0, 3: -1}
NO_FINDING: dict[int, Label] = {0: None, 1: 1}

_IGNORED_EXTRA_KEYS = ("bert.embeddings.position_ids",)
_BUILD_LOCK = threading.Lock()


@dataclass(frozen=True)
class ChexbertOptions:
    """Options of the ``chexbert`` labeler."""

    checkpoint: str = option("", f"CheXbert weights ({CHECKPOINT_NAME}; the {FLAG} flag sets it); empty: "
                                 f"${ENV_CHECKPOINT}, then f1chexbert's cache file")
    bert: str = option("", f"folder with the {BERT_NAME} config.json and vocab.txt; empty: ${ENV_BERT}, a "
                           f"{BERT_NAME}/ folder next to the weights, then the offline HF cache")
    device: str = option("auto", "device for inference", choices=("auto", "cpu", "cuda"))
    batch_size: int = option(16, "reports per forward pass", min=1)


def missing_weights_message(looked: Sequence[Path]) -> str:
    """The one-line reason shown when the weights are absent."""
    where = ", ".join(str(p) for p in looked) or "nowhere"
    return (f"CheXbert weights not found (looked at {where}): download {CHECKPOINT_NAME} (StanfordAIMI/RRG_scorers) "
            f"and pass {FLAG} PATH, or set {ENV_CHECKPOINT}=PATH")


def _library_cache_file() -> Path | None:
    try:
        import f1chexbert.f1chexbert as library
    except ImportError:
        return None
    return Path(library.CACHE_DIR) / CHECKPOINT_NAME


def resolve_checkpoint(option_value: str = "") -> Path:
    """The CheXbert weights file (option, then environment, then f1chexbert's cache) or UnavailableError."""
    explicit = option_value or os.environ.get(ENV_CHECKPOINT, "")
    if explicit:
        path = Path(explicit).expanduser()
        if path.is_file():
            return path
        raise UnavailableError(missing_weights_message([path]))
    cached = _library_cache_file()
    if cached is not None and cached.is_file():
        return cached
    raise UnavailableError(missing_weights_message([cached] if cached is not None else []))


def _bert_folder_ok(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "vocab.txt").is_file()


def resolve_bert(option_value: str, checkpoint: Path) -> str:
    """A local folder (or the cached hub name) holding the bert-base-uncased config and vocabulary."""
    explicit = option_value or os.environ.get(ENV_BERT, "")
    if explicit:
        folder = Path(explicit).expanduser()
        if _bert_folder_ok(folder):
            return str(folder)
        raise UnavailableError(f"CheXbert's tokenizer folder {folder} ({ENV_BERT} or option bert) lacks "
                               f"config.json or vocab.txt (copy them from {BERT_NAME})")
    beside = checkpoint.parent / BERT_NAME
    if _bert_folder_ok(beside):
        return str(beside)
    if _in_hub_cache(BERT_NAME):
        return BERT_NAME
    raise UnavailableError(
        f"CheXbert needs the {BERT_NAME} tokenizer and config offline: put its config.json and vocab.txt in "
        f"{beside} (next to the {FLAG} weights), or set {ENV_BERT}=DIR"
    )


def _in_hub_cache(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    found = [try_to_load_from_cache(name, filename) for filename in ("config.json", "vocab.txt")]
    return all(isinstance(path, str) for path in found)


# ---------------------------------------------------------------------------------------------- model


class _FixedConfig:
    """Stand-in for ``transformers.AutoConfig`` inside f1chexbert: always returns the resolved config."""

    def __init__(self, config: Any) -> None:
        self._config = config

    def from_pretrained(self, *args: Any, **kwargs: Any) -> Any:
        return self._config


@contextlib.contextmanager
def _config_seam(config: Any) -> Iterator[None]:
    import f1chexbert.f1chexbert as library

    with _BUILD_LOCK:
        original = library.AutoConfig
        library.AutoConfig = _FixedConfig(config)
        try:
            yield
        finally:
            library.AutoConfig = original


def _load_state_dict(checkpoint: Path) -> dict[str, Any]:
    import torch

    try:
        blob = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, not a torch file, or unsafe pickle
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnavailableError(f"cannot read CheXbert weights {checkpoint} ({first}): {FLAG} takes "
                               f"{CHECKPOINT_NAME}") from None
    state = blob.get("model_state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise UnavailableError(f"{checkpoint} holds no CheXbert state dict ('model_state_dict'): {FLAG} takes "
                               f"{CHECKPOINT_NAME}")
    return OrderedDict((key.removeprefix("module."), value) for key, value in state.items())


def _check_keys(missing: Sequence[str], unexpected: Sequence[str], checkpoint: Path) -> None:
    extra = [key for key in unexpected if key not in _IGNORED_EXTRA_KEYS]
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"{len(missing)} model tensors missing, e.g. {missing[0]}")
        if extra:
            problems.append(f"{len(extra)} unknown tensors, e.g. {extra[0]}")
        raise UnavailableError(f"{checkpoint} is not a CheXbert checkpoint: {'; '.join(problems)} ({FLAG} takes "
                               f"{CHECKPOINT_NAME})")


def _device(name: str) -> Any:
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UnavailableError("CheXbert labeler: device=cuda requested but CUDA is not available")
    return torch.device(name)


@lru_cache(maxsize=1)
def load_model(checkpoint: str, bert: str, device: str) -> tuple[Any, Any]:
    """CheXbert (f1chexbert's ``bert_labeler``) with the given weights, and its tokenizer; cached (one)."""
    try:
        import f1chexbert.f1chexbert as library
        from transformers import AutoConfig, BertTokenizer
    except ImportError as exc:
        raise UnavailableError(f"CheXbert labeler needs f1chexbert: pip install f1chexbert ({exc})") from None
    try:
        config = AutoConfig.from_pretrained(bert, local_files_only=True)
        tokenizer = BertTokenizer.from_pretrained(bert, local_files_only=True)
    except OSError as exc:
        raise UnavailableError(f"cannot load the {BERT_NAME} config/tokenizer from {bert}: {exc}") from None
    with _config_seam(config):
        model = library.bert_labeler(inference=True)
    try:
        result = model.load_state_dict(_load_state_dict(Path(checkpoint)), strict=False)
    except RuntimeError as exc:  # shape mismatch: weights of another architecture
        first = str(exc).strip().splitlines()[-1].strip()
        raise UnavailableError(f"{checkpoint} does not fit the {bert} config: {first}") from None
    _check_keys(result.missing_keys, result.unexpected_keys, Path(checkpoint))
    model = model.to(_device(device)).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model, tokenizer


# ---------------------------------------------------------------------------------------------- labeler


def decode_heads(classes: Sequence[int]) -> dict[str, Label]:
    """The 14 observations (rrgbench's order) from the argmax class of each CheXbert head."""
    values = {name: FOUR_WAY[int(c)] for name, c in zip(HEAD_ORDER[:-1], classes[:-1], strict=True)}
    values[HEAD_ORDER[-1]] = NO_FINDING[int(classes[-1])]
    return {name: values[name] for name in OBSERVATIONS}


class CheXbertLabeler:
    """CheXbert labels of reports: ``label(reports)`` -> one ``{observation: 1|0|-1|None}`` per report."""

    name = "chexbert"

    def __init__(self, options: ChexbertOptions | None = None) -> None:
        options = options or ChexbertOptions()
        self.checkpoint = resolve_checkpoint(options.checkpoint)
        self.bert = resolve_bert(options.bert, self.checkpoint)
        self.batch_size = options.batch_size
        self.model, self.tokenizer = load_model(str(self.checkpoint), self.bert, options.device)
        self.device = next(self.model.parameters()).device

    @property
    def source(self) -> dict[str, str]:
        """Where the weights and the tokenizer came from (for records)."""
        return {"checkpoint": str(self.checkpoint), "bert": self.bert}

    def label(self, reports: Sequence[str]) -> list[dict[str, Label]]:
        """Label every report, in order."""
        for index, report in enumerate(reports):
            if not isinstance(report, str):
                raise DataError(f"report {index} is {type(report).__name__}, expected text")
        if not reports:
            return []
        encoded = self._encode(reports)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out: list[dict[str, Label] | None] = [None] * len(encoded)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            for position, classes in zip(chunk, self._classify([encoded[i] for i in chunk]), strict=True):
                out[position] = decode_heads(classes)
        return [labels for labels in out if labels is not None]

    def _encode(self, reports: Sequence[str]) -> list[list[int]]:
        import pandas as pd
        from f1chexbert.f1chexbert import tokenize

        return tokenize(pd.Series(list(reports), dtype=object), self.tokenizer)

    def _classify(self, batch: Sequence[Sequence[int]]) -> list[list[int]]:
        import torch
        from f1chexbert.f1chexbert import generate_attention_masks

        lengths = [len(ids) for ids in batch]
        padded = torch.full((len(batch), max(lengths)), self.tokenizer.pad_token_id, dtype=torch.long)
        for row, ids in enumerate(batch):
            padded[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask = generate_attention_masks(padded, lengths, self.device)
        with torch.inference_mode():
            heads = self.model(padded.to(self.device), mask)
        classes = torch.stack([head.argmax(dim=1) for head in heads], dim=1)
        return classes.cpu().tolist()
