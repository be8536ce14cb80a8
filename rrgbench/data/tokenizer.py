"""The word-level report tokenizer: R2Gen's vocabulary rule, fixed special ids, and its saved JSON form.

The vocabulary follows R2Gen: clean each *training* report with ``clean_report``, split on whitespace,
keep the tokens seen at least ``threshold`` times, sorted. Unlike R2Gen (which shares id 0 between
padding, BOS and EOS and sorts ``<unk>`` among the words), ids are ``<pad>``=0, ``<bos>``=1, ``<eos>``=2,
``<unk>``=3, then the words. Cleaning deletes ``<`` and ``>``, so no word can collide with a special token.
The vocabulary is saved with every run and checkpoint (``save``/``load``), so a model is always decoded
with the vocabulary it was trained with.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rrgbench.data.cleaning import check_style, clean_report
from rrgbench.errors import ConfigError, DataError
from rrgbench.io import read_json, write_text

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
VOCAB_FORMAT_VERSION = 1


def count_tokens(reports: Iterable[str], style: str) -> Counter[str]:
    """Whitespace-token counts of the cleaned ``reports``."""
    counts: Counter[str] = Counter()
    for report in reports:
        counts.update(clean_report(report, style).split())
    return counts


class Tokenizer:
    """Maps cleaned report words to ids and back. Build it from training reports only."""

    def __init__(self, words: Sequence[str], threshold: int, style: str) -> None:
        self._words = tuple(words)
        self._threshold = _check_threshold(threshold)
        self._style = check_style(style)
        _check_words(self._words)
        self._itos = SPECIAL_TOKENS + self._words
        self._stoi = {token: index for index, token in enumerate(self._itos)}

    @classmethod
    def build(cls, reports: Iterable[str], threshold: int, style: str) -> Tokenizer:
        """Vocabulary of the tokens occurring at least ``threshold`` times in the cleaned ``reports``."""
        _check_threshold(threshold)
        counts = count_tokens(reports, check_style(style))
        return cls(sorted(t for t, n in counts.items() if n >= threshold), threshold, style)

    @property
    def words(self) -> tuple[str, ...]:
        """The vocabulary words (no special tokens), in id order."""
        return self._words

    @property
    def threshold(self) -> int:
        """The minimum training-set count a word needed to enter the vocabulary."""
        return self._threshold

    @property
    def style(self) -> str:
        """The ``clean_report`` style applied before counting and encoding."""
        return self._style

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def bos_id(self) -> int:
        return 1

    @property
    def eos_id(self) -> int:
        return 2

    @property
    def unk_id(self) -> int:
        return 3

    def __len__(self) -> int:
        """Number of ids, special tokens included."""
        return len(self._itos)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tokenizer):
            return NotImplemented
        return (self._words, self._threshold, self._style) == (other._words, other._threshold, other._style)

    def __hash__(self) -> int:
        return hash((self._words, self._threshold, self._style))

    def __repr__(self) -> str:
        return f"Tokenizer({len(self._words)} words, threshold={self._threshold}, style={self._style!r})"

    def token_to_id(self, token: str) -> int:
        """The id of ``token``, or ``unk_id`` when it is not in the vocabulary."""
        return self._stoi.get(token, self.unk_id)

    def id_to_token(self, index: int) -> str:
        """The token of id ``index`` (special tokens included)."""
        index = int(index)
        if not 0 <= index < len(self._itos):
            raise ValueError(f"token id {index} is out of range for a vocabulary of {len(self._itos)} ids")
        return self._itos[index]

    def encode(self, report: str) -> list[int]:
        """Clean ``report`` and map its words to ids (``unk_id`` when unknown). No BOS/EOS is added."""
        return [self.token_to_id(token) for token in clean_report(report, self._style).split()]

    def decode(self, ids: Iterable[int]) -> str:
        """Words of ``ids`` joined by single spaces, stopping at the first EOS and skipping PAD and BOS."""
        tokens: list[str] = []
        for index in ids:
            index = int(index)
            if index == self.eos_id:
                break
            if index not in (self.pad_id, self.bos_id):
                tokens.append(self.id_to_token(index))
        return " ".join(tokens)

    def decode_batch(self, batch: Iterable[Iterable[int]]) -> list[str]:
        """``decode`` applied to each id sequence of ``batch``."""
        return [self.decode(ids) for ids in batch]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description from which ``from_dict`` rebuilds an equal tokenizer."""
        return {
            "version": VOCAB_FORMAT_VERSION,
            "style": self._style,
            "threshold": self._threshold,
            "special_tokens": list(SPECIAL_TOKENS),
            "words": list(self._words),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Tokenizer:
        """Rebuild a tokenizer from ``to_dict`` output; a DataError says what is wrong with it."""
        if not isinstance(data, dict):
            raise DataError(f"vocabulary must be a JSON object, got {type(data).__name__}")
        _check_vocab_header(data)
        words = data.get("words")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise DataError("vocabulary field 'words' must be a list of strings")
        threshold = data.get("threshold")
        if not isinstance(threshold, int) or isinstance(threshold, bool):
            raise DataError("vocabulary field 'threshold' must be an integer")
        style = data.get("style")
        if not isinstance(style, str):
            raise DataError("vocabulary field 'style' must be a string")
        try:
            return cls(words, threshold, style)
        except (ValueError, ConfigError) as error:
            raise DataError(f"invalid vocabulary: {error}") from None

    def save(self, path: Path | str) -> None:
        """Write the vocabulary as JSON, atomically (a temporary file renamed over ``path``)."""
        write_text(Path(path), json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: Path | str) -> Tokenizer:
        """Read a vocabulary written by ``save``; a DataError names the file and the problem."""
        path = Path(path)
        data = read_json(path, what="vocabulary file")
        try:
            return cls.from_dict(data)
        except DataError as error:
            raise DataError(f"{path}: {error}") from None


def _check_threshold(threshold: int) -> int:
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ConfigError(f"vocabulary threshold must be an integer >= 1, got {threshold!r}")
    return threshold


def _check_words(words: tuple[str, ...]) -> None:
    specials = set(SPECIAL_TOKENS).intersection(words)
    if specials:
        raise ValueError(f"vocabulary words include special tokens {sorted(specials)}")
    if len(set(words)) != len(words):
        duplicates = sorted(w for w, n in Counter(words).items() if n > 1)
        raise ValueError(f"vocabulary words are not unique: {duplicates[:5]}")
    bad = [w for w in words if w.split() != [w]]
    if bad:
        raise ValueError(f"vocabulary words must be single non-empty tokens without spaces, got {bad[:5]!r}")


def _check_vocab_header(data: dict[str, Any]) -> None:
    version = data.get("version")
    if version != VOCAB_FORMAT_VERSION:
        raise DataError(f"unsupported vocabulary version {version!r} (expected {VOCAB_FORMAT_VERSION})")
    specials = data.get("special_tokens", list(SPECIAL_TOKENS))
    if specials != list(SPECIAL_TOKENS):
        raise DataError(f"vocabulary special tokens {specials!r} differ from {list(SPECIAL_TOKENS)!r}")
