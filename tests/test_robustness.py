"""Property-based robustness: report cleaning, the tokenizer and annotation parsing never crash on any input.

The only failures allowed are the documented ones: ``DataError`` for bad data, ``ConfigError`` for a bad
setting. (The kill-and-resume test is in test_resume.py, the malicious checkpoint in test_checkpoint.py.)
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rrgbench.data.annotation import read_annotation
from rrgbench.data.cleaning import CLEANING_STYLES, clean_report
from rrgbench.data.studies import SPLITS
from rrgbench.data.tokenizer import Tokenizer
from rrgbench.errors import ConfigError, DataError

STYLES = st.sampled_from(CLEANING_STYLES)
# report-like text: radiology punctuation, digits, numbered lists, newlines, and arbitrary unicode
REPORT_CHARS = st.one_of(st.sampled_from(list("abcXYZ .,;:-_()[]{}/\\'\"?!*%^&+<>=@\n\t0123456789")),
                         st.characters())
REPORTS = st.text(REPORT_CHARS, max_size=200)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- report cleaning --------------------------------------------------------------------------------
@FAST
@given(REPORTS, STYLES)
def test_clean_report_total_and_shaped_like_r2gen(text, style):
    cleaned = clean_report(text, style)
    assert isinstance(cleaned, str) and cleaned.endswith(" .")
    assert cleaned == cleaned.lower() or not cleaned.isascii()  # R2Gen lowercases (unicode may not fold)
    for char in "\"/\\',?;*!%^&_+():<=>@[]{}":
        assert char not in cleaned, char


@FAST
@given(REPORTS, st.text(max_size=12).filter(lambda s: s not in CLEANING_STYLES))
def test_unknown_style_is_a_config_error(text, style):
    try:
        clean_report(text, style)
    except ConfigError as exc:
        assert "style" in str(exc)
    else:  # pragma: no cover - the property
        raise AssertionError("an unknown style was accepted")


# -- the tokenizer ----------------------------------------------------------------------------------
@FAST
@given(st.lists(REPORTS, min_size=1, max_size=6), STYLES, st.integers(min_value=1, max_value=3))
def test_tokenizer_round_trip(reports, style, threshold):
    tokenizer = Tokenizer.build(reports, threshold, style)
    assert Tokenizer.from_dict(json.loads(json.dumps(tokenizer.to_dict()))) == tokenizer
    for report in reports:
        ids = tokenizer.encode(report)
        words = clean_report(report, style).split()
        assert len(ids) == len(words)
        expected = [w if tokenizer.token_to_id(w) != tokenizer.unk_id else "<unk>" for w in words]
        assert tokenizer.decode(ids) == " ".join(expected)
        if threshold == 1:  # every training word is in the vocabulary
            assert tokenizer.decode(ids) == " ".join(words)
        assert all(0 <= i < len(tokenizer) for i in ids)


@FAST
@given(st.lists(st.integers(min_value=-5, max_value=50), max_size=30))
def test_decode_of_arbitrary_ids_is_text_or_value_error(ids):
    tokenizer = Tokenizer.build(["lungs are clear .", "heart size normal ."], 1, "iu-xray")
    try:
        text = tokenizer.decode(ids)
    except ValueError as exc:
        assert "out of range" in str(exc)
    else:
        assert isinstance(text, str) and "<eos>" not in text.split()


@FAST
@given(JSON)
def test_vocabulary_from_arbitrary_json_is_a_data_error(data):
    """Arbitrary JSON is almost never a vocabulary: it is refused with a one-line DataError naming the problem,
    and whatever is accepted round-trips exactly."""
    try:
        tokenizer = Tokenizer.from_dict(data)
    except DataError as exc:
        assert "vocabulary" in str(exc) and "\n" not in str(exc)
    else:
        assert tokenizer.to_dict() == data


@FAST
@given(st.sampled_from(["version", "words", "threshold", "style", "special_tokens"]), JSON)
def test_a_valid_vocabulary_with_one_field_broken_is_refused(field, value):
    good = Tokenizer.build(["lungs are clear .", "heart size normal ."], 1, "iu-xray").to_dict()
    broken = {**good, field: value}
    try:
        Tokenizer.from_dict(broken)
    except DataError as exc:
        assert "vocabulary" in str(exc)
    else:
        assert broken[field] == good[field] or Tokenizer.from_dict(broken).to_dict()[field] == value


# -- annotation parsing -----------------------------------------------------------------------------
def _parse(content: str | bytes):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "annotation.json"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        try:
            return read_annotation(path)
        except (DataError, ConfigError) as exc:
            assert str(exc) and "\n" not in str(exc).strip()
            return None


@FAST
@given(JSON)
def test_annotation_from_arbitrary_json(data):
    """Arbitrary JSON is refused with one line naming the file (it is never an annotation: no split keys)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "annotation.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        try:
            read_annotation(path)
        except DataError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
        else:
            assert isinstance(data, dict) and {"train", "val", "test"} <= set(data)


@FAST
@given(st.binary(max_size=200))
def test_annotation_from_arbitrary_bytes(raw):
    """Bytes that are not UTF-8 JSON name the file and say what is wrong (encoding, or line and column)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "annotation.json"
        path.write_bytes(raw)
        try:
            read_annotation(path)
        except DataError as exc:
            message = str(exc)
            assert str(path) in message and "\n" not in message
            assert any(word in message for word in ("UTF-8", "malformed JSON", "split", "object", "empty"))
        else:
            assert {"train", "val", "test"} <= set(json.loads(raw))


ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=10), JSON),
        "report": st.one_of(REPORTS, JSON),
        "image_path": st.one_of(st.lists(st.text(max_size=10), max_size=3), JSON),
        "split": st.one_of(st.sampled_from(SPLITS), JSON),
        "study_id": JSON,
    },
)
ANNOTATION = st.dictionaries(st.one_of(st.sampled_from(SPLITS), st.text(max_size=8)),
                             st.one_of(st.lists(ENTRY, max_size=3), JSON), max_size=4)


@FAST
@given(ANNOTATION)
def test_annotation_near_the_r2gen_format(data):
    parsed = _parse(json.dumps(data))
    if parsed is not None:  # accepted: exactly the entries given, typed as documented
        for split, studies in parsed.items():
            assert split in SPLITS and len(studies) == len(data[split])
            for study in studies:
                assert isinstance(study.id, str) and isinstance(study.report, str)
                assert all(isinstance(p, str) for p in study.image_paths)
