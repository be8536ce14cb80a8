"""The negation / uncertainty context of one mention for ``chexpert-rules``: cue tables, their reach, the
predicates after a mention, and whether a cardiac phrase states an enlargement.

The original CheXpert labeler (stanfordmlgroup/chexpert-labeler, built on NegBio) decides with Semgrex patterns
over a dependency parse (``chexpert_data/chexpert_labeler/patterns``). This module approximates them with
regular expressions over one cleaned sentence:

* cues *before* the mention ("no", "without", "free of", "may", "possible", "normal", "prior" ...) that reach
  it when at most ``window`` words lie between them and no clause boundary does ("but", "however", "although",
  ";", "with", a copula, "and there" ...). A cue that heads a list reaches every conjunct: "no pleural line to
  suggest pneumothorax or costophrenic blunting to suggest large pleural effusion", "may represent
  atelectasis versus mild edema or an infectious process" (only the words before the first coordinator and
  those of the mention's own conjunct are counted, when the conjuncts between are short);
* predicates *after* the mention ("X is normal", "X and Y are within normal limits", "X has resolved",
  "X cannot be excluded", "X is not well seen", "X would be a consideration").

The stages run in the original order: pre-negation uncertainty, negation, post-negation uncertainty; a mention
that matches none is positive. Where the rules depart from the CheXpert patterns, on purpose:

* "X or Y" and "X versus Y" alone do not make X uncertain (CheXpert's ``conj:or`` / ``conj:versus`` rules):
  a differential names findings the reader sees ("bibasilar atelectasis or scarring"); NegBio has no such
  rule, and the human OpenI labels (tests/labeler_eval.py) mark such mentions present. A hedge before the
  list still covers it ("may represent atelectasis or scarring" -> both uncertain);
* "borderline heart size" is positive, an enlargement statement (the original has an uncertainty pattern
  for it; the human OpenI labels mark it present); "stable" / "unchanged" / "similar" leave a cardiac size
  open only when the sentence states no enlargement ("stable heart size" -1, "stable enlarged heart" 1);
* "resolving X", "X is resolving", "partially / almost completely resolved X" still describe X;
* "prior / previous / old / healed / sequelae of / residuals of" X is past, for acute processes only
  (pneumonia, edema, effusion ...: "residuals of prior granulomatous infection"), not for "old rib
  fractures";
* "evaluation for X (is limited)" and "X ... is another consideration" are uncertain;
* "considering technical factors" and "partially resolved" are not cues.

medspaCy's ConText (with its bundled rules) was weighed as a replacement and not adopted: on Python 3.11 it
pins spacy < 3.8 and so numpy < 2 (the project runs numpy 2), and its general clinical rules know none of the
radiology predicates above ("heart size is normal", "X has resolved"). The rules' own figures (macro-F1 and
per-observation F1 on the NegBio OpenI development half) are printed by
``pytest -s tests/test_labeler_gold.py``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1
_CARDIOMEGALY = "Cardiomegaly"

_DEFAULT_UNCERTAIN_PHRASES = frozenset(
    {"vascular congestion", "pulmonary congestion", "indistinctness", "vascular prominence"}
)
_TRANSIENT = frozenset({"Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion"})
"""Acute processes: "prior pneumonia" is past, where "old fracture" or "prior granuloma" is still there."""
_CARDIAC_HEAD = re.compile(
    r"cardiomediastinal|pericardial|mediastinal|mediastinum|cardiomediastinum|contour|configuration"
    r"|silhouette|size|heart|shadow"
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
    ("skip", r"(?:considering|accounting for|given|allowing for) (?:the )?(?:technical factors|technique)"),
    ("skip", r"(?:partially|partly|incompletely|almost|nearly|not (?:yet )?(?:completely|fully|entirely))"
             r"(?: (?:completely|fully|entirely))? (?:resolved|cleared|removed)"),
    # negation with a short reach: resolution of / removal of / history of / rather than ...
    ("neg_near", r"(?:interval )?resolution of|resolved|(?:interval )?removal of|removed"),
    ("neg_near", r"history of|hx of|disappearance of|drainage of|clearing of|cleared|no longer"),
    ("neg_near", r"(?:to )?exclude[ds]?|excluding|rather than|instead of"),
    ("neg_near", r"normal limits (?:for|of|in)|(?:normal|unremarkable) appearance of|normal size (?:of|and)"),
    # negation: no / not / without / free of / negative for / clear of / rule out
    ("neg", r"no|not|without|neither|nor|negative for|free of|clear of|absence of|absent"),
    ("neg", r"rule[ds]? out|r or o"),
    # normal / unremarkable XXX: only the next few words
    ("neg_adj", r"normal|unremarkable"),
    # post-negation uncertainty with a short reach: secondary to XXX, less likely XXX, favor XXX ...
    ("unc_near", r"secondary to|less likely"),
    ("unc_near", r"favou?r|favou?red|favou?ring|consider|considered|considering"),
    ("unc_near", r"(?:is|are|be|was|were) compatible with"),
    # evaluation for XXX (is limited) / to assess for XXX: a question asked, not a finding
    ("unc_near", r"(?:evaluat(?:e|ed|ion|ing)|assess(?:ed|ment|ing)?) for"),
    # post-negation uncertainty: may / possible / suspicious for / concern for / differential / question ...
    ("unc", r"question of|suggestion of|question|questioned"),
    ("unc", r"may|might|could|would|maybe|possible|possibly|presumably|presumed|probable|questionable"),
    ("unc", r"suspect|suspected|suspicious|suspicion|concern|concerning|worrisome|differential|correlate"),
    ("unc", r"correlation"),
    # stable / unchanged heart, silhouette, contour, size ... (when no enlargement is stated)
    ("unc_cardiac", r"stable|unchanged|similar"),
    # prior / old / healed XXX: a past acute process (pneumonia, effusion ...), not a current one
    ("hist", r"(?:prior|previous|old|remote|healed)(?! (?:study|studies|exam|exams|examination|examinations"
             r"|radiograph|radiographs|film|films|images?|imaging|ct|comparison|to|with|from|for))"
             r"|sequelae of|residua of|residuals of"),
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
_COORDINATOR = re.compile(r",|\b(?:or|nor|and|versus|vs)\b")
_CONJUNCT_WORDS = 6
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_WORD_OR_COMMA = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|,")


@dataclass(frozen=True)
class _Scope:
    """Which stage a cue kind belongs to (1 and 3 uncertain, 2 negated) and how many words it reaches
    forward: commas count as words when ``tight`` and end the reach when ``comma_stops``; ``only`` names the
    one mention class ("cardiac", "transient") the cue applies to, None for all mentions."""

    stage: int
    window: int
    tight: bool = False
    only: str | None = None
    comma_stops: bool = False


_SCOPES: dict[str, _Scope] = {
    "u1": _Scope(1, 10),
    "neg": _Scope(2, 12),
    "neg_near": _Scope(2, 5),
    "neg_adj": _Scope(2, 3, tight=True),
    "unc_near": _Scope(3, 3),
    "unc": _Scope(3, 8),
    "unc_cardiac": _Scope(3, 3, tight=True, only="cardiac"),
    "hist": _Scope(2, 3, only="transient", comma_stops=True),
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
_LIST = rf"(?:{_JOIN}|{_ITEM}){{1,14}}"
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
    r"|absent|resolved|cleared|removed|withdrawn|gone|no longer [a-z]+"
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
_POST_U3_CARDIAC = _post(r"stable|unchanged|not (?:significantly )?changed|similar")
_POST_CONSIDERATION = re.compile(
    r"^[^,;:]*?\b(?:is|are|would be|could be|remains?|remained) (?:also )?(?:an? |another |the )?"
    r"(?:other |additional |main |primary |diagnostic |differential )?(?:consideration|possibility)\b"
)


# ------------------------------------------------------------------------------------ cardiac references

_CARDIAC_FINDING = {"cardiomegaly", "cardiac enlargement", "enlarged heart"}
_ENLARGEMENT = re.compile(
    r"\b(?:enlarg\w*|large|larger|big|bigger|prominent|prominence|increased?|borderline|cardiomegaly"
    r"|dilated|dilatation|globular|massive)\b"
)
_ENLARGEMENT_BEFORE = 4
_ENLARGEMENT_AFTER = re.compile(r"[^,;:]*?(?=\b(?:but|however|although|whereas|while|and there)\b|[,;:]|$)")


def states_enlargement(sentence: str, start: int, end: int) -> bool:
    """Does the sentence call the structure at ``sentence[start:end]`` enlarged: an enlargement word
    ("enlarged", "large", "prominent", "borderline" ...) among the few words before it, or in the rest of its
    clause after it?"""
    before = " ".join(_WORD.findall(sentence, 0, start)[-_ENLARGEMENT_BEFORE:])
    if _ENLARGEMENT.search(before):
        return True
    clause = _ENLARGEMENT_AFTER.match(sentence, end)
    return bool(clause and _ENLARGEMENT.search(clause.group()))


def bare_cardiac_reference(sentence: str, start: int, end: int, phrase: str, observation: str) -> bool:
    """A Cardiomegaly mention "the heart", "heart size", "cardiac silhouette" ... (``sentence[start:end]``
    matched ``phrase``) with no statement of its size ("the heart and lungs have changed", "posterior to the
    heart"): a reference to the heart, not a finding."""
    if observation != _CARDIOMEGALY or phrase.strip() in _CARDIAC_FINDING:
        return False
    return not states_enlargement(sentence, *word_span(sentence, start, end))


# ---------------------------------------------------------------------------------------- classification


@dataclass(frozen=True)
class Cue:
    kind: str
    start: int
    end: int


def find_cues(sentence: str) -> list[Cue]:
    """Negation and uncertainty cues in one cleaned sentence, left to right."""
    return [Cue(m.lastgroup or "", m.start(), m.end()) for m in _CUES.finditer(sentence)
            if m.lastgroup != "skip"]


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "-"


def word_span(sentence: str, start: int, end: int) -> tuple[int, int]:
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


def _cue_reaches(sentence: str, cue: Cue, scope: _Scope, start: int, end: int) -> bool:
    """Does ``cue`` reach the mention ``sentence[start:end]``? The boundary check sees the mention too
    ("no effusion and *the heart* is enlarged")."""
    if cue.end > start:
        return False
    if _BREAK.search(sentence, cue.end, end) or (scope.comma_stops and "," in sentence[cue.end:start]):
        return False
    if scope.tight:
        return len(_WORD_OR_COMMA.findall(sentence, cue.end, start)) <= scope.window
    return _list_distance(sentence, cue.end, start) <= scope.window


def _list_distance(sentence: str, start: int, end: int) -> int:
    """Words from a cue to a mention, where a cue reaches every conjunct of a list it heads ("may represent
    atelectasis versus mild edema or an infectious process"): the words before the first coordinator plus
    those of the last conjunct, when the conjuncts between are short noun phrases; else all the words."""
    parts = _COORDINATOR.split(sentence[start:end])
    counts = [len(_WORD.findall(part)) for part in parts]
    if len(parts) > 2 and max(counts[1:-1]) > _CONJUNCT_WORDS:
        return sum(counts)
    return counts[0] + counts[-1] if len(parts) > 1 else counts[0]


def _pre_cue(sentence: str, cues: Sequence[Cue], span: tuple[int, int], stage: int,
             classes: frozenset[str]) -> str | None:
    """The first cue of ``stage`` that reaches the mention at ``span`` (of mention ``classes``), or None."""
    for cue in cues:
        scope = _SCOPES[cue.kind]
        if scope.stage != stage or (scope.only is not None and scope.only not in classes):
            continue
        if _cue_reaches(sentence, cue, scope, *span):
            return sentence[cue.start:cue.end]
    return None


def classify_mention(sentence: str, start: int, end: int, phrase: str,
                     cues: Sequence[Cue] | None = None, observation: str | None = None) -> tuple[int, str]:
    """Label one mention (``sentence[start:end]`` matched ``phrase``, of ``observation`` when known) and say
    which rule decided.

    Returns ``(label, reason)``; the label is UNCERTAIN, NEGATIVE or POSITIVE.
    """
    if cues is None:
        cues = find_cues(sentence)
    start, end = word_span(sentence, start, end)
    after = sentence[end:]
    # stable / unchanged / similar leave a cardiac size open, unless the sentence states an enlargement
    cardiac = bool(_CARDIAC_HEAD.search(phrase)) and not states_enlargement(sentence, start, end)
    classes = frozenset({"cardiac"} if cardiac else ()) | frozenset(
        {"transient"} if observation in _TRANSIENT else ())
    stages = (
        (UNCERTAIN, 1, (_POST_U1,)),
        (NEGATIVE, 2, (_POST_NEG,)),
        (UNCERTAIN, 3, (_POST_U3, _POST_CONSIDERATION) + ((_POST_U3_CARDIAC,) if cardiac else ())),
    )
    for label, stage, post_patterns in stages:
        cue = _pre_cue(sentence, cues, (start, end), stage, classes)
        if cue is not None:
            return label, f"stage {stage}: '{cue}' before"
        for pattern in post_patterns:
            match = pattern.match(after)
            if match:
                return label, f"stage {stage}: '{match.group().strip()}' after"
    if phrase in _DEFAULT_UNCERTAIN_PHRASES:
        return UNCERTAIN, "stage 3: uncertain phrase"
    return POSITIVE, "no cue"
