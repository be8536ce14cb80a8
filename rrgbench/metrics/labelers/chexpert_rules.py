"""The offline rule-based CheXpert labeler ``chexpert-rules``: report text -> the 14 CheXpert observations.

Owns report cleaning and sentence splitting for labelling, mention extraction with the CheXpert mention and
unmention phrase lists (``chexpert_data/chexpert_labeler/phrases``), classification of each mention as
uncertain / negated / positive, and the CheXpert aggregation over mentions, "No Finding" included.

The original labeler (stanfordmlgroup/chexpert-labeler, built on NegBio) classifies a mention with Semgrex
patterns over a dependency parse (``chexpert_data/chexpert_labeler/patterns``). This module approximates those
patterns with regular expressions over the sentence:

* cues *before* the mention ("no", "without", "free of", "may", "possible", "normal" ...) that reach it
  when at most ``window`` words lie between them and no clause boundary does ("but", "however", "although",
  ";", "with", a copula, "and there" ...);
* predicates *after* the mention ("X is normal", "X and Y are within normal limits", "X has resolved",
  "X cannot be excluded", "X is not well seen", "X or Y").

The stages run in the original order: pre-negation uncertainty, negation, post-negation uncertainty; a
mention that matches none is positive. Aggregation follows the original ``Aggregator`` exactly: a single
label is kept; with several, {0, -1} -> -1 (even when 1 is also present), {0, 1} -> 1, {-1, 1} -> 1;
"No Finding" is 1 when no mention outside Support Devices (the No Finding phrase list included) is positive
or uncertain, else blank; a positive or uncertain "chf" / "heart failure" also makes Cardiomegaly uncertain.

Values: 1 positive, 0 negative, -1 uncertain, None not mentioned. Works on raw report text and on
R2Gen-cleaned text (lowercase, punctuation other than '.' removed).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rrgbench.errors import DataError

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

POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1
Label = int | None

DATA_DIR = Path(__file__).with_name("chexpert_data") / "chexpert_labeler"
"""The CheXpert labeler's phrase lists (MIT licence, see LICENSE.txt and SOURCE.md there)."""

_NO_FINDING, _SUPPORT_DEVICES, _CARDIOMEGALY = "No Finding", "Support Devices", "Cardiomegaly"
_HEART_FAILURE_TEXTS = frozenset({"chf", "heart failure"})
_DEFAULT_UNCERTAIN_PHRASES = frozenset(
    {"vascular congestion", "pulmonary congestion", "indistinctness", "vascular prominence"}
)
_CARDIAC_HEAD = re.compile(
    r"cardiomediastinal|pericardial|mediastinal|mediastinum|cardiomediastinum|contour|configuration"
    r"|silhouette|size|heart|shadow"
)

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


def load_phrase_lists(data_dir: Path = DATA_DIR) -> PhraseLists:
    """Read ``phrases/mention`` and ``phrases/unmention`` under ``data_dir``, plus positional unmentions."""
    mention = _read_phrase_dir(data_dir / "phrases" / "mention")
    missing = [obs for obs in OBSERVATIONS if not mention.get(obs)]
    if missing:
        raise DataError(f"CheXpert mention phrases missing for {missing} under {data_dir / 'phrases'}")
    unmention = _read_phrase_dir(data_dir / "phrases" / "unmention")
    unmention.update(_positional_unmentions(mention))
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


# -------------------------------------------------------------------------------------------- cue tables
# Derived from patterns/{pre_negation_uncertainty,negation,post_negation_uncertainty}.txt (the lemmas named
# there) and NegBio's neg/uncertainty patterns. Each group name is a cue kind with its own reach (_SCOPES).

_CUE_ALTERNATIVES: tuple[tuple[str, str], ...] = (
    # pre-negation uncertainty: cannot exclude / cannot rule out / no new XXX
    ("u1", r"can ?not (?:be )?(?:entirely |completely |definitely )?"
           r"(?:exclude[ds]?|excluding|rule[ds]? out)"),
    ("u1", r"(?:could|may|can|does|do) not (?:be )?(?:exclude[ds]?|rule[ds]? out)"),
    ("u1", r"no evidence to rule out"),
    ("u1", r"no (?:(?:definite|significant|other|obvious|focal|acute) )?new"),
    # phrases that contain a negation word but negate nothing here
    ("skip", r"no (?:(?:significant|interval|substantial|appreciable|definite|major|further|acute) ){0,2}"
             r"(?:change|changes|difference)"),
    ("skip", r"without (?:(?:significant|interval|substantial) )?change"),
    ("skip", r"not (?:only|well|clearly|excluded|ruled out|(?:significantly )?changed)"),
    ("skip", r"normal limits(?! (?:for|of|in)\b)"),
    # negation with a short reach: resolution of / removal of / history of / rather than ...
    ("neg_near", r"(?:interval )?resolution of|resolved|resolving|(?:interval )?removal of|removed"),
    ("neg_near", r"history of|hx of|disappearance of|drainage of|clearing of|cleared|no longer"),
    ("neg_near", r"(?:to )?exclude[ds]?|excluding|rather than|instead of"),
    ("neg_near", r"normal limits (?:for|of|in)|(?:normal|unremarkable) appearance of|normal size (?:of|and)"),
    # negation: no / not / without / free of / negative for / clear of / rule out
    ("neg", r"no|not|without|neither|nor|negative for|free of|clear of|absence of|absent"),
    ("neg", r"rule[ds]? out|r or o"),
    # normal / unremarkable XXX: only the next few words
    ("neg_adj", r"normal|unremarkable"),
    # post-negation uncertainty with a short reach: XXX or YYY, XXX versus YYY, secondary to XXX
    ("unc_near", r"or|versus|vs|secondary to|question of|suggestion of|less likely"),
    ("unc_near", r"question|questioned|favou?r|favou?red|favou?ring|consider|considered|considering"),
    ("unc_near", r"(?:is|are|be|was|were) compatible with"),
    # post-negation uncertainty: may / possible / suspicious for / concern for / differential ...
    ("unc", r"may|might|could|would|maybe|possible|possibly|presumably|presumed|probable|questionable"),
    ("unc", r"suspect|suspected|suspicious|suspicion|concern|concerning|worrisome|differential|correlate"),
    ("unc", r"correlation"),
    # stable / unchanged / borderline heart, silhouette, contour, size ...
    ("unc_cardiac", r"stable|unchanged|borderline|similar"),
)


def _cue_regex(alternatives: Sequence[tuple[str, str]]) -> re.Pattern[str]:
    grouped: dict[str, list[str]] = {}
    for kind, pattern in alternatives:
        grouped.setdefault(kind, []).append(pattern)
    body = "|".join(f"(?P<{kind}>{'|'.join(patterns)})" for kind, patterns in grouped.items())
    return re.compile(rf"\b(?:{body})\b")


_CUES = _cue_regex(_CUE_ALTERNATIVES)

_CLAUSE_BREAK = (
    r"[;:]|\b(?:but|however|although|though|whereas|while|yet|except|apart from|aside from|which|who|whose"
    r"|with|is|are|was|were|has|have|had)\b|\band (?:there|the|this|these|those|it|its|a|an)\b"
)
_BREAK = re.compile(_CLAUSE_BREAK)
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_WORD_OR_COMMA = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|,")


@dataclass(frozen=True)
class _Scope:
    """Which stage a cue kind belongs to (1 and 3 uncertain, 2 negated) and how many words it reaches
    forward (commas count as words when ``tight``)."""

    stage: int
    window: int
    tight: bool = False
    cardiac_only: bool = False


_SCOPES: dict[str, _Scope] = {
    "u1": _Scope(1, 10),
    "neg": _Scope(2, 12),
    "neg_near": _Scope(2, 5),
    "neg_adj": _Scope(2, 3, tight=True),
    "unc_near": _Scope(3, 3),
    "unc": _Scope(3, 8),
    "unc_cardiac": _Scope(3, 3, tight=True, cardiac_only=True),
}

# Predicates after the mention: "X [size] [in the left base] [, Y and Z] is/are [again] <predicate>". Words
# between the mention and the predicate need a copula after them, unless they are "and"/"or" plus a few words
# ("heart size and vascularity normal"); "and the ..." and "and there ..." start a new clause.
_STOP = (r"(?:is|are|was|were|be|been|has|have|had|with|without|no|not|may|might|could|can|cannot|which|but"
         r"|appears?|remains?|normal|unremarkable|within|there|it|and|or)\b")
_ITEM = rf"\s+(?!{_STOP})[a-z0-9][a-z0-9-]*"
_JOIN = r"\s*,|\s+(?:and|or)(?!\s+(?:the|there|this|these|those|it|its|a|an)\b)"
_NOUN = r"(?:size|sizes|contours?|silhouettes?|configuration|shadow)"
_COP = r"(?:is|are|was|were|appears?|appeared|remains?|remained|seems?|looks?|has|have|had)"
_ADV = (r"(?:now|otherwise|again|still|also|overall|grossly|essentially|currently|largely|been|since"
        r"|subsequently|stable|unchanged|and|entirely|completely|become|becomes|became|a|xxxx)")
_LIST = rf"(?:{_JOIN}|{_ITEM}){{1,10}}"
_SHORT_LIST = rf"\s+(?:and|or)(?:{_ITEM}){{1,4}}"
_POST_PREFIX = (rf"^(?:\s+{_NOUN}){{0,2}}"
                rf"(?:{_LIST}(?:\s+{_COP}){{1,2}}|(?:{_SHORT_LIST})?(?:\s+{_COP}){{0,2}})"
                rf"(?:\s+{_ADV}){{0,3}}\s+")


def _post(predicate: str) -> re.Pattern[str]:
    return re.compile(f"{_POST_PREFIX}(?:{predicate})\\b")


_SEEN = (r"seen|identified|visualized|visualised|demonstrated|present|evident|enlarged|detected|noted"
         r"|observed|apparent|shown|visible|dilated|widened|increased|identifiable|appreciable")
_NOT_ADV = r"(?:(?:definitely|definitively|currently|now|significantly|convincingly|grossly|again) )?"
_POST_U1 = _post(r"(?:can ?not|could not|may not|not)"
                 r"(?: (?:be|been|entirely|completely|definitely|definitively|totally|fully))*"
                 r" (?:excluded|ruled out)")
_POST_NEG = _post(
    r"(?:of )?normal|unremarkable|within (?:the )?(?:normal )?(?:limits|range)|within limits of normal"
    r"|(?:(?:at|near|on|within) )?(?:the )?(?:upper|top|high)[- ]"
    r"(?:(?:limits?|range|end|border) )?(?:of )?normal"
    r"|absent|resolved|resolving|cleared|removed|withdrawn|gone|no longer [a-z]+"
    r"|previously (?:demonstrated|visualized|visualised)"
    rf"|(?:not|no) {_NOT_ADV}(?:{_SEEN})"
)
_POST_U3 = _post(
    r"suspected|possible|questionable|less likely|not appreciated|obscured|obscuring|obscures"
    r"|not (?:well|clearly) (?:seen|visualized|visualised|evaluated|assessed|demonstrated|delineated)"
    r"|(?:poorly|incompletely) (?:seen|visualized|visualised|evaluated|assessed)"
    r"|(?:may|might|could|can|possibly) (?:also )?(?:be (?:present|seen|visualized|identified)|appear"
    r"|have (?:this|a similar|similar) appearance)"
)
_POST_U3_CARDIAC = _post(r"stable|unchanged|not (?:significantly )?changed|similar|borderline")
_POST_ALTERNATIVE = re.compile(rf"^(?:\s*,?{_ITEM}){{0,2}}\s*,?\s+(?:or|versus|vs)\b")


# ---------------------------------------------------------------------------------------- classification


@dataclass(frozen=True)
class _Cue:
    kind: str
    start: int
    end: int


def find_cues(sentence: str) -> list[_Cue]:
    """Negation and uncertainty cues in one cleaned sentence, left to right."""
    return [_Cue(m.lastgroup or "", m.start(), m.end()) for m in _CUES.finditer(sentence)
            if m.lastgroup != "skip"]


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "-"


def _word_span(sentence: str, start: int, end: int) -> tuple[int, int]:
    """Grow a phrase match (possibly inside a word: "atelecta", "opaci") to whole words."""
    while start < end and sentence[start] == " ":
        start += 1
    while end > start and sentence[end - 1] == " ":
        end -= 1
    while start > 0 and _is_word_char(sentence[start - 1]):
        start -= 1
    while end < len(sentence) and _is_word_char(sentence[end]):
        end += 1
    return start, end


def _cue_reaches(sentence: str, cue: _Cue, scope: _Scope, start: int, end: int) -> bool:
    """Does ``cue`` reach the mention ``sentence[start:end]``? The boundary check sees the mention too
    ("no effusion and *the heart* is enlarged")."""
    if cue.end > start:
        return False
    words = (_WORD_OR_COMMA if scope.tight else _WORD).findall(sentence, cue.end, start)
    return len(words) <= scope.window and not _BREAK.search(sentence, cue.end, end)


def _pre_cue(sentence: str, cues: Sequence[_Cue], span: tuple[int, int], stage: int,
             cardiac: bool) -> str | None:
    """The first cue of ``stage`` that reaches the mention at ``span``, or None."""
    for cue in cues:
        scope = _SCOPES[cue.kind]
        if scope.stage != stage or (scope.cardiac_only and not cardiac):
            continue
        if _cue_reaches(sentence, cue, scope, *span):
            return sentence[cue.start:cue.end]
    return None


def classify_mention(sentence: str, start: int, end: int, phrase: str,
                     cues: Sequence[_Cue] | None = None) -> tuple[int, str]:
    """Label one mention (``sentence[start:end]`` matched ``phrase``) and say which rule decided.

    Returns ``(label, reason)``; the label is UNCERTAIN, NEGATIVE or POSITIVE.
    """
    if cues is None:
        cues = find_cues(sentence)
    start, end = _word_span(sentence, start, end)
    after = sentence[end:]
    cardiac = bool(_CARDIAC_HEAD.search(phrase))
    stages = (
        (UNCERTAIN, 1, (_POST_U1,)),
        (NEGATIVE, 2, (_POST_NEG,)),
        (UNCERTAIN, 3, (_POST_U3, _POST_ALTERNATIVE) + ((_POST_U3_CARDIAC,) if cardiac else ())),
    )
    for label, stage, post_patterns in stages:
        cue = _pre_cue(sentence, cues, (start, end), stage, cardiac)
        if cue is not None:
            return label, f"stage {stage}: '{cue}' before"
        for pattern in post_patterns:
            match = pattern.match(after)
            if match:
                return label, f"stage {stage}: '{match.group().strip()}' after"
    if phrase in _DEFAULT_UNCERTAIN_PHRASES:
        return UNCERTAIN, "stage 3: uncertain phrase"
    return POSITIVE, "no cue"


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
        cue_cache: dict[int, list[_Cue]] = {}
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
                found.append(self._classify(text, spans[index], index, observation, start, end, cue_cache))
        return found

    @staticmethod
    def _classify(text: str, span: tuple[int, int], index: int, observation: str, start: int, end: int,
                  cue_cache: dict[int, list[_Cue]]) -> Mention:
        sentence = text[span[0]:span[1]]
        if index not in cue_cache:
            cue_cache[index] = find_cues(sentence)
        phrase = text[start:end]
        label, reason = classify_mention(sentence, start - span[0], end - span[0], phrase, cue_cache[index])
        return Mention(observation, phrase, sentence.strip(), label, reason)
