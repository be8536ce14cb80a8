"""Evaluation of a CheXpert-style labeler against the NegBio OpenI gold standard (development half).

Owns reading the gold labels (``negbio/openi_gld_std14.dev.csv``, one row per IU X-Ray report keyed
``CXR<uid>``, 0/1 per ChestX-ray14 finding), reading the matching report texts (FINDINGS and IMPRESSION of
``ecgen-radiology/<uid>.xml`` inside ``iu_xray_openi_reports/NLMCXR_reports.tgz``, read in memory: the IU
X-Ray files are never extracted or copied) and scoring labels against the gold, positive vs not.

Gold mapping. The gold CSV holds only 0 and 1 (checked on load): 1 = the annotators marked the finding
present in the report, 0 = not marked (absent, negated, or only hedged). Seven gold columns name a CheXpert
observation: Atelectasis, Cardiomegaly, Effusion (-> Pleural Effusion), Pneumonia, Pneumothorax,
Consolidation and Edema. A labeler value counts as positive only when it is 1; 0 (negative), -1 (uncertain)
and None (not mentioned) all count as "not". The annotators' convention, read off the development half: a
finding named as one of a differential ("bibasilar atelectasis or scarring", "atelectasis versus
infiltrate") or a "borderline" heart size is marked present; a hedged one ("may represent atelectasis",
"could be pneumonia", "concerning for pneumonia", "question small effusion") is not. 15 of the 1,999 XMLs have
empty FINDINGS and IMPRESSION (gold: all seven 0); they stay in, as empty reports.
"""

from __future__ import annotations

import csv
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

GOLD_TO_CHEXPERT: dict[str, str] = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Effusion": "Pleural Effusion",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
    "Consolidation": "Consolidation",
    "Edema": "Edema",
}
"""The seven gold columns shared with CheXpert, and the CheXpert observation each one maps to."""

GOLD_CSV = Path("negbio") / "openi_gld_std14.dev.csv"
REPORTS_TGZ = Path("iu_xray_openi_reports") / "NLMCXR_reports.tgz"
SECTIONS = ("FINDINGS", "IMPRESSION")


@dataclass(frozen=True)
class GoldReport:
    """One report of the gold standard: its key, its FINDINGS + IMPRESSION text and its 0/1 gold labels."""

    key: str
    text: str
    gold: dict[str, int]


def read_gold(real_data: Path) -> dict[str, dict[str, int]]:
    """``{CXR<uid>: {gold column: 0|1}}`` for the seven shared columns; any other value is an error."""
    with (real_data / GOLD_CSV).open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    gold = {}
    for row in rows:
        values = {column: row[column] for column in GOLD_TO_CHEXPERT}
        if set(values.values()) - {"0", "1"}:
            raise ValueError(f"{row['filename']}: gold values other than 0/1: {values}")
        gold[row["filename"]] = {column: int(value) for column, value in values.items()}
    return gold


def report_text(xml_bytes: bytes) -> str:
    """FINDINGS then IMPRESSION of one Open-i XML, each ending in a full stop, joined by a space."""
    root = ET.fromstring(xml_bytes)
    parts = {element.get("Label"): "".join(element.itertext()).strip() for element in root.iter("AbstractText")}
    texts = [parts[s] for s in SECTIONS if parts.get(s)]
    return " ".join(t if t.endswith((".", "?", "!")) else t + "." for t in texts)


def read_reports(real_data: Path, keys: Sequence[str]) -> dict[str, str]:
    """Report texts for the ``CXR<uid>`` keys, read from the tarball in memory."""
    wanted = {f"{key.removeprefix('CXR')}.xml": key for key in keys}
    texts = {}
    with tarfile.open(real_data / REPORTS_TGZ, "r:gz") as tar:
        for member in tar:
            key = wanted.get(Path(member.name).name)
            if key is None or not member.isfile():
                continue
            handle = tar.extractfile(member)
            if handle is not None:
                texts[key] = report_text(handle.read())
    missing = sorted(set(keys) - set(texts))
    if missing:
        raise ValueError(f"{len(missing)} gold reports have no XML in {REPORTS_TGZ}, e.g. {missing[:3]}")
    return texts


def load_dev_set(real_data: Path) -> list[GoldReport]:
    """The development half of the gold standard with its report texts, in CSV order."""
    gold = read_gold(real_data)
    texts = read_reports(real_data, list(gold))
    return [GoldReport(key, texts[key], labels) for key, labels in gold.items()]


@dataclass(frozen=True)
class Score:
    """Positive-vs-not counts and F1 of one observation."""

    tp: int
    fp: int
    fn: int

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp + self.fp + self.fn else 1.0


def score(reports: Sequence[GoldReport], labels: Sequence[dict[str, int | None]]) -> dict[str, Score]:
    """Per gold column: TP/FP/FN of ``labels`` (one CheXpert dict per report; 1 = positive) against gold."""
    out = {}
    for column, observation in GOLD_TO_CHEXPERT.items():
        pairs = [(r.gold[column] == 1, lab[observation] == 1) for r, lab in zip(reports, labels, strict=True)]
        out[column] = Score(
            tp=sum(g and p for g, p in pairs), fp=sum(p and not g for g, p in pairs),
            fn=sum(g and not p for g, p in pairs),
        )
    return out


def macro_f1(scores: dict[str, Score]) -> float:
    return sum(s.f1 for s in scores.values()) / len(scores)


def describe(scores: dict[str, Score]) -> str:
    """One line: macro-F1, then F1 (tp/fp/fn) per gold column."""
    parts = [f"{c} {s.f1:.3f} ({s.tp}/{s.fp}/{s.fn})" for c, s in scores.items()]
    return f"macro-F1 {macro_f1(scores):.4f}; " + ", ".join(parts)


def errors(reports: Sequence[GoldReport], labels: Sequence[dict[str, int | None]],
           column: str) -> list[tuple[str, str, int, int | None]]:
    """``(key, text, gold, label)`` for the reports where ``column`` disagrees (for inspection)."""
    observation = GOLD_TO_CHEXPERT[column]
    return [(r.key, r.text, r.gold[column], lab[observation]) for r, lab in zip(reports, labels, strict=True)
            if (r.gold[column] == 1) != (lab[observation] == 1)]
