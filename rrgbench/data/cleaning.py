"""Report cleaning: a faithful re-implementation of R2Gen's two report cleaners, quirks included.

Published IU X-Ray and MIMIC-CXR numbers (R2Gen, R2GenCMN and most of their descendants) are computed on
reports cleaned this way, so ``clean_report`` reproduces that behaviour exactly rather than "fixing" it.

The pipeline for both styles is:

1. *Report-level replacements*, applied one after another with ``str.replace`` (left to right,
   non-overlapping, so a fixed number of passes only shrinks runs of a character part of the way):

   - ``mimic-cxr`` only: newline -> space, then ``"__" -> "_"`` 7 times, then two spaces -> one 6 times.
   - ``".." -> "."``: 3 passes for ``iu-xray``, 8 passes for ``mimic-cxr``.
   - numbered lists: ``"1. "`` is deleted *anywhere* (so ``"T11. "`` becomes ``"T1"``), then
     ``". N. " -> ". "`` and then ``" N. " -> ". "`` for N = 2..5.

2. Strip, lowercase, and split into sentences on the exact string ``". "`` (a period at the very end
   stays attached to the last sentence; ``".\\n"`` or ``".  "`` variants behave differently).

3. *Sentence cleaning*: delete ``"``, ``/``, ``\\``, ``'``; strip; lowercase; then delete every character of
   R2Gen's class ``[.,?;*!%^&_+():-\\[\\]{}]``. In that class ``:-\\[`` is a *range* from ``:`` to ``[``,
   so it also deletes ``< = > @`` (and ``A``-``Z``, already lowercased), while the hyphen itself is
   *kept* (``"x-XXXX"`` stays ``"x-xxxx"``). Decimal points vanish (``"1.5 cm"`` -> ``"15 cm"``).
   Because the strip happens *before* the deletion, deleted characters next to spaces leave double or
   trailing spaces inside a sentence (``"normal , clear"`` -> ``"normal  clear"``).

4. R2Gen's sentence filter compares each cleaned sentence (a string) with ``[]`` (a list), which is
   never equal, so *no sentence is ever dropped*: empty sentences survive as empty strings.

5. Sentences are joined with ``" . "`` and ``" ."`` is appended. An empty report becomes ``" ."``.

Cleaning is *not* idempotent: re-cleaning ``"a . b ."`` yields ``"a . b  ."`` (the final ``" ."`` loses
its period to the deletion and gains a new ``" ."``), one more space per pass.

The text R2Gen *scores* is not the cleaned string itself: its tokenizer splits the cleaned report on
whitespace and its decoder joins the tokens with single spaces, so the double spaces above never reach
the metrics. ``r2gen_text`` is that string (``fold_whitespace`` of the cleaned report); R2Gen's vocabulary
mapping (``<unk>``) and reference truncation are not applied.
"""

from __future__ import annotations

from rrgbench.errors import ConfigError, did_you_mean

CLEANING_STYLES = ("iu-xray", "mimic-cxr")

_NUMBERING_FIXES: tuple[tuple[str, str], ...] = (
    ("1. ", ""),
    *((f". {n}. ", ". ") for n in range(2, 6)),
    *((f" {n}. ", ". ") for n in range(2, 6)),
)

_REPORT_FIXES: dict[str, tuple[tuple[str, str], ...]] = {
    "iu-xray": (("..", "."),) * 3 + _NUMBERING_FIXES,
    "mimic-cxr": (("\n", " "),)
    + (("__", "_"),) * 7
    + (("  ", " "),) * 6
    + (("..", "."),) * 8
    + _NUMBERING_FIXES,
}

_PRE_STRIP_DELETIONS = str.maketrans("", "", "\"/\\'")
_RANGE_COLON_TO_BRACKET = "".join(chr(code) for code in range(ord(":"), ord("[") + 1))
_POST_STRIP_DELETIONS = str.maketrans("", "", ".,?;*!%^&_+()" + _RANGE_COLON_TO_BRACKET + "]{}")


def check_style(style: str) -> str:
    """Return ``style`` if it is a known cleaning style, else raise a ConfigError listing the valid ones."""
    if style not in CLEANING_STYLES:
        valid = ", ".join(f"'{s}'" for s in CLEANING_STYLES)
        raise ConfigError(
            f"unknown report cleaning style {style!r}{did_you_mean(str(style), CLEANING_STYLES)}; "
            f"valid styles: {valid}"
        )
    return style


def _apply_report_fixes(text: str, style: str) -> str:
    for old, new in _REPORT_FIXES[style]:
        text = text.replace(old, new)
    return text


def _clean_sentence(sentence: str) -> str:
    sentence = sentence.translate(_PRE_STRIP_DELETIONS).strip().lower()
    return sentence.translate(_POST_STRIP_DELETIONS)


def clean_report(text: str, style: str) -> str:
    """Clean one report exactly as R2Gen does for ``style`` (``"iu-xray"`` or ``"mimic-cxr"``).

    See the module docstring for the exact steps and their quirks. The result may contain runs of
    spaces; ``result.split()`` gives R2Gen's tokens.
    """
    check_style(style)
    sentences = _apply_report_fixes(text, style).strip().lower().split(". ")
    return " . ".join(_clean_sentence(s) for s in sentences) + " ."


def fold_whitespace(text: str) -> str:
    """Fold every run of whitespace (spaces, tabs, newlines) to one space and strip the ends."""
    return " ".join(text.split())


def r2gen_text(text: str, style: str) -> str:
    """The string R2Gen scores for a report: ``clean_report``'s whitespace tokens joined by single spaces."""
    return fold_whitespace(clean_report(text, style))
