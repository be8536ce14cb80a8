"""Raw-data preparation: turn the official MIMIC-CXR and IU X-Ray (Open-i) releases into R2Gen annotations.

Each function reads the raw release, writes ``out_dir/annotation.json`` with ``write_annotation`` and
returns a ``PrepareSummary`` (it prints nothing). Images are never copied: ``image_path`` entries are paths
relative to the ``images_dir`` given, which becomes the dataset's image root (recorded in
``out_dir/rrgbench.json``, where the ``iu-xray``/``mimic-cxr`` datasets find it). An ``annotation.json``
already in ``out_dir`` that this module did not write (no ``rrgbench.json`` beside it: R2Gen's own file,
say) is never replaced unless ``force``.

MIMIC-CXR (``prepare_mimic_cxr``), R2Gen's MIMIC format, one entry per image:

- reports ``<reports_dir>/files/p10/p10000032/s50414267.txt`` (or the same without ``files/``), images
  from MIMIC-CXR-JPG ``<images_dir>/files/p10/p10000032/s50414267/<dicom_id>.jpg`` (or without ``files/``),
  and ``mimic-cxr-2.0.0-split.csv`` (columns dicom_id, study_id, subject_id, split);
- the three ids must be plain names (letters, digits, ``-``, ``_``; they become file and folder names);
- entry ``id`` is the dicom_id, ``split`` maps train/validate/test to train/val/test; the entries of one
  study share its report. (R2Gen's files also carry study_id/subject_id; ``write_annotation`` writes the
  standard fields only.)
- section rules: a section header is a line starting with an uppercase word or words followed by ``:``
  (``FINDINGS:``, ``IMPRESSION:``, ``INDICATION:``, ``COMPARISON:``, ``PA AND LATERAL VIEWS OF THE CHEST:``);
  a section's text runs from its header to the next header or the end of the report, with all whitespace
  folded to single spaces. A header that appears twice gives its first non-empty text. ``section`` is
  ``"findings"`` (default, as R2Gen), ``"impression"`` or ``"findings+impression"`` (findings then
  impression, either one alone when the other is absent). Studies without the section(s) are dropped and
  counted, as are studies whose report file is missing. Images absent from ``images_dir`` are kept and
  counted in a note (validation reports them; ``allow_missing`` skips them).

IU X-Ray (``prepare_iu_xray``), R2Gen's IU format:

- reports: the Open-i XML files ``ecgen-radiology/*.xml`` (``reports_dir`` is that folder or its parent);
  images: the Open-i PNGs ``<images_dir>/<parentImage id>.png``;
- a study is kept when its ``<AbstractText Label="FINDINGS">`` is non-empty and it has exactly two
  ``<parentImage>`` elements (R2Gen kept the frontal+lateral pairs); view order is document order, as in
  R2Gen's release (first parentImage = ``0.png``, normally the frontal view);
- ``id`` is the first parentImage id without its last ``-<digits>`` part (``CXR1_1_IM-0001-3001`` ->
  ``CXR1_1_IM-0001``, ``CXR2372_IM-0933-0001-0001`` -> ``CXR2372_IM-0933-0001``), exactly R2Gen's ids;
  ``report`` is the FINDINGS text stripped of surrounding whitespace (R2Gen's reports are that text);
- ``image_path`` is ``["<first id>.png", "<second id>.png"]``: the original Open-i files. R2Gen's archive
  holds renamed copies (``<id>/0.png``, ``<id>/1.png``) of the same two files, in the same order;
- split 7:1:2 by study: ids sorted, shuffled with ``random.Random(seed)``, then train = ceil(0.7 n),
  val = ceil(0.1 n), test = the rest. For R2Gen's 2,955 studies that gives its sizes 2069/296/590, but not
  its membership (unpublished): compare with published numbers on R2Gen's own ``annotation.json``.
"""

from __future__ import annotations

import csv
import random
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rrgbench.data.annotation import write_annotation
from rrgbench.data.studies import SPLITS, Study
from rrgbench.errors import ConfigError, DataError, did_you_mean
from rrgbench.io import write_json
from rrgbench.outputs import check_creatable

SECTIONS = ("findings", "impression", "findings+impression")
MIMIC_SPLITS = {"train": "train", "validate": "val", "test": "test"}
MIMIC_COLUMNS = ("dicom_id", "study_id", "subject_id", "split")
ANNOTATION_NAME = "annotation.json"
PREPARED_INFO = "rrgbench.json"
"""Written beside annotation.json: where the images are (they are never copied)."""

_HEADER = re.compile(r"^[ \t]*([A-Z][A-Z0-9 ,&/()'-]*[A-Z)])[ \t]*:", re.MULTILINE)
_IMAGE_SUFFIX = re.compile(r"-\d+$")


@dataclass
class PrepareSummary:
    """What a preparation wrote: studies and entries per split, studies dropped by reason, notes."""

    dataset: str
    annotation_path: Path
    studies: dict[str, int]
    entries: dict[str, int]
    dropped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        """A few lines for the terminal: where the annotation went, counts per split, drops, notes."""
        lines = [f"{self.dataset}: wrote {self.annotation_path}"]
        for split in SPLITS:
            studies = _plural(self.studies.get(split, 0), "study", "studies")
            entries = _plural(self.entries.get(split, 0), "entry", "entries")
            lines.append(f"  {split}: {studies}, {entries}")
        if self.dropped:
            reasons = ", ".join(f"{reason} ({n})" for reason, n in self.dropped.items())
            lines.append(f"  dropped {_plural(sum(self.dropped.values()), 'study', 'studies')}: {reasons}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


def _plural(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"


# ---------------------------------------------------------------------------------------------- sections


def report_sections(text: str) -> dict[str, str]:
    """Split a MIMIC-CXR report into ``{HEADER: folded text}`` by the header rule in the module docstring."""
    matches = list(_HEADER.finditer(text))
    sections: dict[str, str] = {}
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = " ".join(text[match.end() : end].split())
        name = " ".join(match.group(1).split())
        if body and not sections.get(name):
            sections[name] = body
        sections.setdefault(name, body)
    return sections


def select_section(text: str, section: str) -> str:
    """The report text for ``section`` (see ``SECTIONS``), or an empty string when it is absent."""
    found = report_sections(text)
    findings, impression = found.get("FINDINGS", ""), found.get("IMPRESSION", "")
    if section == "findings":
        return findings
    if section == "impression":
        return impression
    return " ".join(part for part in (findings, impression) if part)


def _check_section(section: str) -> None:
    if section not in SECTIONS:
        raise ConfigError(
            f"unknown report section {section!r}{did_you_mean(section, SECTIONS)}; "
            f"choose one of {', '.join(SECTIONS)}"
        )


# --------------------------------------------------------------------------------------------- MIMIC-CXR


@dataclass(frozen=True)
class _MimicRow:
    line: int
    dicom_id: str
    study_id: str
    subject_id: str
    split: str


_PLAIN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def _check_out(out_dir: Path, force: bool) -> None:
    """Refuse an output folder that cannot be written, or whose annotation.json prepare did not write."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"--out {out_dir} is a file; give a folder for annotation.json")
    check_creatable(out_dir / ANNOTATION_NAME, "--out")
    if (out_dir / ANNOTATION_NAME).exists() and not (out_dir / PREPARED_INFO).is_file() and not force:
        raise DataError(f"--out {out_dir} already holds an {ANNOTATION_NAME} that rrgbench data prepare did not "
                        "write; choose another folder, or pass --force to replace it")


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise DataError(f"{what} {path} does not exist or is not a folder")


def _files_root(path: Path) -> Path:
    """``path/files`` when the release's ``files/`` folder is there, else ``path`` itself."""
    return path / "files" if (path / "files").is_dir() else path


def _read_split_csv(split_csv: Path) -> list[_MimicRow]:
    try:
        with split_csv.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            _check_columns(split_csv, reader.fieldnames)
            return [_mimic_row(split_csv, reader.line_num, row) for row in reader]
    except FileNotFoundError:
        raise DataError(f"{split_csv}: split CSV not found") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{split_csv}: cannot read split CSV: {error}") from None


def _check_columns(path: Path, columns: list[str] | None) -> None:
    missing = [name for name in MIMIC_COLUMNS if name not in (columns or [])]
    if missing:
        raise DataError(
            f"{path}: split CSV lacks column(s) {', '.join(missing)} "
            f"(expected the header {','.join(MIMIC_COLUMNS)} of mimic-cxr-2.0.0-split.csv)"
        )


def _mimic_row(path: Path, line: int, row: dict[str, str]) -> _MimicRow:
    values = {name: (row.get(name) or "").strip() for name in MIMIC_COLUMNS}
    empty = [name for name, value in values.items() if not value]
    if empty:
        raise DataError(f"{path}: line {line}: empty {', '.join(empty)}")
    odd = [name for name in MIMIC_COLUMNS[:3] if not _PLAIN_ID.match(values[name])]
    if odd:
        raise DataError(f"{path}: line {line}: {odd[0]} {values[odd[0]]!r} is not a plain id (letters, digits, - "
                        "and _)")
    split = MIMIC_SPLITS.get(values["split"])
    if split is None:
        known = ", ".join(MIMIC_SPLITS)
        raise DataError(f"{path}: line {line}: unknown split {values['split']!r} (expected one of {known})")
    return _MimicRow(line, values["dicom_id"], values["study_id"], values["subject_id"], split)


def _mimic_study_dir(subject_id: str, study_id: str) -> Path:
    subject = subject_id.removeprefix("p")
    study = study_id.removeprefix("s")
    return Path(f"p{subject[:2]}") / f"p{subject}" / f"s{study}"


def _read_report(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise DataError(f"{path}: cannot read report: {error.strerror or error}") from None


def _mimic_reports(
    rows: list[_MimicRow], reports_root: Path, section: str, dropped: Counter[str]
) -> dict[str, str]:
    """Report text per study_id for the studies that have the section; count the others in ``dropped``."""
    reports: dict[str, str] = {}
    seen: set[str] = set()
    for row in rows:
        if row.study_id in seen:
            continue
        seen.add(row.study_id)
        study_dir = _mimic_study_dir(row.subject_id, row.study_id)
        text = _read_report(reports_root / study_dir.with_suffix(".txt"))
        if text is None:
            dropped["report file missing"] += 1
            continue
        report = select_section(text, section)
        if report:
            reports[row.study_id] = report
        else:
            dropped[f"no {section.replace('+', ' or ')} section"] += 1
    return reports


def prepare_mimic_cxr(
    reports_dir: Path, images_dir: Path, split_csv: Path, out_dir: Path, section: str = "findings",
    force: bool = False,
) -> PrepareSummary:
    """Write ``out_dir/annotation.json`` for MIMIC-CXR (rules in the module docstring); return a summary."""
    _check_section(section)
    reports_dir, images_dir, out_dir = Path(reports_dir), Path(images_dir), Path(out_dir)
    _check_out(out_dir, force)
    _require_dir(reports_dir, "MIMIC-CXR reports folder")
    _require_dir(images_dir, "MIMIC-CXR-JPG images folder")
    rows = _read_split_csv(Path(split_csv))
    dropped: Counter[str] = Counter()
    reports = _mimic_reports(rows, _files_root(reports_dir), section, dropped)
    by_split, missing_images = _mimic_entries(rows, reports, images_dir)
    notes = _missing_note(missing_images, "listed", images_dir)
    return _finish("mimic-cxr", by_split, out_dir, dropped, notes, _mimic_study_counts(rows, reports),
                   images_dir)


def _mimic_entries(
    rows: list[_MimicRow], reports: dict[str, str], images_dir: Path
) -> tuple[dict[str, list[Study]], int]:
    """One entry per image of a kept study, and the number of those images absent from ``images_dir``."""
    prefix = Path("files") if (images_dir / "files").is_dir() else Path()
    by_split: dict[str, list[Study]] = {split: [] for split in SPLITS}
    missing_images = 0
    for row in rows:
        if row.study_id not in reports:
            continue
        relative = prefix / _mimic_study_dir(row.subject_id, row.study_id) / f"{row.dicom_id}.jpg"
        missing_images += not (images_dir / relative).is_file()
        study = Study(row.dicom_id, reports[row.study_id], (relative.as_posix(),), row.split)
        by_split[row.split].append(study)
    return by_split, missing_images


def _missing_note(n: int, how: str, images_dir: Path) -> list[str]:
    if not n:
        return []
    return [f"{_plural(n, f'{how} image is', f'{how} images are')} not under {images_dir}"]


def _mimic_study_counts(rows: list[_MimicRow], reports: dict[str, str]) -> dict[str, int]:
    studies = {(row.split, row.study_id) for row in rows if row.study_id in reports}
    return {split: sum(1 for s, _ in studies if s == split) for split in SPLITS}


def _finish(
    dataset: str,
    by_split: dict[str, list[Study]],
    out_dir: Path,
    dropped: Counter[str],
    notes: list[str],
    studies: dict[str, int],
    images_dir: Path,
) -> PrepareSummary:
    if not any(by_split.values()):
        reasons = ", ".join(f"{reason} ({n})" for reason, n in dropped.items()) or "no input studies"
        raise DataError(f"{dataset}: no study could be prepared (dropped: {reasons}); are the folders right?")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ANNOTATION_NAME
    write_annotation(by_split, path)
    write_json(out_dir / PREPARED_INFO, {"dataset": dataset, "image_root": str(Path(images_dir).resolve())})
    entries = {split: len(by_split[split]) for split in SPLITS}
    return PrepareSummary(dataset, path, studies, entries, dict(dropped), notes)


# ---------------------------------------------------------------------------------------------- IU X-Ray


@dataclass(frozen=True)
class _OpeniReport:
    source: Path
    findings: str
    image_ids: tuple[str, ...]


def _read_openi_xml(path: Path) -> _OpeniReport:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        line, column = error.position
        raise DataError(f"{path}: malformed XML at line {line}, column {column}") from None
    findings = ""
    for element in root.iter("AbstractText"):
        if element.get("Label") == "FINDINGS":
            findings = "".join(element.itertext()).strip()
            break
    images = tuple(image.get("id", "") for image in root.iter("parentImage"))
    return _OpeniReport(path, findings, images)


def _openi_reports_dir(reports_dir: Path) -> Path:
    nested = reports_dir / "ecgen-radiology"
    return nested if nested.is_dir() else reports_dir


def iu_study_id(first_image_id: str) -> str:
    """R2Gen's IU X-Ray study id: the first parentImage id without its last ``-<digits>`` part."""
    return _IMAGE_SUFFIX.sub("", first_image_id)


def _iu_drop_reason(report: _OpeniReport) -> str | None:
    if not report.findings:
        return "no FINDINGS section"
    if any(not image_id for image_id in report.image_ids):
        return "parentImage without id"
    if len(report.image_ids) < 2:
        return "fewer than 2 images"
    if len(report.image_ids) > 2:
        return "more than 2 images"
    return None


def split_sizes(n: int) -> tuple[int, int, int]:
    """Train/val/test sizes for ``n`` studies at 7:1:2: ceil(0.7 n), ceil(0.1 n), the rest (never < 0)."""
    n_train = min(n, (7 * n + 9) // 10)
    n_val = min(n - n_train, (n + 9) // 10)
    return n_train, n_val, n - n_train - n_val


def assign_splits(ids: list[str], seed: int) -> dict[str, str]:
    """Map each id to train/val/test: sorted ids shuffled with ``random.Random(seed)``, cut 7:1:2."""
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    n_train, n_val, _ = split_sizes(len(order))
    return {
        study_id: "train" if i < n_train else "val" if i < n_train + n_val else "test"
        for i, study_id in enumerate(order)
    }


def _iu_candidates(xml_files: list[Path], dropped: Counter[str]) -> dict[str, _OpeniReport]:
    kept: dict[str, _OpeniReport] = {}
    for path in xml_files:
        report = _read_openi_xml(path)
        reason = _iu_drop_reason(report)
        study_id = iu_study_id(report.image_ids[0]) if reason is None else ""
        if reason is None and study_id in kept:
            reason = "duplicate study id"
        if reason is not None:
            dropped[reason] += 1
            continue
        kept[study_id] = report
    return kept


def prepare_iu_xray(reports_dir: Path, images_dir: Path, out_dir: Path, seed: int = 42,
                    force: bool = False) -> PrepareSummary:
    """Write ``out_dir/annotation.json`` for IU X-Ray (rules in the module docstring); return a summary."""
    reports_dir, images_dir, out_dir = Path(reports_dir), Path(images_dir), Path(out_dir)
    _check_out(out_dir, force)
    _require_dir(reports_dir, "Open-i reports folder")
    _require_dir(images_dir, "Open-i images folder")
    xml_files = sorted(_openi_reports_dir(reports_dir).glob("*.xml"))
    if not xml_files:
        raise DataError(
            f"no Open-i XML reports (*.xml) in {reports_dir} or {reports_dir / 'ecgen-radiology'}"
        )
    dropped: Counter[str] = Counter()
    candidates = _iu_candidates(xml_files, dropped)
    by_split, missing_images = _iu_entries(candidates, assign_splits(list(candidates), seed), images_dir)
    notes = _missing_note(missing_images, "referenced", images_dir)
    studies = {split: len(by_split[split]) for split in SPLITS}
    return _finish("iu-xray", by_split, out_dir, dropped, notes, studies, images_dir)


def _iu_entries(
    candidates: dict[str, _OpeniReport], splits: dict[str, str], images_dir: Path
) -> tuple[dict[str, list[Study]], int]:
    """One entry per study (sorted by id within a split) and the number of images absent from images_dir."""
    by_split: dict[str, list[Study]] = {split: [] for split in SPLITS}
    missing_images = 0
    for study_id in sorted(candidates):
        report = candidates[study_id]
        paths = tuple(f"{image_id}.png" for image_id in report.image_ids)
        missing_images += sum(not (images_dir / p).is_file() for p in paths)
        by_split[splits[study_id]].append(Study(study_id, report.findings, paths, splits[study_id]))
    return by_split, missing_images
