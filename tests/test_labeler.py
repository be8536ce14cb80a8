"""Tests for the rule-based CheXpert labeler ``chexpert-rules`` (rrgbench.metrics.labelers)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from rrgbench.errors import DataError
from rrgbench.metrics.labelers import COMMON_FIVE, OBSERVATIONS, CheXpertRulesLabeler, Labeler
from rrgbench.metrics.labelers import chexpert_context as context
from rrgbench.metrics.labelers import chexpert_rules as rules

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
SAMPLE_DIR = SHARED / "chexpert_labeler"

# The labeler's published 4-report sample (sample_reports.csv / labeled_reports.csv, MIT), kept inline so that
# the check runs without ../shared; test_sample_fixture_matches_inline_copy ties it to the files.
SAMPLE_REPORTS = [
    "Heart size normal and lungs are clear. No edema or pneumonia. No effusion",
    "1. Left pleural effusion with adjacent atelectasis. Right effusion is also present.\n\n"
    "2. Cardiomegaly without overt edema.",
    "Minimal patchy airspace disease within the lingula, may reflect atelectasis or consolidation.",
    "1. Stable mild cardiomegaly. 2. Hyperexpanded but clear lungs.",
]
SAMPLE_LABELS = [
    {"No Finding": 1, "Cardiomegaly": 0, "Edema": 0, "Pneumonia": 0, "Pleural Effusion": 0},
    {"Cardiomegaly": 1, "Edema": 0, "Atelectasis": 1, "Pleural Effusion": 1},
    {"Lung Opacity": 1, "Consolidation": -1, "Atelectasis": -1},
    {"Cardiomegaly": 1},
]


@pytest.fixture(scope="module")
def labeler() -> CheXpertRulesLabeler:
    return CheXpertRulesLabeler()


def full(partial: dict[str, int]) -> dict[str, int | None]:
    return {obs: partial.get(obs) for obs in OBSERVATIONS}


def r2gen_clean(report: str) -> str:
    """R2Gen-style cleaning: lowercase, sentences joined by ' . ', punctuation other than '.' removed."""
    sentences = re.split(r"(?<=\.)\s+|\.$", report.lower().replace("\n", " "))
    kept = [re.sub(r"[^a-z0-9 ]", "", s).strip() for s in sentences]
    return " . ".join(s for s in kept if s) + " ."


# ------------------------------------------------------------------------------------------- constants / API


def test_constants() -> None:
    assert len(OBSERVATIONS) == 14
    assert (OBSERVATIONS[0], OBSERVATIONS[-1]) == ("No Finding", "Support Devices")
    assert COMMON_FIVE == ("Cardiomegaly", "Edema", "Consolidation", "Atelectasis", "Pleural Effusion")
    assert set(COMMON_FIVE) <= set(OBSERVATIONS)


def test_labeler_contract(labeler: CheXpertRulesLabeler) -> None:
    assert labeler.name == "chexpert-rules"
    assert isinstance(labeler, Labeler)
    out = labeler.label(["No pneumothorax.", "Mild cardiomegaly."])
    assert len(out) == 2
    for labels in out:
        assert list(labels) == list(OBSERVATIONS)
        assert set(labels.values()) <= {1, 0, -1, None}


def test_non_text_report_is_a_data_error(labeler: CheXpertRulesLabeler) -> None:
    with pytest.raises(DataError, match="report 1"):
        labeler.label(["fine", None])  # type: ignore[list-item]


def test_missing_phrase_files_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="mention phrases missing"):
        CheXpertRulesLabeler(data_dir=tmp_path)


# ---------------------------------------------------------------------------------------------- the sample


def test_published_sample_exactly(labeler: CheXpertRulesLabeler) -> None:
    assert labeler.label(SAMPLE_REPORTS) == [full(p) for p in SAMPLE_LABELS]


def test_sample_fixture_matches_inline_copy(labeler: CheXpertRulesLabeler) -> None:
    if not SAMPLE_DIR.is_dir():
        pytest.skip(f"shared fixture folder {SAMPLE_DIR} is absent")
    with (SAMPLE_DIR / "sample_reports.csv").open(newline="") as f:
        reports = [row[0] for row in csv.reader(f)]
    with (SAMPLE_DIR / "labeled_reports.csv").open(newline="") as f:
        published = [{obs: int(float(row[obs])) if row[obs] else None for obs in OBSERVATIONS}
                     for row in csv.DictReader(f)]
    assert reports == SAMPLE_REPORTS
    assert published == [full(p) for p in SAMPLE_LABELS]
    assert labeler.label(reports) == published


def test_sample_mentions_explain_their_labels(labeler: CheXpertRulesLabeler) -> None:
    found = {(m.observation, m.label): m.reason for m in labeler.mentions(SAMPLE_REPORTS[2])}
    assert "'may' before" in found[("Atelectasis", -1)]
    assert found[("Lung Opacity", 1)] == "no cue"


# ----------------------------------------------------------------------------------- hand-written sentences

NEGATED = [
    ("No pleural effusion.", "Pleural Effusion"),
    ("There is no pleural effusion or pneumothorax.", "Pneumothorax"),
    ("There is no pleural effusion or pneumothorax.", "Pleural Effusion"),
    ("Without pneumothorax.", "Pneumothorax"),
    ("Heart size is normal.", "Cardiomegaly"),
    ("Heart size normal.", "Cardiomegaly"),
    ("Normal heart size.", "Cardiomegaly"),
    ("The heart is not enlarged.", "Cardiomegaly"),
    ("The heart size is at the upper limits of normal.", "Cardiomegaly"),
    ("The cardiomediastinal silhouette is within normal limits.", "Enlarged Cardiomediastinum"),
    ("Heart size and mediastinal contours are within normal limits.", "Enlarged Cardiomediastinum"),
    ("Heart size and mediastinal contours are within normal limits.", "Cardiomegaly"),
    ("The heart, mediastinum, and hila are unremarkable.", "Enlarged Cardiomediastinum"),
    ("Lungs are free of focal consolidation.", "Consolidation"),
    ("Negative for pneumothorax.", "Pneumothorax"),
    ("The lungs are clear of consolidation.", "Consolidation"),
    ("The lungs are clear without focal airspace disease.", "Lung Opacity"),
    ("Interval resolution of the left pleural effusion.", "Pleural Effusion"),
    ("The right pneumothorax has resolved.", "Pneumothorax"),
    ("The endotracheal tube has been removed.", "Support Devices"),
    ("No evidence of pneumonia.", "Pneumonia"),
    ("No acute fracture.", "Fracture"),
    ("No focal consolidation, pleural effusion, or pneumothorax.", "Pleural Effusion"),
    ("Cardiomegaly without pulmonary edema.", "Edema"),
    ("There is no focal air space opacity to suggest a pneumonia.", "Pneumonia"),
    ("Pneumothorax is no longer seen.", "Pneumothorax"),
    ("Rule out pneumonia.", "Pneumonia"),  # negation.txt: {} <nmod:out {lemma:/rule/}
    ("No evidence of pneumothorax or pleural effusion.", "Pleural Effusion"),
    ("No evidence of focal consolidation, pneumothorax, or pleural effusion.", "Consolidation"),
    ("There is no evidence of acute infiltrate, pleural effusion, pneumothorax or pulmonary edema.", "Edema"),
    ("No pneumothorax, pleural effusion or pulmonary edema is seen.", "Edema"),
    ("Effusion, pneumothorax and consolidation are absent.", "Consolidation"),
    ("There is no pleural line to suggest pneumothorax or costophrenic blunting to suggest large pleural "
     "effusion.", "Pleural Effusion"),  # a negation heads every conjunct of its list
    ("The previously seen right pleural effusion has resolved.", "Pleural Effusion"),
    ("Consolidation, atelectasis, and costophrenic blunting in the left lower lobe have cleared in the "
     "interval.", "Consolidation"),
    ("Previously noted pneumonia has cleared.", "Pneumonia"),
    ("Interval removal of the endotracheal tube.", "Support Devices"),
    ("Heart and mediastinum are normal.", "Cardiomegaly"),
    ("The heart is normal in size.", "Cardiomegaly"),
    ("Sequelae of prior granulomatous infection.", "Pneumonia"),  # past acute processes
    ("Evidence of previous granulomatous infection.", "Pneumonia"),
    ("Prior right pneumothorax.", "Pneumothorax"),
]

UNCERTAIN = [
    ("Possible pneumonia.", "Pneumonia"),
    ("Cannot exclude small effusion.", "Pleural Effusion"),
    ("A small left effusion cannot be excluded.", "Pleural Effusion"),
    ("Pneumothorax is not excluded.", "Pneumothorax"),
    ("Cannot rule out pneumonia.", "Pneumonia"),
    ("Opacity may represent atelectasis.", "Atelectasis"),
    ("Findings are suspicious for pneumonia.", "Pneumonia"),
    ("Left lower lobe opacity, concerning for pneumonia.", "Pneumonia"),
    ("Questionable small right pneumothorax.", "Pneumothorax"),
    ("No new consolidation.", "Consolidation"),  # pre_negation_uncertainty.txt: no new XXX
    ("Mild pulmonary vascular congestion.", "Edema"),
    ("Stable cardiomediastinal silhouette.", "Enlarged Cardiomediastinum"),
    ("The cardiac silhouette is unchanged.", "Cardiomegaly"),
    ("Pneumothorax is not well seen.", "Pneumothorax"),
    ("A small effusion may be present.", "Pleural Effusion"),
    ("Findings consistent with congestive heart failure.", "Cardiomegaly"),  # the chf rule
    ("Stable heart size.", "Cardiomegaly"),
    ("Pneumothorax cannot be excluded.", "Pneumothorax"),
    ("A small left pleural effusion cannot be entirely excluded.", "Pleural Effusion"),
    ("Early pneumonia cannot be ruled out.", "Pneumonia"),
    # a hedge before a list covers every conjunct
    ("Left basilar opacity may represent atelectasis or pneumonia.", "Atelectasis"),
    ("Left basilar opacity may represent atelectasis or pneumonia.", "Pneumonia"),
    ("Findings may represent subsegmental atelectasis versus mild interstitial edema or an atypical infectious "
     "process.", "Pneumonia"),
    ("Question of left lower lobe pneumonia or pleural effusion.", "Pleural Effusion"),
    ("Differential diagnosis includes pneumonia, aspiration and pulmonary edema.", "Edema"),
    ("Evaluation for pneumothorax is limited by patient positioning.", "Pneumothorax"),
    ("A pneumonia superimposed on emphysema would be a consideration.", "Pneumonia"),
    ("Atypical infection is another consideration.", "Pneumonia"),
    ("Clinical correlation for pneumonia is recommended.", "Pneumonia"),
    ("Atelectasis, less likely pneumonia.", "Pneumonia"),
]

POSITIVE = [
    ("Large right pleural effusion.", "Pleural Effusion"),
    ("Moderate cardiomegaly.", "Cardiomegaly"),
    ("Stable mild cardiomegaly.", "Cardiomegaly"),
    ("The heart is enlarged.", "Cardiomegaly"),
    ("The cardiac silhouette is mildly enlarged.", "Cardiomegaly"),
    ("Small left apical pneumothorax.", "Pneumothorax"),
    ("Endotracheal tube terminates 4 cm above the carina.", "Support Devices"),
    ("Mild pulmonary edema.", "Edema"),
    ("Old healed right rib fractures.", "Fracture"),
    ("Right lower lobe consolidation.", "Consolidation"),
    ("Left basilar atelectasis.", "Atelectasis"),
    ("Pulmonary nodule in the right upper lobe.", "Lung Lesion"),
    ("Opacity may represent atelectasis.", "Lung Opacity"),
    ("Cardiomegaly without pulmonary edema.", "Cardiomegaly"),
    ("No pleural effusion, but there is mild cardiomegaly.", "Cardiomegaly"),
    ("No pneumothorax, however a small effusion is present.", "Pleural Effusion"),
    ("There is no pneumothorax and the heart is enlarged.", "Cardiomegaly"),
    ("No significant interval change in the small left effusion.", "Pleural Effusion"),
    ("The effusion has decreased in size.", "Pleural Effusion"),
    ("Normal heart size. Mild interstitial edema.", "Edema"),
    ("Findings consistent with congestive heart failure.", "Edema"),
    # "X or Y" / "X versus Y" alone: a differential of findings seen (CheXpert's conj:or rule said -1)
    ("Atelectasis versus consolidation at the left base.", "Consolidation"),
    ("Atelectasis versus consolidation at the left base.", "Atelectasis"),
    ("Bibasilar atelectasis or infiltrate.", "Lung Opacity"),
    ("Bibasilar atelectasis or scarring.", "Atelectasis"),
    ("Left basilar opacity, likely atelectasis.", "Atelectasis"),
    # borderline is an enlargement, not a hedge (the original's pattern said -1); an enlargement outlasts "stable"
    ("Borderline heart size.", "Cardiomegaly"),
    ("The heart is borderline in size.", "Cardiomegaly"),
    ("Stable enlarged heart.", "Cardiomegaly"),
    ("The cardiac silhouette is mildly enlarged, unchanged.", "Cardiomegaly"),
    ("Heart is large.", "Cardiomegaly"),
    ("Considering technical factors heart size is mildly enlarged.", "Cardiomegaly"),
    # still there, if improving
    ("Resolving left lower lobe pneumonia.", "Pneumonia"),
    ("The right pleural effusion is resolving.", "Pleural Effusion"),
    ("The right pneumothorax has almost completely resolved.", "Pneumothorax"),
    ("Pulmonary edema has improved.", "Edema"),
    ("Small apical pleural air collection.", "Pneumothorax"),
    ("Old healed right rib fractures with a prior left pneumothorax.", "Fracture"),  # lasting, not past
]

CASES = ([(t, o, 0) for t, o in NEGATED] + [(t, o, -1) for t, o in UNCERTAIN]
         + [(t, o, 1) for t, o in POSITIVE])


# A reference to the heart that states no size, soft-tissue edema: no mention of the observation at all
NOT_MENTIONED = [
    ("Atelectasis posterior to the heart.", "Cardiomegaly"),
    ("Sternotomy wires overlie the heart.", "Cardiomegaly"),
    ("The heart and lungs are otherwise as before, with a small left effusion.", "Cardiomegaly"),
    ("Soft tissue edema of the ankle.", "Edema"),
]
CASES += [(t, o, None) for t, o in NOT_MENTIONED]


@pytest.mark.parametrize(("text", "observation", "expected"), CASES)
def test_sentence(labeler: CheXpertRulesLabeler, text: str, observation: str, expected: int) -> None:
    assert labeler.label_report(text)[observation] == expected


@pytest.mark.parametrize(("text", "observation", "expected"), CASES)
def test_sentence_after_r2gen_cleaning(labeler: CheXpertRulesLabeler, text: str, observation: str,
                                       expected: int) -> None:
    cleaned = r2gen_clean(text)
    assert cleaned == cleaned.lower() and not re.search(r"[^a-z0-9 .]", cleaned)
    assert labeler.label_report(cleaned)[observation] == expected


def test_r2gen_cleaning_helper() -> None:
    assert r2gen_clean("No effusion, or pneumothorax. Heart size normal.") == (
        "no effusion or pneumothorax . heart size normal ."
    )


NO_FINDING = [
    ("The lungs are clear.", 1),
    ("No acute cardiopulmonary process.", 1),
    ("Heart size is normal. No effusion or pneumothorax.", 1),
    ("the heart size is normal . no pleural effusion or pneumothorax .", 1),
    ("Right PICC line in place. Lungs are clear.", 1),  # support devices do not count
    ("", 1),  # no mention at all: the original labeler also says No Finding
    ("Mild cardiomegaly.", None),
    ("Possible small effusion.", None),
    ("Calcified granuloma in the left upper lobe.", None),  # a finding from the No Finding phrase list
    ("No pneumothorax. Degenerative changes of the spine.", None),
]


@pytest.mark.parametrize(("text", "expected"), NO_FINDING)
def test_no_finding(labeler: CheXpertRulesLabeler, text: str, expected: int | None) -> None:
    assert labeler.label_report(text)["No Finding"] == expected


def test_empty_report_mentions_nothing_else(labeler: CheXpertRulesLabeler) -> None:
    assert labeler.label_report("") == full({"No Finding": 1})


# --------------------------------------------------------------------------------- mentions and unmentions


@pytest.mark.parametrize(
    ("text", "observation"),
    [
        ("Calcified nodule in the right lung.", "Lung Lesion"),
        ("Massive hiatal hernia.", "Lung Lesion"),
        ("Small pericardial effusion.", "Pleural Effusion"),
        ("Pacer leads project over the heart.", "Cardiomegaly"),
        ("Surgical clips in the mediastinum.", "Enlarged Cardiomediastinum"),
    ],
)
def test_unmention_phrases_remove_the_mention(labeler: CheXpertRulesLabeler, text: str,
                                              observation: str) -> None:
    assert labeler.label_report(text)[observation] is None


def test_mention_phrases_match_inside_words(labeler: CheXpertRulesLabeler) -> None:
    labels = labeler.label_report("Bibasilar atelectatic changes and patchy opacities.")
    assert labels["Atelectasis"] == 1 and labels["Lung Opacity"] == 1


def test_phrase_underscores_are_spaces() -> None:
    mention = rules.load_phrase_lists().mention
    assert " mediastinum" in mention["Enlarged Cardiomediastinum"]
    assert " line " in mention["Support Devices"]
    assert set(mention) == set(OBSERVATIONS)


# ------------------------------------------------------------------------------------------------ aggregation


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ([1], 1), ([0], 0), ([-1], -1),
        ([0, 1], 1), ([-1, 1], 1), ([0, -1], -1), ([0, 0], 0),
        ([1, 0, -1], -1),  # the original checks "0 and -1" first, even when a 1 is present
    ],
)
def test_combine_labels_follows_the_original(labels: list[int], expected: int) -> None:
    assert rules.combine_labels(labels) == expected


def test_aggregate_no_finding_and_heart_failure_rules() -> None:
    labels = rules.aggregate([("Support Devices", "tube", 1), ("Edema", "chf", 1)])
    assert labels["Cardiomegaly"] == -1 and labels["Edema"] == 1 and labels["No Finding"] is None
    labels = rules.aggregate([("Support Devices", "tube", 1), ("No Finding", "emphysema", 0)])
    assert labels["No Finding"] == 1 and labels["Support Devices"] == 1
    assert rules.aggregate([("No Finding", "emphysema", -1)])["No Finding"] is None


def test_mixed_mentions_in_one_report(labeler: CheXpertRulesLabeler) -> None:
    report = "Small left pleural effusion. No right pleural effusion."
    assert labeler.label_report(report)["Pleural Effusion"] == 1


# --------------------------------------------------------------------------------- cues derived from patterns

# Lemmas in the CheXpert pattern files that only give context to a cue named by another lemma of the same
# pattern ("no focus of", "may represent", "clinical correlation for symptoms of"), or that the cleaning step
# handles ("and/or" becomes "or"; "nsubj" is a typo in a pattern file).
CONTEXT_LEMMAS = {
    "and.or", "angle", "area", "associate", "blunt", "clinically", "consistent", "costophrenic",
    "developing", "development", "diagnose", "diagnosis", "display", "due", "explain", "finding", "focus",
    "include", "indicate", "left", "moderate", "nsubj", "presence", "prior", "reflect", "represent", "signs",
    "structure", "symptom", "symptoms", "vascularity",
}


def test_every_pattern_lemma_is_a_cue_or_context() -> None:
    # "borderline" (heart size) is read as an enlargement statement, on purpose (see chexpert_context)
    sources = " ".join(
        [context._CUES.pattern, context._CARDIAC_HEAD.pattern, context._ENLARGEMENT.pattern,
         *context._DEFAULT_UNCERTAIN_PHRASES]
        + [p.pattern for p in (context._POST_U1, context._POST_NEG, context._POST_U3, context._POST_U3_CARDIAC,
                               context._POST_CONSIDERATION)]
    )
    lemmas = set()
    for path in (rules.DATA_DIR / "patterns").glob("*.txt"):
        for match in re.finditer(r"lemma:/([^/]+)/", path.read_text(encoding="utf-8")):
            lemmas.update(lemma.replace(".*", "") for lemma in match.group(1).split("|"))
    assert len(lemmas) > 100

    def covered(lemma: str) -> bool:
        return bool(context._CUES.fullmatch(lemma)) or lemma in sources or lemma.rstrip("e") in sources

    assert sorted(lemma for lemma in lemmas - CONTEXT_LEMMAS if not covered(lemma)) == []


# ------------------------------------------------------------------------------------------------- throughput


def test_labels_4000_reports_consistently(labeler: CheXpertRulesLabeler) -> None:
    """4,000 reports (the hand-written cases, repeated) label like their parts; no wall-clock assert."""
    unique = [text for text, _, _ in CASES] + SAMPLE_REPORTS
    corpus = (unique * (4000 // len(unique) + 1))[:4000]
    labels = labeler.label(corpus)
    expected = {text: labeler.label_report(text) for text in unique}
    assert len(labels) == 4000
    assert all(label == expected[text] for text, label in zip(corpus, labels, strict=True))
