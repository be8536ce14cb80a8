"""The offline rule-based CheXpert labeler ``chexpert-rules``: report text -> the 14 CheXpert observations.

Owns report cleaning and sentence splitting for labelling, mention extraction with the CheXpert mention and
unmention phrase lists (``chexpert_data/chexpert_labeler/phrases``, plus rrgbench's few additions in
``chexpert_data/additions/phrases``), and the CheXpert aggregation over mentions, "No Finding" included. Each
mention is classified as uncertain / negated / positive by ``chexpert_context``; a Cardiomegaly mention of
"the heart", "heart size", "cardiac silhouette" ... that states no enlargement and no negation or hedge is a
reference to the heart, not a finding, and is dropped.

Aggregation follows the original ``Aggregator``: a single label is kept; with several, {0, -1} -> -1 (even
when 1 is also present), {0, 1} -> 1, {-1, 1} -> 1; "No Finding" is 1 when no mention outside Support
Devices (the No Finding phrase list included) is positive or uncertain, else blank; a positive or uncertain
"chf" / "heart failure" also makes Cardiomegaly uncertain.

Values: 1 positive, 0 negative, -1 uncertain, None not mentioned. Works on raw report text and on
R2Gen-cleaned text (lowercase, punctuation other than '.' removed). Quality against human labels of real
reports: tests/test_labeler_gold.py.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rrgbench.errors import DataError
from rrgbench.metrics.labelers.chexpert_context import (
    NEGATIVE,
    POSITIVE,
    UNCERTAIN,
    Cue,
    bare_cardiac_reference,
    classify_mention,
    find_cues,
)

OBSERVATIONS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Lesion",
    "Lung Opacity",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
COMMON_FIVE: tuple[str, ...] = ("Cardiomegaly", "Edema", "Consolidation", "Atelectasis", "Pleural Effusion")

Label = int | None

DATA_DIR = Path(__file__).with_name("chexpert_data") / "chexpert_labeler"
"""The CheXpert labeler's phrase lists (MIT licence, see LICENSE.txt and SOURCE.md there)."""
ADDITIONS_DIR = Path(__file__).with_name("chexpert_data") / "additions"
"""rrgbench's own mention / unmention phrases, added to those of ``data_dir`` (see README.md there)."""

_NO_FINDING, _SUPPORT_DEVICES, _CARDIOMEGALY = "No Finding", "Support Devices", "Cardiomegaly"
_HEART_FAILURE_TEXTS = frozenset({"chf", "heart failure"})

# ----------------------------------------------------------------------------------------------- cleaning


_SLASH = re.compile(r"(?<=[a-z])/(?=[a-z])")
_SPACE_AFTER_PUNCT = str.maketrans({".": ". ", ",": ", "})
_SENTENCE = re.compile(r"[^.?!]+")


def clean_report(text: str) -> str:
    """Lowercase, ``and/or`` -> ``or``, ``a/b`` -> ``a or b``, a space after '.' and ',', single spaces."""
    text = text.lower().replace("and/or", "or")
    text = _SLASH.sub(" or ", text).replace("..", ".").translate(_SPACE_AFTER_PUNCT)
    return " ".join(text.split())


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of cleaned ``text`` (runs between '.', '?' and '!')."""
    return [m.span() for m in _SENTENCE.finditer(text) if not m.group().isspace()]


# ------------------------------------------------------------------------------------------------ phrases


@dataclass(frozen=True)
class PhraseLists:
    """Mention and unmention phrases per observation (the No Finding list names other findings)."""

    mention: dict[str, tuple[str, ...]]
    unmention: dict[str, tuple[str, ...]]


def _observation_name(stem: str) -> str:
    return stem.replace("_", " ").title()


def _read_phrase_dir(folder: Path) -> dict[str, tuple[str, ...]]:
    """``{observation: phrases}``; in the files '_' stands for a space (``_mediastinum``, ``_line_``)."""
    table: dict[str, tuple[str, ...]] = {}
    for path in sorted(folder.glob("*.txt")):
        lines = path.read_text(encoding="utf-8").splitlines()
        phrases = tuple(line.strip().replace("_", " ") for line in lines if line.strip())
        table[_observation_name(path.stem)] = phrases
    return table


def _positional_unmentions(mention: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """"over the heart", "in the left cardiac silhouette" ...: a position, not a cardiac finding.

    Built as the original labeler builds them, except that phrases are stripped first, so that
    "in the mediastinum" is an unmention (the original's "in the  mediastinum" has two spaces and never
    matches cleaned text).
    """
    positions = [f"{where}{side}" for where in ("over the", "overly the", "in the")
                 for side in ("", " superior", " left", " right")]
    cardiac = [p.strip().replace("the ", "") for p in mention[_CARDIOMEGALY]
               if p not in ("cardiomegaly", "cardiac enlargement")]
    mediastinal = [p.strip() for p in mention["Enlarged Cardiomediastinum"]]
    return {
        _CARDIOMEGALY: tuple(f"{pos} {p}" for pos in positions for p in cardiac),
        "Enlarged Cardiomediastinum": tuple(f"{pos} {p}" for pos in positions for p in mediastinal),
    }


def _merged(*tables: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    merged: dict[str, tuple[str, ...]] = {}
    for table in tables:
        for observation, phrases in table.items():
            merged[observation] = merged.get(observation, ()) + phrases
    return merged


def load_phrase_lists(data_dir: Path = DATA_DIR, additions_dir: Path | None = ADDITIONS_DIR) -> PhraseLists:
    """Read ``phrases/mention`` and ``phrases/unmention`` under ``data_dir``, add those under ``additions_dir``
    (none when it is None), plus positional unmentions."""
    mention = _read_phrase_dir(data_dir / "phrases" / "mention")
    missing = [obs for obs in OBSERVATIONS if not mention.get(obs)]
    if missing:
        raise DataError(f"CheXpert mention phrases missing for {missing} under {data_dir / 'phrases'}")
    unmention = _read_phrase_dir(data_dir / "phrases" / "unmention")
    if additions_dir is not None:
        mention = _merged(mention, _read_phrase_dir(additions_dir / "phrases" / "mention"))
        unmention = _merged(unmention, _read_phrase_dir(additions_dir / "phrases" / "unmention"))
    unmention = _merged(unmention, _positional_unmentions(mention))
    return PhraseLists(mention=mention, unmention=unmention)


def _phrase_regex(phrases: Iterable[str]) -> re.Pattern[str]:
    """One alternation of the phrases, longest first (plain literals, so the regex engine scans fast)."""
    alternatives = sorted(set(phrases), key=lambda p: (-len(p), p))
    return re.compile("|".join(re.escape(p) for p in alternatives))


def find_all(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    """Spans of ``pattern`` at every start position, overlapping ones included (longest phrase per start)."""
    spans = []
    match = pattern.search(text)
    while match is not None:
        spans.append(match.span())
        match = pattern.search(text, match.start() + 1)
    return spans


@dataclass(frozen=True)
class _Matchers:
    mention: dict[str, re.Pattern[str]]
    unmention: dict[str, re.Pattern[str]]


@lru_cache(maxsize=4)
def _matchers(data_dir: Path) -> _Matchers:
    lists = load_phrase_lists(data_dir)
    return _Matchers(
        mention={obs: _phrase_regex(p) for obs, p in lists.mention.items()},
        unmention={obs: _phrase_regex(p) for obs, p in lists.unmention.items() if p},
    )


# ------------------------------------------------------------------------------------------- aggregation


def combine_labels(labels: Sequence[int]) -> int:
    """The original CheXpert rule for several mentions of one observation.

    One label: kept. Several: 0 with -1 -> -1 (even when a 1 is present too), 0 with 1 -> 1, -1 with 1 -> 1,
    otherwise all agree.
    """
    if len(labels) == 1:
        return labels[0]
    present = set(labels)
    if NEGATIVE in present and UNCERTAIN in present:
        return UNCERTAIN
    if POSITIVE in present:
        return POSITIVE
    return labels[0]


def aggregate(mentions: Iterable[tuple[str, str, int]]) -> dict[str, Label]:
    """``(observation, matched text, label)`` per mention -> one value per observation, OBSERVATIONS order."""
    per_observation: dict[str, list[int]] = {}
    no_finding = True
    for observation, text, label in mentions:
        if observation != _SUPPORT_DEVICES and label != NEGATIVE:
            no_finding = False
        if observation == _NO_FINDING:
            continue
        if label != NEGATIVE and text in _HEART_FAILURE_TEXTS:
            per_observation.setdefault(_CARDIOMEGALY, []).append(UNCERTAIN)
        per_observation.setdefault(observation, []).append(label)
    result: dict[str, Label] = {
        obs: combine_labels(per_observation[obs]) if obs in per_observation else None for obs in OBSERVATIONS
    }
    result[_NO_FINDING] = POSITIVE if no_finding else None
    return result


# ----------------------------------------------------------------------------------------------- labeler


@dataclass(frozen=True)
class Mention:
    """One labelled mention: its observation, the phrase it matched, its sentence, label and deciding rule."""

    observation: str
    text: str
    sentence: str
    label: int
    reason: str


def _unmention_spans(unmention: re.Pattern[str] | None, text: str) -> list[tuple[int, int]]:
    return [] if unmention is None else find_all(unmention, text)


def _overlaps(spans: Sequence[tuple[int, int]], start: int, end: int) -> bool:
    return any(start < span_end and end > span_start for span_start, span_end in spans)


class CheXpertRulesLabeler:
    """Rule-based CheXpert labeler: ``label(reports)`` gives one ``{observation: 1|0|-1|None}`` per report."""

    name = "chexpert-rules"

    def __init__(self, data_dir: Path | None = None) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else DATA_DIR
        self._matchers = _matchers(self.data_dir)

    def label(self, reports: Sequence[str]) -> list[dict[str, Label]]:
        """Label every report, in order."""
        out = []
        for index, report in enumerate(reports):
            if not isinstance(report, str):
                raise DataError(f"report {index} is {type(report).__name__}, expected text")
            out.append(self.label_report(report))
        return out

    def label_report(self, report: str) -> dict[str, Label]:
        """The 14 observations of one report."""
        return aggregate((m.observation, m.text, m.label) for m in self.mentions(report))

    def mentions(self, report: str) -> list[Mention]:
        """Every mention in the report with its label and the rule that decided it (for inspection)."""
        text = clean_report(report)
        spans = sentence_spans(text)
        starts = [s for s, _ in spans]
        cue_cache: dict[int, list[Cue]] = {}
        found = []
        for observation, pattern in self._matchers.mention.items():
            matches = find_all(pattern, text)
            if not matches:
                continue
            unmentioned = _unmention_spans(self._matchers.unmention.get(observation), text)
            for start, end in matches:
                if _overlaps(unmentioned, start, end):
                    continue
                index = bisect_right(starts, start) - 1
                if index < 0:
                    continue
                mention = self._classify(text, spans[index], index, observation, start, end, cue_cache)
                if mention is not None:
                    found.append(mention)
        return found

    @staticmethod
    def _classify(text: str, span: tuple[int, int], index: int, observation: str, start: int, end: int,
                  cue_cache: dict[int, list[Cue]]) -> Mention | None:
        sentence = text[span[0]:span[1]]
        if index not in cue_cache:
            cue_cache[index] = find_cues(sentence)
        phrase = text[start:end]
        start, end = start - span[0], end - span[0]
        label, reason = classify_mention(sentence, start, end, phrase, cue_cache[index], observation)
        if label == POSITIVE and bare_cardiac_reference(sentence, start, end, phrase, observation):
            return None
        return Mention(observation, phrase, sentence.strip(), label, reason)
