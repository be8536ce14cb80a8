"""Report cleaning (R2Gen-exact, checked on real IU X-Ray reports) and the word tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rrgbench.data import CLEANING_STYLES, Tokenizer, clean_report
from rrgbench.data.cleaning import r2gen_text
from rrgbench.errors import ConfigError, DataError

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
ANNOTATION = REAL / "iu_xray_r2gen" / "annotation.json"


@pytest.fixture(scope="module")
def annotation() -> dict[str, list[dict]]:
    assert ANNOTATION.is_file(), f"real IU X-Ray annotation missing: {ANNOTATION}"
    return json.loads(ANNOTATION.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def reports(annotation: dict[str, list[dict]]) -> dict[str, str]:
    return {entry["id"]: entry["report"] for split in annotation.values() for entry in split}


@pytest.fixture(scope="module")
def train_reports(annotation: dict[str, list[dict]]) -> list[str]:
    return [entry["report"] for entry in annotation["train"]]


@pytest.fixture(scope="module")
def tokenizer(train_reports: list[str]) -> Tokenizer:
    return Tokenizer.build(train_reports, threshold=3, style="iu-xray")


# Expected outputs derived by hand from R2Gen's clean_report_iu_xray, step by step.
REAL_CASES = {
    # Plain report: lowercase, split on ". ", rejoin with " . ", trailing " .".
    "CXR2384_IM-0942": (
        "the heart size and pulmonary vascularity appear within normal limits . a large hiatal hernia is "
        "noted . the lungs are free of focal airspace disease . no pneumothorax or pleural effusion is seen "
        ". degenerative changes are present in the spine ."
    ),
    # Numbered list: "1. " deleted, ". N. " -> ". "; "/" deleted ("and/or" -> "andor").
    "CXR3260_IM-1547": (
        "cardiomegaly andor pericardial effusion . right base opacity xxxx combination of pleural effusion "
        "and atelectasisairspace disease . cannot exclude elevation right hemidiaphragm . left lung "
        "relatively clear . limited exam due to underpenetrated technique related to large patient habitus "
        ". no evidence of pneumothorax ."
    ),
    # "body of L1. A CT": "1. " is deleted anywhere -> "la ct"; the hyphen in "L1-L2" is kept.
    "CXR3038_IM-1411": (
        "the heart and mediastinum are unremarkable . there is a calcified granuloma within the left upper "
        "lobe . the lungs are clear without infiltrate . there is no effusion or pneumothorax . there are "
        "acute mild anterior xxxx deformities identified at l1-l2 . there is retropulsion of the posterior "
        "vertebral body of la ct of the lumbar spine was already ordered at the time of this dictation ."
    ),
    # "right rib 4. The": " 4. " -> ". " swallows the rib number.
    "CXR3498_IM-1702": (
        "chest . a minimally displaced fracture is present on right rib . the small amount of pleural fluid "
        "is xxxx deep to the fracture . no pleural air collection . both lungs clear and expanded . heart "
        "and mediastinum normal . note xxxx of a levoscoliosis of the thoracolumbar spine . right shoulder "
        ". xxxx soft tissues and alignment are normal . right humerus . xxxx and soft tissues are intact ."
    ),
    # "<BR>": "<" and ">" fall in the ":-[" range and are deleted; ".H" (no space) is not a sentence break.
    "CXR2192_IM-0802": (
        "no focal lung consolidation . no pneumothorax or pleural effusionheart size and pulmonary "
        "vascularity are within normal limitsminimal degenerative changes of the thoracic spine . the "
        "previouslybrdescribed xxxx deformity in the midthoracic spine is again seen . there is subcutaneous "
        "shunt catheter tubing along the anterior chest wall ."
    ),
    # "[...>]" brackets and ">" deleted; commas deleted.
    "CXR2542_IM-1053": (
        "the xxxx examination consists of frontal and lateral radiographs of the chest . the "
        "cardiomediastinal contours are within normal limits . pulmonary vascularity is within normal "
        "limits . no focal consolidation pleural effusion or pneumothorax identified . the visualized "
        "osseous structures and upper abdomen are unremarkable ."
    ),
    # Decimal points are deleted: "3.7 cm" -> "37 cm", "5.9 cm" -> "59 cm"; "air-filled" keeps its hyphen.
    "CXR688_IM-2256": (
        "kub . centered over the mid abdomen there are multiple air-filled dilated loops of small bowel "
        "measuring the xxxx of which measure up to about 37 cm in diameter . there is also an extremely "
        "dilated xxxx in the same region which measures 59 cm in diameter . there is extensive soft tissue "
        "pannus . prior abdominal surgery . chest . there is xxxx left basilar opacity . no visualized "
        "pneumothorax . the heart size is normal . there is mild elevation of the left hemidiaphragm . "
        "there are no large pleural effusions . there is thickening of the fissure ."
    ),
    # Trailing ". ." leaves an empty last sentence, which R2Gen's no-op filter keeps: ".  ." at the end.
    "CXR3487_IM-1696": (
        "the lungs and pleural spaces show no acute abnormality . heart size and pulmonary vascularity "
        "within normal limits .  ."
    ),
    # "effusion.. Cardio": ".." -> "."; ", " -> " ".
    "CXR1647_IM-0424": (
        "the lungs are clear bilaterally . specifically no evidence of focal consolidation pneumothorax or "
        "pleural effusion . cardio mediastinal silhouette is unremarkable . visualized osseous structures "
        "of the thorax are without acute abnormality ."
    ),
    # Apostrophe deleted ("there's" -> "theres").
    "CXR1072_IM-0052-1001": (
        "the heart and mediastinal contours are stable . aorta is calcified and tortuous compatible with "
        "atherosclerotic disease . since the prior study theres been interval development of left lower "
        "lobe airspace disease . the right lung is clear ."
    ),
}


@pytest.mark.parametrize("study_id", sorted(REAL_CASES))
def test_iu_cleaning_matches_r2gen_on_real_reports(reports: dict[str, str], study_id: str) -> None:
    assert clean_report(reports[study_id], "iu-xray") == REAL_CASES[study_id]


def test_iu_keeps_double_spaces_but_mimic_collapses_them(reports: dict[str, str]) -> None:
    report = reports["CXR1600_IM-0390"]
    assert "consolidation.  No" in report and "limits of  normal" in report
    iu = clean_report(report, "iu-xray")
    mimic = clean_report(report, "mimic-cxr")
    assert iu == (
        "the lungs are clear . there is no focal airspace consolidation . no pleural effusion or "
        "pneumothorax . heart size is at the upper limits of  normal . thoracic aorta is mildly ectatic "
        "stable . old right clavicular fracture is again noted ."
    )
    assert mimic == iu.replace("of  normal", "of normal")


def test_r2gen_text_is_the_cleaned_tokens_joined_by_single_spaces(reports: dict[str, str]) -> None:
    report = reports["CXR1600_IM-0390"]
    cleaned, scored = clean_report(report, "iu-xray"), r2gen_text(report, "iu-xray")
    assert "limits of  normal" in cleaned and "limits of normal" in scored
    assert scored.split(" ") == cleaned.split()  # R2Gen's tokens, no empty ones
    assert r2gen_text("Normal , clear .", "iu-xray") == "normal clear ." and r2gen_text("   ", "iu-xray") == "."


def test_styles_differ_only_on_that_report(reports: dict[str, str]) -> None:
    differing = [i for i, r in reports.items() if clean_report(r, "iu-xray") != clean_report(r, "mimic-cxr")]
    assert differing == ["CXR1600_IM-0390"]


@pytest.mark.parametrize(
    ("text", "iu", "mimic"),
    [
        # The class "[.,?;*!%^&_+():-\[\]{}]" has a ":" to "[" range: < = > @ go, "-" stays.
        ("A<b=C>d@e-F: g[h]{i}", "abcde-f ghi .", "abcde-f ghi ."),
        ("Is it? Yes; 100% & more! (ok) +1 ^_^ *", "is it yes 100  more ok 1   .", None),
        # Deleting a spaced punctuation mark leaves a double space (strip runs before the deletion).
        ("Normal , clear .", "normal  clear  .", "normal  clear  ."),
        # "1. " is deleted anywhere; " N. " (N = 2..5) becomes ". ".
        ("Fracture of T11. Spine ok.", "fracture of t1spine ok .", "fracture of t1spine ok ."),
        ("Rib 2. Fracture. 3. Clear.", "rib . fracture . clear .", "rib . fracture . clear ."),
        ("Rib 6. Fracture.", "rib 6 . fracture .", "rib 6 . fracture ."),
        ("Heart 1.5 cm.", "heart 15 cm .", "heart 15 cm ."),
        # Empty sentences are never dropped (R2Gen compares a string with []).
        ("", " .", " ."),
        ("   ", " .", " ."),
        ("A. . B.", "a .  . b .", "a .  . b ."),
        # Only mimic-cxr turns newlines into spaces and shrinks "__" runs (the "_" is deleted anyway).
        ("Heart normal.\nLungs clear.", "heart normal\nlungs clear .", "heart normal . lungs clear ."),
        ("A__B  C", "ab  c .", "ab c ."),
        # Quotes, slashes and backslashes are deleted before the strip.
        ('"Normal" a/b c\\d', "normal ab cd .", "normal ab cd ."),
    ],
)
def test_cleaning_quirks(text: str, iu: str, mimic: str | None) -> None:
    """``mimic`` None: same result as iu-xray."""
    assert clean_report(text, "iu-xray") == iu
    assert clean_report(text, "mimic-cxr") == (iu if mimic is None else mimic)


def test_dot_runs_shrink_a_fixed_number_of_times() -> None:
    # iu-xray does 3 ".." passes (16 dots -> 2), so "2.. " is no numbered-list item and "2" survives;
    # mimic-cxr does 8 passes (16 dots -> 1), so " 2. " becomes ". " and the "2" is swallowed.
    text = "Rib 2" + "." * 16 + " B"
    assert clean_report(text, "iu-xray") == "rib 2 . b ."
    assert clean_report(text, "mimic-cxr") == "rib . b ."


def test_unknown_style_is_a_config_error_naming_valid_styles() -> None:
    assert CLEANING_STYLES == ("iu-xray", "mimic-cxr")
    with pytest.raises(ConfigError) as info:
        clean_report("Heart normal.", "iu_xray")
    message = str(info.value)
    assert "'iu_xray'" in message and "did you mean 'iu-xray'?" in message
    assert "'iu-xray', 'mimic-cxr'" in message


def test_cleaning_is_not_idempotent(reports: dict[str, str]) -> None:
    once = {i: clean_report(r, "iu-xray") for i, r in reports.items()}
    twice = {i: clean_report(c, "iu-xray") for i, c in once.items()}
    fixed = sorted(i for i in once if twice[i] == once[i])
    # Re-cleaning turns the final " ." into " " + " .": one more space before the last period.
    assert all(twice[i] == once[i][:-1] + " ." for i in once if i not in fixed)
    assert len(once) - len(fixed) == 2944
    # The 11 fixed points are the reports ending in ". ." whose cleaned form ends with an empty sentence.
    assert len(fixed) == 11 and all(once[i].endswith(" .  .") for i in fixed)
    assert "CXR3487_IM-1696" in fixed
    assert clean_report("a . b .", "iu-xray") == "a . b  ."


def test_vocabulary_sizes_on_real_training_reports(train_reports: list[str]) -> None:
    assert len(train_reports) == 2069
    at3 = Tokenizer.build(train_reports, threshold=3, style="iu-xray")
    at10 = Tokenizer.build(train_reports, threshold=10, style="iu-xray")
    assert len(at3.words) == 759 and len(at3) == 763
    assert len(at10.words) == 398 and len(at10) == 402
    assert len(Tokenizer.build(train_reports, threshold=1, style="iu-xray").words) == 1501
    assert Tokenizer.build(train_reports, threshold=3, style="mimic-cxr").words == at3.words


def test_threshold_is_inclusive_and_words_sorted(tokenizer: Tokenizer, train_reports: list[str]) -> None:
    assert list(tokenizer.words) == sorted(tokenizer.words)
    assert "lucent" in tokenizer.words  # seen exactly 3 times in train
    assert "years" not in tokenizer.words  # seen exactly 2 times
    at10 = Tokenizer.build(train_reports, threshold=10, style="iu-xray")
    assert "position" in at10.words and "artery" not in at10.words  # 10 and 9 times
    small = Tokenizer.build(["b a a", "c. a"], threshold=2, style="iu-xray")
    assert small.words == (".", "a")


def test_special_ids(tokenizer: Tokenizer) -> None:
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id) == (0, 1, 2, 3)
    assert [tokenizer.id_to_token(i) for i in range(4)] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert tokenizer.id_to_token(4) == tokenizer.words[0] == "."
    assert tokenizer.token_to_id(".") == 4


def test_encode_decode_round_trip_on_real_reports(tokenizer: Tokenizer, reports: dict[str, str]) -> None:
    in_vocab = 0
    for report in reports.values():
        ids = tokenizer.encode(report)
        cleaned = clean_report(report, "iu-xray")
        assert len(ids) == len(cleaned.split())
        if tokenizer.unk_id in ids:
            continue
        in_vocab += 1
        # decode joins with single spaces, so it equals the cleaned report up to runs of spaces.
        assert tokenizer.decode(ids) == " ".join(cleaned.split())
        if "  " not in cleaned:
            assert tokenizer.decode(ids) == cleaned
    assert in_vocab == 2272


def test_encode_adds_no_bos_or_eos_and_decode_stops_at_eos(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode("Heart is normal.")
    assert tokenizer.decode(ids) == "heart is normal ."
    assert ids[0] not in (tokenizer.bos_id, tokenizer.eos_id) and tokenizer.eos_id not in ids
    framed = [tokenizer.bos_id, *ids, tokenizer.eos_id, *tokenizer.encode("lungs clear"), tokenizer.pad_id]
    assert tokenizer.decode(framed) == "heart is normal ."
    assert tokenizer.decode([tokenizer.pad_id, *ids, tokenizer.pad_id]) == "heart is normal ."
    assert tokenizer.decode(np.array([tokenizer.bos_id, *ids], dtype=np.int64)) == "heart is normal ."
    batch = tokenizer.decode_batch([framed, [tokenizer.eos_id, *ids], []])
    assert batch == ["heart is normal .", "", ""]
    with pytest.raises(ValueError, match="out of range"):
        tokenizer.decode([len(tokenizer)])


def test_words_never_seen_in_training_become_unk(tokenizer: Tokenizer, reports: dict[str, str]) -> None:
    # "total" occurs in the test split only.
    ids = tokenizer.encode(reports["CXR304_IM-1413"])
    words = clean_report(reports["CXR304_IM-1413"], "iu-xray").split()
    assert "total" in words and "total" not in tokenizer.words
    assert ids[words.index("total")] == tokenizer.unk_id
    assert tokenizer.decode(ids).split()[words.index("total")] == "<unk>"
    assert tokenizer.encode("Zebra lungs.") == [tokenizer.unk_id, tokenizer.token_to_id("lungs"), 4]


def test_save_load_round_trip(tokenizer: Tokenizer, tmp_path: Path) -> None:
    path = tmp_path / "run" / "vocab.json"
    tokenizer.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["vocab.json"]  # no temporary file left
    loaded = Tokenizer.load(path)
    assert loaded == tokenizer and hash(loaded) == hash(tokenizer)
    assert loaded.encode("Heart size normal.") == tokenizer.encode("Heart size normal.")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["words"] == list(tokenizer.words)
    assert (data["threshold"], data["style"], data["version"]) == (3, "iu-xray", 1)
    assert Tokenizer.from_dict(tokenizer.to_dict()) == tokenizer
    tokenizer.save(path)  # overwrite in place
    assert Tokenizer.load(path) == tokenizer


def test_equality_depends_on_words_threshold_and_style() -> None:
    base = Tokenizer(["a", "b"], 3, "iu-xray")
    assert base == Tokenizer(("a", "b"), 3, "iu-xray")
    assert base != Tokenizer(["a", "c"], 3, "iu-xray")
    assert base != Tokenizer(["a", "b"], 4, "iu-xray")
    assert base != Tokenizer(["a", "b"], 3, "mimic-cxr")
    assert base != "a b"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"words": ["a"],', "malformed JSON at line 1, column"),
        ("[1, 2]", "must be a JSON object"),
        ('{"version": 99, "style": "iu-xray", "threshold": 3, "words": []}', "unsupported vocabulary"),
        ('{"version": 1, "style": "iu-xray", "threshold": 3, "words": ["a", "a"]}', "not unique"),
        ('{"version": 1, "style": "iu-xray", "threshold": 3, "words": ["<unk>"]}', "special tokens"),
        ('{"version": 1, "style": "iu-xray", "threshold": 3, "words": ["a b"]}', "single non-empty"),
        ('{"version": 1, "style": "iu-xray", "threshold": "3", "words": []}', "'threshold' must be"),
        ('{"version": 1, "style": "iu_xray", "threshold": 3, "words": []}', "unknown report cleaning style"),
        ('{"version": 1, "style": "iu-xray", "threshold": 3, "words": "abc"}', "'words' must be a list"),
    ],
)
def test_load_rejects_bad_files_with_a_clear_data_error(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "vocab.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as info:
        Tokenizer.load(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="vocabulary file not found"):
        Tokenizer.load(tmp_path / "nope.json")


def test_build_rejects_bad_threshold_and_style() -> None:
    with pytest.raises(ConfigError, match="threshold"):
        Tokenizer.build(["a"], threshold=0, style="iu-xray")
    with pytest.raises(ConfigError, match="did you mean 'mimic-cxr'"):
        Tokenizer.build(["a"], threshold=1, style="mimic")
