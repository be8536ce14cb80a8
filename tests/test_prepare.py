"""Tests for rrgbench.data.prepare on small fixtures in the real MIMIC-CXR and Open-i (IU X-Ray) formats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from PIL import Image

from rrgbench.data.annotation import read_annotation
from rrgbench.data.prepare import (
    assign_splits,
    iu_study_id,
    prepare_iu_xray,
    prepare_mimic_cxr,
    report_sections,
    select_section,
    split_sizes,
)
from rrgbench.data.validation import validate_studies
from rrgbench.errors import ConfigError, DataError

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
REAL_IMAGES = REAL / "iu_xray_images"

# ------------------------------------------------------------------------------------------- MIMIC-CXR
# Invented reports laid out like MIMIC-CXR's (centered FINAL REPORT, uppercase headers, blank lines).

FULL_REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___M with cough and fever.  // eval for pneumonia

 TECHNIQUE:  Chest PA and lateral

 COMPARISON:  None.

 FINDINGS:

 The lungs are clear without focal consolidation.  No pleural effusion or
 pneumothorax.   The cardiomediastinal silhouette is within normal
 limits.

 IMPRESSION:

 No acute cardiopulmonary process.
"""
IMPRESSION_ONLY = """                                 FINAL REPORT
 INDICATION:  Chest pain.

 COMPARISON:  ___

 IMPRESSION:  Stable mild cardiomegaly.  No edema.
"""
FINDINGS_ONLY = """                                 FINAL REPORT
 PA AND LATERAL VIEWS OF THE CHEST:

 FINDINGS:  Right-sided PICC line ends in the low SVC.
 Small left pleural effusion.
"""
NO_SECTIONS = """                                 FINAL REPORT
 WET READ: ___ ___ 3:15 PM
  No pneumothorax.

 INDICATION:  Line placement.
"""
SECOND_REPORT_WITH_HISTORY = """                                 FINAL REPORT
 HISTORY:  Shortness of breath.

 FINDINGS:
 Heart size is normal.
 Lungs are clear.
"""

# (subject_id, study_id, report text or None for a missing file, [(dicom_id, split), ...])
MIMIC_STUDIES = [
    ("10000032", "50000001", FULL_REPORT, [("d-aaa1", "train"), ("d-aaa2", "train")]),
    ("10000032", "50000002", IMPRESSION_ONLY, [("d-bbb1", "validate")]),
    ("11000011", "50000003", FINDINGS_ONLY, [("d-ccc1", "test")]),
    ("12000012", "50000004", NO_SECTIONS, [("d-ddd1", "train")]),
    ("12000012", "50000005", None, [("d-eee1", "validate")]),
    ("13000013", "50000006", SECOND_REPORT_WITH_HISTORY, [("d-fff1", "validate"), ("d-fff2", "validate")]),
]
ABSENT_IMAGE = "d-fff2"


def _tiny_jpeg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), 128).save(path, quality=90)


def _mimic_release(tmp_path: Path, with_files_dir: bool = True) -> tuple[Path, Path, Path]:
    """Reports, MIMIC-CXR-JPG images and the split CSV, laid out as in the official releases."""
    reports, images = tmp_path / "mimic-cxr-reports", tmp_path / "mimic-cxr-jpg"
    report_root = reports / "files" if with_files_dir else reports
    rows = ["dicom_id,study_id,subject_id,split"]
    for subject, study, text, dicoms in MIMIC_STUDIES:
        study_dir = Path(f"p{subject[:2]}") / f"p{subject}"
        if text is not None:
            (report_root / study_dir).mkdir(parents=True, exist_ok=True)
            (report_root / study_dir / f"s{study}.txt").write_text(text)
        for dicom, split in dicoms:
            rows.append(f"{dicom},{study},{subject},{split}")
            if dicom != ABSENT_IMAGE:
                _tiny_jpeg(images / "files" / study_dir / f"s{study}" / f"{dicom}.jpg")
    split_csv = tmp_path / "mimic-cxr-2.0.0-split.csv"
    split_csv.write_text("\n".join(rows) + "\n")
    return reports, images, split_csv


@pytest.mark.parametrize("with_files_dir", [True, False], ids=["files-dir", "bare"])
def test_mimic_findings_one_entry_per_image(tmp_path: Path, with_files_dir: bool) -> None:
    reports, images, split_csv = _mimic_release(tmp_path, with_files_dir)
    summary = prepare_mimic_cxr(reports, images, split_csv, tmp_path / "out")
    assert summary.annotation_path == tmp_path / "out" / "annotation.json"
    studies = read_annotation(summary.annotation_path)
    assert [s.id for s in studies["train"]] == ["d-aaa1", "d-aaa2"]
    assert [s.id for s in studies["val"]] == ["d-fff1", "d-fff2"]
    assert [s.id for s in studies["test"]] == ["d-ccc1"]
    first = studies["train"][0]
    assert first.report == (
        "The lungs are clear without focal consolidation. No pleural effusion or pneumothorax. "
        "The cardiomediastinal silhouette is within normal limits."
    )
    assert first.image_paths == ("files/p10/p10000032/s50000001/d-aaa1.jpg",)
    assert studies["train"][1].report == first.report
    assert (
        studies["test"][0].report == "Right-sided PICC line ends in the low SVC. Small left pleural effusion."
    )
    assert studies["val"][0].report == "Heart size is normal. Lungs are clear."
    assert summary.studies == {"train": 1, "val": 1, "test": 1}
    assert summary.entries == {"train": 2, "val": 2, "test": 1}
    assert summary.dropped == {"no findings section": 2, "report file missing": 1}
    assert summary.notes == [f"1 listed image is not under {images}"]


def test_mimic_validate_split_value_becomes_val(tmp_path: Path) -> None:
    reports, images, split_csv = _mimic_release(tmp_path)
    summary = prepare_mimic_cxr(reports, images, split_csv, tmp_path / "out")
    data = json.loads(summary.annotation_path.read_text())
    assert sorted(data) == ["test", "train", "val"]
    assert {entry["split"] for entry in data["val"]} == {"val"}


def test_mimic_findings_plus_impression(tmp_path: Path) -> None:
    reports, images, split_csv = _mimic_release(tmp_path)
    summary = prepare_mimic_cxr(reports, images, split_csv, tmp_path / "out", section="findings+impression")
    studies = read_annotation(summary.annotation_path)
    assert studies["train"][0].report.endswith("within normal limits. No acute cardiopulmonary process.")
    assert [s.id for s in studies["val"]] == ["d-bbb1", "d-fff1", "d-fff2"]
    assert studies["val"][0].report == "Stable mild cardiomegaly. No edema."
    assert summary.dropped == {"no findings or impression section": 1, "report file missing": 1}
    assert summary.studies == {"train": 1, "val": 2, "test": 1}


def test_mimic_output_validates_except_the_absent_image(tmp_path: Path) -> None:
    reports, images, split_csv = _mimic_release(tmp_path)
    summary = prepare_mimic_cxr(reports, images, split_csv, tmp_path / "out")
    report = validate_studies(read_annotation(summary.annotation_path), images, n_views=1)
    assert {kind: g.count for kind, g in report.problems.items() if g.count} == {"missing_image": 1}
    assert report.problems["missing_image"].examples[0].study_id == ABSENT_IMAGE


def test_summary_format(tmp_path: Path) -> None:
    reports, images, split_csv = _mimic_release(tmp_path)
    text = prepare_mimic_cxr(reports, images, split_csv, tmp_path / "out").format()
    assert text.splitlines() == [
        f"mimic-cxr: wrote {tmp_path / 'out' / 'annotation.json'}",
        "  train: 1 study, 2 entries",
        "  val: 1 study, 2 entries",
        "  test: 1 study, 1 entry",
        "  dropped 3 studies: no findings section (2), report file missing (1)",
        f"  note: 1 listed image is not under {images}",
    ]


def test_mimic_unknown_section_is_a_config_error(tmp_path: Path) -> None:
    reports, images, split_csv = _mimic_release(tmp_path)
    with pytest.raises(ConfigError, match="did you mean 'findings'"):
        prepare_mimic_cxr(reports, images, split_csv, tmp_path / "out", section="finding")


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        ("dicom_id,study_id,split\nd1,50000001,train\n", "lacks column.*subject_id"),
        (
            "dicom_id,study_id,subject_id,split\nd1,50000001,10000032,training\n",
            "line 2: unknown split 'training'",
        ),
        ("dicom_id,study_id,subject_id,split\nd1,,10000032,train\n", "line 2: empty study_id"),
    ],
    ids=["missing-column", "bad-split", "empty-field"],
)
def test_mimic_bad_split_csv(tmp_path: Path, csv_text: str, message: str) -> None:
    reports, images, split_csv = _mimic_release(tmp_path)
    split_csv.write_text(csv_text)
    with pytest.raises(DataError, match=message):
        prepare_mimic_cxr(reports, images, split_csv, tmp_path / "out")


def test_mimic_nothing_to_prepare_fails_clearly(tmp_path: Path) -> None:
    reports, images, split_csv = _mimic_release(tmp_path)
    split_csv.write_text("dicom_id,study_id,subject_id,split\nd-x,59999999,10000032,train\n")
    with pytest.raises(DataError, match=r"no study could be prepared .*report file missing \(1\)"):
        prepare_mimic_cxr(reports, images, split_csv, tmp_path / "out")
    assert not (tmp_path / "out" / "annotation.json").exists()


def test_section_rules() -> None:
    sections = report_sections(FULL_REPORT)
    assert list(sections) == [
        "EXAMINATION",
        "INDICATION",
        "TECHNIQUE",
        "COMPARISON",
        "FINDINGS",
        "IMPRESSION",
    ]
    assert sections["EXAMINATION"] == "CHEST (PA AND LAT)"
    assert sections["INDICATION"] == "___M with cough and fever. // eval for pneumonia"
    assert select_section(NO_SECTIONS, "findings") == ""
    assert report_sections(NO_SECTIONS)["WET READ"] == "___ ___ 3:15 PM No pneumothorax."
    twice = "FINDINGS:\n\nIMPRESSION: Clear.\nFINDINGS: Heart normal.\nFINDINGS: Later text."
    assert select_section(twice, "findings") == "Heart normal."
    assert select_section("Findings: lower case is not a header.", "findings") == ""
    assert select_section("FINDINGS: No effusion.\nIMPRESSION: Normal.", "impression") == "Normal."


# -------------------------------------------------------------------------------------------- IU X-Ray


def _openi_xml(
    uid: int, findings: str | None, image_ids: list[str], impression: str = "No acute disease."
) -> str:
    """An Open-i ``ecgen-radiology`` report in the real schema (trimmed of fields prepare does not read)."""
    findings_xml = (
        "" if findings is None else f'<AbstractText Label="FINDINGS">{escape(findings)}</AbstractText>'
    )
    images = "\n".join(
        f'   <parentImage id="{image_id}">\n      <figureId>F{n}</figureId>\n'
        f"      <caption>Xray Chest PA and Lateral</caption>\n"
        f'      <panel type="single"><url>/hadoop/storage/radiology/extract/{image_id}.jpg</url></panel>\n'
        f"   </parentImage>"
        for n, image_id in enumerate(image_ids, start=1)
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<eCitation>
   <meta type="rr"/>
   <uId id="CXR{uid}"/>
   <pmcId id="{uid}"/>
   <docSource>CXR</docSource>
   <IUXRId id="{uid}"/>
   <licenseType>open-access</licenseType>
   <licenseURL>http://creativecommons.org/licenses/by-nc-nd/4.0/</licenseURL>
   <MedlineCitation Owner="Indiana University" Status="supplied by publisher">
      <Article PubModel="Electronic">
         <ArticleTitle>Indiana University Chest X-ray Collection</ArticleTitle>
         <Abstract>
            <AbstractText Label="COMPARISON">None.</AbstractText>
            <AbstractText Label="INDICATION">XXXX-year-old male, chest pain.</AbstractText>
            {findings_xml}
            <AbstractText Label="IMPRESSION">{escape(impression)}</AbstractText>
         </Abstract>
      </Article>
   </MedlineCitation>
   <MeSH><major>normal</major></MeSH>
{images}
</eCitation>
"""


def _real_reports() -> dict[str, str]:
    """R2Gen's reports (the Open-i FINDINGS texts) by id, read from the shared real annotation."""
    studies = read_annotation(REAL / "iu_xray_r2gen" / "annotation.json")
    return {s.id: s.report for split in studies.values() for s in split}


def _openi_release(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """ecgen-radiology/*.xml plus the real PNGs (byte-identical) for two complete studies."""
    reports, images = tmp_path / "NLMCXR_reports", tmp_path / "NLMCXR_png"
    xml_dir = reports / "ecgen-radiology"
    xml_dir.mkdir(parents=True)
    images.mkdir()
    real = _real_reports()
    for png in REAL_IMAGES.glob("*.png"):
        shutil.copyfile(png, images / png.name)
    xml = {
        1900: (real["CXR1900_IM-0584"], ["CXR1900_IM-0584-1001", "CXR1900_IM-0584-2001"]),
        7: (real["CXR7_IM-2263"], ["CXR7_IM-2263-1001", "CXR7_IM-2263-2001"]),
        3: (None, ["CXR3_IM-1384-1001"]),  # really has no FINDINGS, and one image
        1: ("  The heart is normal in size.  ", ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"]),
        2372: ("Lungs clear.", ["CXR2372_IM-0933-0001-0001", "CXR2372_IM-0933-0001-0002"]),
        50: ("Three views.", ["CXR50_IM-1-1001", "CXR50_IM-1-2001", "CXR50_IM-1-3001"]),
        51: ("   ", ["CXR51_IM-1-1001", "CXR51_IM-1-2001"]),
        52: ("Only a frontal view.", ["CXR52_IM-1-1001"]),
    }
    for uid, (findings, image_ids) in xml.items():
        (xml_dir / f"{uid}.xml").write_text(_openi_xml(uid, findings, image_ids), encoding="utf-8")
    return reports, images, real


def test_iu_keeps_findings_with_exactly_two_images(tmp_path: Path) -> None:
    reports, images, real = _openi_release(tmp_path)
    summary = prepare_iu_xray(reports, images, tmp_path / "out")
    studies = read_annotation(summary.annotation_path)
    by_id = {s.id: s for split in studies.values() for s in split}
    assert sorted(by_id) == ["CXR1900_IM-0584", "CXR1_1_IM-0001", "CXR2372_IM-0933-0001", "CXR7_IM-2263"]
    assert by_id["CXR7_IM-2263"].report == real["CXR7_IM-2263"]  # identical to R2Gen's report
    assert by_id["CXR7_IM-2263"].image_paths == ("CXR7_IM-2263-1001.png", "CXR7_IM-2263-2001.png")
    assert by_id["CXR1_1_IM-0001"].report == "The heart is normal in size."
    assert summary.dropped == {"no FINDINGS section": 2, "fewer than 2 images": 1, "more than 2 images": 1}
    assert sum(summary.studies.values()) == 4
    assert summary.entries == summary.studies  # one entry per study, with both views
    assert summary.notes == [f"4 referenced images are not under {images}"]


def test_iu_reports_dir_may_be_the_xml_folder_itself(tmp_path: Path) -> None:
    reports, images, _ = _openi_release(tmp_path)
    nested = prepare_iu_xray(reports, images, tmp_path / "a")
    direct = prepare_iu_xray(reports / "ecgen-radiology", images, tmp_path / "b")
    assert nested.annotation_path.read_text() == direct.annotation_path.read_text()


def test_iu_output_with_real_images_validates(tmp_path: Path) -> None:
    reports, images, _ = _openi_release(tmp_path)
    for xml in ("1.xml", "2372.xml"):
        (reports / "ecgen-radiology" / xml).unlink()
    summary = prepare_iu_xray(reports, images, tmp_path / "out", seed=0)
    studies = read_annotation(summary.annotation_path)
    report = validate_studies(studies, images, n_views=2)
    assert report.problems["missing_image"].count == 0
    assert report.problems["unreadable_image"].count == 0
    assert summary.notes == []


def test_iu_study_id_follows_r2gen() -> None:
    ids = {
        s.id for split in read_annotation(REAL / "iu_xray_r2gen" / "annotation.json").values() for s in split
    }
    assert iu_study_id("CXR1_1_IM-0001-3001") == "CXR1_1_IM-0001"
    assert iu_study_id("CXR2384_IM-0942-1001") == "CXR2384_IM-0942"
    assert iu_study_id("CXR2372_IM-0933-0001-0001") == "CXR2372_IM-0933-0001"
    assert {"CXR1_1_IM-0001", "CXR2384_IM-0942", "CXR2372_IM-0933-0001"} <= ids


def test_split_sizes_are_7_1_2_and_match_r2gen() -> None:
    assert split_sizes(2955) == (2069, 296, 590)
    assert split_sizes(10) == (7, 1, 2)
    assert split_sizes(1) == (1, 0, 0)
    assert split_sizes(0) == (0, 0, 0)
    assert all(min(split_sizes(n)) >= 0 and sum(split_sizes(n)) == n for n in range(40))


def test_split_assignment_is_seeded_and_order_free() -> None:
    ids = [f"CXR{i}_IM-{i:04d}" for i in range(100)]
    first = assign_splits(ids, seed=42)
    assert assign_splits(list(reversed(ids)), seed=42) == first
    assert assign_splits(ids, seed=7) != first
    counts = {split: list(first.values()).count(split) for split in ("train", "val", "test")}
    assert counts == {"train": 70, "val": 10, "test": 20}


def test_iu_split_is_7_1_2_by_study(tmp_path: Path) -> None:
    reports, images = tmp_path / "reports", tmp_path / "images"
    reports.mkdir()
    images.mkdir()
    for uid in range(1, 21):
        ids = [f"CXR{uid}_IM-{uid:04d}-1001", f"CXR{uid}_IM-{uid:04d}-2001"]
        (reports / f"{uid}.xml").write_text(_openi_xml(uid, f"Finding number {uid}.", ids))
    summary = prepare_iu_xray(reports, images, tmp_path / "out", seed=3)
    assert summary.studies == {"train": 14, "val": 2, "test": 4}
    studies = read_annotation(summary.annotation_path)
    expected = assign_splits([f"CXR{uid}_IM-{uid:04d}" for uid in range(1, 21)], seed=3)
    assert {s.id: split for split, items in studies.items() for s in items} == expected


def test_iu_malformed_xml_names_file_and_position(tmp_path: Path) -> None:
    reports, images, _ = _openi_release(tmp_path)
    (reports / "ecgen-radiology" / "9.xml").write_text("<eCitation>\n  <uId id='CXR9'>\n</eCitation>\n")
    with pytest.raises(DataError, match=r"9\.xml: malformed XML at line 3, column"):
        prepare_iu_xray(reports, images, tmp_path / "out")


def test_iu_without_xml_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no Open-i XML reports"):
        prepare_iu_xray(tmp_path / "empty", tmp_path, tmp_path / "out")
    with pytest.raises(DataError, match=r"does not exist"):
        prepare_iu_xray(tmp_path / "nowhere", tmp_path, tmp_path / "out")
