"""The built-in ``synthetic`` dataset: chest-radiograph-like images with reports that describe them.

This module owns the whole generator: the label model (which findings a study has and how they
co-occur), the renderer (a frontal PA chest radiograph drawn with vectorised numpy), the report writer
(paraphrased sentence templates) and the on-disk build in R2Gen format; its options and cache key are
:class:`rrgbench.data.synthetic_spec.SyntheticSpec`. ``parse_findings`` / ``finding_accuracy``, the exact
inverse of the report writer, are the tests' proof that every report states the findings drawn in its image
(and a diagnostic: how many findings a model's reports get right).

Design decisions
----------------
* Determinism. A study depends only on ``(spec.seed, split, index)`` and the generator version
  (``GENERATOR_VERSION``), never on generation order: its random streams come from
  ``np.random.SeedSequence`` keyed by those values. Labels, anatomy, texture/noise and report wording
  use separate streams, so changing one finding never changes the wording or noise of the rest.
* Image convention. Images are frontal PA views in radiological convention: the patient's right is on
  the image's left. Wherever a report states a side ("left pleural effusion") or a size/severity
  ("small", "moderate", "large"; "mild" ... "severe"), the drawing shows exactly that; size words map
  to disjoint bands of the drawn quantity (fluid height, lung collapse, cardiothoracic ratio, radius).
* Difficulty in [0, 1] changes only the image: finding contrast and size, noise, pose jitter, how
  close the normal and mild cardiothoracic ratios are, and the share of subtle (low-contrast) findings.
  The label distribution and the reports are the same at every difficulty, so scores are comparable.
* Label model (marginal prevalences, measured on 20k studies; independent of difficulty):
  cardiomegaly 32%, pleural effusion 31%, pneumothorax 12%, consolidation 27%, nodule 13%, edema 19%,
  support devices 29%; 25% of studies are normal. Edema follows cardiomegaly and effusion
  (P(edema | cardiomegaly) 0.41 vs 0.09 without); support devices follow pneumothorax (0.65 vs 0.24)
  and consolidation (0.47).
* Reports. Every finding of an abnormal study is stated, positively or negated (a negated support
  device sentence is sometimes left out, as real reports do). Each statement has 2-4 paraphrases and
  the sentence order is partly random, so even a perfect image reader stays well below BLEU 1.
  Normal studies get a normal-style report ending with e.g. "No acute cardiopulmonary abnormality."
  The vocabulary is what CheXpert-style rule labelers recognise ("cardiomegaly", "pleural effusion",
  "pulmonary edema", "endotracheal tube", ...), so the project's CE labelers read it correctly too.
* On disk (``build``): ``root/<fingerprint>/`` holds ``images/<id>.png``, ``annotation.json`` in R2Gen
  format, ``findings.json`` (id -> finding -> 0/1), ``spec.json`` and a ``.complete`` marker. It is
  written into a temporary sibling folder and renamed into place, so concurrent builds are safe.
* Speed: everything is drawn with whole-array numpy operations on a float32 grid (about 10 ms of CPU
  per 128 px study on a busy machine), so the default 1,450 studies build in well under a minute.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from rrgbench.data.source import available_cores
from rrgbench.data.synthetic_spec import GENERATOR_VERSION, SyntheticSpec
from rrgbench.errors import ConfigError, DataError

FINDINGS: tuple[str, ...] = (
    "cardiomegaly",
    "pleural_effusion",
    "pneumothorax",
    "consolidation",
    "nodule",
    "edema",
    "support_devices",
)

CHEXPERT_OBSERVATION: dict[str, str] = {
    "cardiomegaly": "Cardiomegaly",
    "pleural_effusion": "Pleural Effusion",
    "pneumothorax": "Pneumothorax",
    "consolidation": "Consolidation",
    "nodule": "Lung Lesion",
    "edema": "Edema",
    "support_devices": "Support Devices",
}

SPLIT_CODES: dict[str, int] = {"train": 0, "val": 1, "test": 2}
COMPLETE_MARKER = ".complete"
NORMAL_RATE = 0.25

# ----------------------------------------------------------------------------------------------
# Specification and records
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticStudy:
    """One generated study: a uint8 ``[H, W]`` grayscale image, its report and its true findings."""

    id: str
    split: str
    image: np.ndarray
    report: str
    findings: dict[str, int]


@dataclass(frozen=True)
class Finding:
    """How one present finding is drawn and described.

    ``side`` is the patient's side ("right", "left", "bilateral"), ``grade`` the size/severity word of
    the report, ``extent`` the drawn quantity inside that grade's band, ``conspicuity`` a contrast
    multiplier (< 0.6 for subtle cases) and ``seed`` the seed of the finding's own shape noise.
    """

    name: str
    side: str = ""
    grade: str = ""
    zone: str = ""
    devices: tuple[str, ...] = ()
    extent: float = 0.0
    extent_left: float = 0.0
    conspicuity: float = 1.0
    dx: float = 0.0
    dy: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class Anatomy:
    """Per-study anatomy, pose and exposure (normalised image coordinates in [-1, 1], y downwards)."""

    angle: float
    shift: tuple[float, float]
    scale: float
    thorax_hw: float
    apex_y: float
    dia_right: float
    dia_left: float
    dome: float
    heart_ctr: float
    heart_dy: float
    medi_hw: float
    rib_y0: float
    rib_step: float
    clavicle_y: float
    tissue: float
    breast: float
    gain: float
    offset: float
    gamma: float


@dataclass(frozen=True)
class SyntheticCase:
    """Everything that determines a study before wording: labels, finding details and anatomy."""

    findings: dict[str, int]
    details: tuple[Finding, ...]
    anatomy: Anatomy
    texture_seed: int
    normal: bool = False

    def detail(self, name: str) -> Finding | None:
        """The drawn detail of a present finding, or None when it is absent."""
        return next((d for d in self.details if d.name == name), None)


def _check_split(split: str) -> None:
    if split not in SPLIT_CODES:
        raise ConfigError(f"synthetic: unknown split '{split}' (expected one of {', '.join(SPLIT_CODES)})")


def study_id(split: str, index: int) -> str:
    """The id of study ``index`` of ``split``, e.g. ``synth-train-00042``."""
    return f"synth-{split}-{index:05d}"


def _streams(spec: SyntheticSpec, split: str, index: int) -> list[np.random.Generator]:
    """Four independent generators (labels, anatomy, texture, wording) keyed by seed, split, index."""
    _check_split(split)
    if index < 0:
        raise ConfigError(f"synthetic: index must be >= 0, got {index}")
    root = np.random.SeedSequence([GENERATOR_VERSION, int(spec.seed), SPLIT_CODES[split], int(index)])
    return [np.random.default_rng(child) for child in root.spawn(4)]


# ----------------------------------------------------------------------------------------------
# Label model
# ----------------------------------------------------------------------------------------------


def _sample_labels(rng: np.random.Generator) -> tuple[dict[str, int], bool]:
    """Draw the findings of one study with realistic co-occurrence; returns (labels, is_normal)."""
    if rng.random() < NORMAL_RATE:
        return {f: 0 for f in FINDINGS}, True
    for _ in range(100):
        labels = _sample_abnormal(rng)
        if any(labels.values()):
            return labels, False
    labels["consolidation"] = 1
    return labels, False


def _sample_abnormal(rng: np.random.Generator) -> dict[str, int]:
    u = rng.random(7)
    cardio = int(u[0] < 0.33)
    effusion = int(u[1] < 0.22 + 0.30 * cardio)
    edema = int(u[2] < 0.04 + 0.26 * cardio + 0.22 * effusion)
    ptx = int(u[3] < 0.12)
    cons = int(u[4] < 0.28)
    nodule = int(u[5] < 0.14)
    devices = int(u[6] < 0.18 + 0.40 * ptx + 0.25 * cons)
    values = (cardio, effusion, ptx, cons, nodule, edema, devices)
    return dict(zip(FINDINGS, values, strict=True))


def _contrast_scale(difficulty: float) -> float:
    return 1.25 - 0.75 * difficulty


def _conspicuity(rng: np.random.Generator, difficulty: float) -> float:
    """Contrast multiplier of one finding: subtle (0.3-0.55) with a probability rising with difficulty."""
    base = _contrast_scale(difficulty)
    if rng.random() < 0.05 + 0.35 * difficulty:
        return base * float(rng.uniform(0.3, 0.55))
    return base * float(rng.uniform(0.85, 1.15))


CTR_BANDS: dict[str, tuple[float, float]] = {
    "mild": (0.56, 0.60),
    "moderate": (0.61, 0.65),
    "severe": (0.66, 0.72),
}


def normal_ctr_band(difficulty: float) -> tuple[float, float]:
    """Cardiothoracic ratio band of a normal heart; its upper end nears 'mild' as difficulty rises."""
    return 0.39, 0.46 + 0.05 * difficulty


def mild_ctr_low(difficulty: float) -> float:
    return CTR_BANDS["mild"][0] - 0.03 * difficulty


EFFUSION_BANDS: dict[str, tuple[float, float]] = {
    "small": (0.10, 0.16),
    "moderate": (0.28, 0.38),
    "large": (0.50, 0.62),
}
PTX_BANDS: dict[str, tuple[float, float]] = {
    "small": (0.86, 0.90),
    "moderate": (0.72, 0.78),
    "large": (0.52, 0.60),
}
NODULE_BANDS: dict[str, tuple[float, float]] = {"small": (0.030, 0.042), "large": (0.085, 0.11)}


def _pick(rng: np.random.Generator, options: Sequence[str], weights: Sequence[float] | None = None) -> str:
    p = None if weights is None else np.asarray(weights, dtype=float) / float(np.sum(weights))
    return str(options[int(rng.choice(len(options), p=p))])


def _band(rng: np.random.Generator, band: tuple[float, float]) -> float:
    return float(rng.uniform(*band))


def _detail_cardiomegaly(rng: np.random.Generator, d: float) -> Finding:
    grade = _pick(rng, ("mild", "moderate", "severe"), (0.5, 0.35, 0.15))
    low, high = CTR_BANDS[grade]
    low = mild_ctr_low(d) if grade == "mild" else low
    return Finding("cardiomegaly", grade=grade, extent=float(rng.uniform(low, high)),
                   conspicuity=1.0)


def _detail_effusion(rng: np.random.Generator, d: float) -> Finding:
    side = _pick(rng, ("right", "left", "bilateral"), (0.4, 0.3, 0.3))
    grade = _pick(rng, ("small", "moderate", "large"), (0.5, 0.35, 0.15))
    return Finding("pleural_effusion", side=side, grade=grade, extent=_band(rng, EFFUSION_BANDS[grade]),
                   extent_left=_band(rng, EFFUSION_BANDS[grade]), conspicuity=_conspicuity(rng, d))


def _detail_pneumothorax(rng: np.random.Generator, d: float) -> Finding:
    side = _pick(rng, ("right", "left"))
    grade = _pick(rng, ("small", "moderate", "large"), (0.5, 0.3, 0.2))
    return Finding("pneumothorax", side=side, grade=grade, extent=_band(rng, PTX_BANDS[grade]),
                   conspicuity=_conspicuity(rng, d))


def _detail_consolidation(rng: np.random.Generator, d: float) -> Finding:
    side = _pick(rng, ("right", "left"))
    zone = _pick(rng, ("upper", "lower"), (0.35, 0.65))
    radius = float(rng.uniform(0.16, 0.22)) * (1.1 - 0.2 * d)
    return Finding("consolidation", side=side, zone=zone, extent=radius, conspicuity=_conspicuity(rng, d),
                   dx=float(rng.uniform(-0.06, 0.06)), dy=float(rng.uniform(-0.05, 0.05)),
                   seed=int(rng.integers(2**31)))


def _detail_nodule(rng: np.random.Generator, d: float) -> Finding:
    side = _pick(rng, ("right", "left"))
    zone = _pick(rng, ("upper", "mid", "lower"))
    grade = _pick(rng, ("small", "large"), (0.65, 0.35))
    radius = _band(rng, NODULE_BANDS[grade]) * (1.1 - 0.2 * d)
    return Finding("nodule", side=side, zone=zone, grade=grade, extent=radius,
                   conspicuity=_conspicuity(rng, d), dx=float(rng.uniform(-0.1, 0.1)),
                   dy=float(rng.uniform(-0.06, 0.06)))


def _detail_edema(rng: np.random.Generator, d: float) -> Finding:
    grade = _pick(rng, ("mild", "moderate"), (0.55, 0.45))
    extent = 0.5 if grade == "mild" else 1.0
    return Finding("edema", grade=grade, extent=extent, conspicuity=_conspicuity(rng, d))


def _detail_devices(rng: np.random.Generator, d: float) -> Finding:
    pool = ("ett", "ngt", "cvc", "pacemaker")
    count = 1 if rng.random() < 0.65 else 2
    chosen = sorted(rng.choice(len(pool), size=count, replace=False).tolist())
    devices = []
    for i in chosen:
        kind = pool[i]
        if kind == "cvc":
            kind += "_" + _pick(rng, ("right", "left"), (0.7, 0.3))
        elif kind == "pacemaker":
            kind += "_" + _pick(rng, ("left", "right"), (0.8, 0.2))
        devices.append(kind)
    return Finding("support_devices", devices=tuple(devices), conspicuity=max(0.55, _conspicuity(rng, d)))


_DETAILS: dict[str, Callable[[np.random.Generator, float], Finding]] = {
    "cardiomegaly": _detail_cardiomegaly,
    "pleural_effusion": _detail_effusion,
    "pneumothorax": _detail_pneumothorax,
    "consolidation": _detail_consolidation,
    "nodule": _detail_nodule,
    "edema": _detail_edema,
    "support_devices": _detail_devices,
}


def _sample_anatomy(rng: np.random.Generator, d: float) -> Anatomy:
    jitter = 0.5 + d
    ctr_low, ctr_high = normal_ctr_band(d)
    dia_right = float(rng.uniform(0.26, 0.36))
    return Anatomy(
        angle=float(rng.normal(0.0, 0.025 * jitter)),
        shift=(float(rng.normal(0.0, 0.025 * jitter)), float(rng.normal(0.0, 0.025 * jitter))),
        scale=float(rng.uniform(0.96, 1.04)),
        thorax_hw=float(rng.uniform(0.74, 0.82)),
        apex_y=float(rng.uniform(-0.76, -0.68)),
        dia_right=dia_right,
        dia_left=dia_right + float(rng.uniform(0.03, 0.08)),
        dome=float(rng.uniform(0.10, 0.16)),
        heart_ctr=float(rng.uniform(ctr_low, ctr_high)),
        heart_dy=float(rng.uniform(-0.03, 0.03)),
        medi_hw=float(rng.uniform(0.13, 0.16)),
        rib_y0=float(rng.uniform(-0.92, -0.86)),
        rib_step=float(rng.uniform(0.125, 0.145)),
        clavicle_y=float(rng.uniform(-0.66, -0.58)),
        tissue=float(rng.uniform(0.52, 0.60)),
        breast=float(rng.uniform(0.0, 0.08)),
        gain=float(rng.uniform(1.0 - 0.08 * jitter, 1.0 + 0.08 * jitter)),
        offset=float(rng.uniform(-0.04 * jitter, 0.04 * jitter)),
        gamma=float(rng.uniform(1.0 - 0.12 * jitter, 1.0 + 0.12 * jitter)),
    )


def sample_case(spec: SyntheticSpec, split: str, index: int) -> SyntheticCase:
    """The labels, finding details and anatomy of study ``index`` of ``split`` (no pixels, no words)."""
    return _case_from_streams(spec, _streams(spec, split, index))


def _case_from_streams(spec: SyntheticSpec, streams: list[np.random.Generator]) -> SyntheticCase:
    label_rng, anatomy_rng, texture_rng = streams[:3]
    labels, normal = _sample_labels(label_rng)
    d = float(spec.difficulty)
    details = tuple(_DETAILS[name](label_rng, d) for name in FINDINGS if labels[name])
    anatomy = _sample_anatomy(anatomy_rng, d)
    return SyntheticCase(labels, details, anatomy, int(texture_rng.integers(2**31)), normal)


# ----------------------------------------------------------------------------------------------
# Rendering (all shapes are soft masks on a coordinate grid; no per-pixel Python loops)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Canvas:
    """Patient coordinates of every pixel (after pose), the pose itself and the size of one pixel."""

    x: np.ndarray
    y: np.ndarray
    px: float
    anatomy: Anatomy
    cache: dict[str, np.ndarray] = field(default_factory=dict, compare=False)

    def step(self, signed: np.ndarray, width: float = 1.0) -> np.ndarray:
        """Soft indicator of ``signed > 0``: a linear ramp about ``width`` pixels wide (anti-aliasing)."""
        ramp = signed * np.float32(1.0 / (self.px * width))
        ramp += np.float32(0.5)
        np.maximum(ramp, np.float32(0.0), out=ramp)
        return np.minimum(ramp, np.float32(1.0), out=ramp)

    def ellipse(self, cx: float, cy: float, a: float, b: float, width: float = 1.0) -> np.ndarray:
        r = np.sqrt(((self.x - cx) / a) ** 2 + ((self.y - cy) / b) ** 2)
        return self.step((1.0 - r) * min(a, b), width)

    def to_pixels(self, points: np.ndarray) -> np.ndarray:
        """Patient coordinates ``[K, 2]`` to (row, col) pixel coordinates ``[K, 2]`` (inverse pose)."""
        a = self.anatomy
        cos, sin = math.cos(a.angle), math.sin(a.angle)
        gx = a.shift[0] + a.scale * (cos * points[:, 0] - sin * points[:, 1])
        gy = a.shift[1] + a.scale * (sin * points[:, 0] + cos * points[:, 1])
        return np.stack([(gy + 1.0) / self.px - 0.5, (gx + 1.0) / self.px - 0.5], axis=1)


def _canvas(size: int, anatomy: Anatomy) -> _Canvas:
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    gy, gx = np.meshgrid(c, c, indexing="ij")
    tx, ty = anatomy.shift
    cos, sin = math.cos(anatomy.angle), math.sin(anatomy.angle)
    x = (cos * (gx - tx) + sin * (gy - ty)) / anatomy.scale
    y = (-sin * (gx - tx) + cos * (gy - ty)) / anatomy.scale
    return _Canvas(x.astype(np.float32), y.astype(np.float32), 2.0 / size, anatomy)


def side_sign(side: str) -> float:
    """Image-x direction of a patient side: the patient's right is on the image's left (PA view)."""
    return -1.0 if side == "right" else 1.0


def _sides(side: str) -> tuple[str, ...]:
    return ("right", "left") if side == "bilateral" else (side,)


def _diaphragm_y(anatomy: Anatomy, side: str, xm: np.ndarray) -> np.ndarray:
    """Hemidiaphragm height at lateral coordinate ``xm`` (dome highest mid-hemithorax)."""
    base = anatomy.dia_right if side == "right" else anatomy.dia_left
    u = (xm - 0.42 * anatomy.thorax_hw) / (0.62 * anatomy.thorax_hw)
    return base - anatomy.dome * (1.0 - np.clip(u, -1.0, 1.0) ** 2) + 0.06


def _lung_signed(
    cv: _Canvas, anatomy: Anatomy, side: str, x: np.ndarray, y: np.ndarray, medial_wall: bool = True
) -> np.ndarray:
    """Approximate signed distance (positive inside) to one hemithorax's air space.

    Without ``medial_wall`` the shape is open towards the mediastinum (a collapsed lung stays attached
    at the hilum).
    """
    xm = x * side_sign(side)
    hw = anatomy.thorax_hw
    bottom = _diaphragm_y(anatomy, side, xm)
    apex_x = 0.36 * hw
    top = anatomy.apex_y + 2.2 * np.maximum(xm - apex_x, 0.0) ** 2 + 2.5 * np.maximum(apex_x - xm, 0.0) ** 2
    height = np.clip((y - anatomy.apex_y) / (bottom - anatomy.apex_y + 1e-3), 0.0, 1.0)
    lateral = hw * (0.5 + 0.5 * np.sqrt(np.sqrt(height)))
    bounds = [y - top, bottom - y, lateral - xm]
    if medial_wall:
        bounds.append(xm - (0.05 + 0.02 * height))
    return np.minimum.reduce(bounds)


def _lung(cv: _Canvas, anatomy: Anatomy, side: str) -> np.ndarray:
    """Soft mask of one hemithorax's air space (cached on the canvas; do not modify)."""
    key = f"lung_{side}"
    if key not in cv.cache:
        cv.cache[key] = cv.step(_lung_signed(cv, anatomy, side, cv.x, cv.y), 1.2)
    return cv.cache[key]


def _hilum(anatomy: Anatomy, side: str) -> tuple[float, float]:
    return side_sign(side) * 0.2, anatomy.apex_y + 0.45 * (anatomy.dia_right + 0.06 - anatomy.apex_y)


HEART_TILT = 0.45
HEART_ASPECT = 0.64


def _heart_geometry(case: SyntheticCase) -> tuple[float, float, float, float]:
    """Heart as a tilted ellipse (cx, cy, long, short semi-axes), apex pointing to the patient's left.

    Its horizontal extent is CTR x thorax width, about one third of it right of the midline.
    """
    anatomy = case.anatomy
    cardio = case.detail("cardiomegaly")
    ctr = cardio.extent if cardio else anatomy.heart_ctr
    width = ctr * 2.0 * anatomy.thorax_hw
    cos2, sin2 = math.cos(HEART_TILT) ** 2, math.sin(HEART_TILT) ** 2
    long = 0.5 * width / math.sqrt(cos2 + HEART_ASPECT**2 * sin2)
    short = HEART_ASPECT * long
    vertical = long * math.sqrt(sin2 + HEART_ASPECT**2 * cos2)
    cx = -0.30 * width + 0.5 * width
    cy = anatomy.dia_left + 0.06 - 0.72 * vertical + anatomy.heart_dy
    return cx, cy, long, short


def heart_width(case: SyntheticCase) -> float:
    """Drawn heart width in normalised units (2 = image width), before pose scaling."""
    anatomy = case.anatomy
    cardio = case.detail("cardiomegaly")
    return (cardio.extent if cardio else anatomy.heart_ctr) * 2.0 * anatomy.thorax_hw


def _heart_radius(case: SyntheticCase, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
    """Elliptical radius of points w.r.t. the heart outline (< 1 inside)."""
    cx, cy, long, short = _heart_geometry(case)
    cos, sin = math.cos(HEART_TILT), math.sin(HEART_TILT)
    dx, dy = np.subtract(x, cx), np.subtract(y, cy)
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    return np.sqrt((u / long) ** 2 + (v / short) ** 2)


def _heart(cv: _Canvas, case: SyntheticCase) -> np.ndarray:
    short = _heart_geometry(case)[3]
    return cv.step((1.0 - _heart_radius(case, cv.x, cv.y)) * short, 1.2)


MAX_LIFT = 0.08
"""How far a focal finding may move up to clear the heart; small enough to stay in its stated zone."""


def _focal_center(
    case: SyntheticCase, finding: Finding, frac: float, lateral: float, margin: float
) -> tuple[float, float]:
    """Centre of a focal finding in its lung zone, nudged laterally, then upwards, clear of the heart.

    ``frac`` is the height in the hemithorax (0 apex, 1 costophrenic angle), ``lateral`` the distance
    from the midline as a fraction of the thorax half-width.
    """
    anatomy = case.anatomy
    s = side_sign(finding.side)
    top, bottom = anatomy.apex_y, (anatomy.dia_right if finding.side == "right" else anatomy.dia_left) + 0.06
    cy = top + frac * (bottom - top) + finding.dy
    xm = lateral * anatomy.thorax_hw + finding.dx
    short = _heart_geometry(case)[3]
    lift = 0.0
    for _ in range(40):
        if float(_heart_radius(case, s * xm, cy - lift)) > 1.0 + margin / short:
            break
        if xm < 0.8 * anatomy.thorax_hw - 0.5 * margin:
            xm += 0.02
        elif lift < MAX_LIFT:
            lift += 0.02
        else:
            break  # a very large heart: overlap it rather than leave the stated zone
    return s * xm, cy - lift


def _mediastinum(cv: _Canvas, anatomy: Anatomy) -> np.ndarray:
    hw = anatomy.medi_hw * (1.0 + 0.25 * np.clip(cv.y + 0.2, 0.0, 1.0))
    upper = cv.step(hw - np.abs(cv.x - 0.01), 1.2) * cv.step(0.45 - cv.y, 2.0)
    knob = cv.ellipse(anatomy.medi_hw, -0.3, 0.06, 0.065, 1.2)
    return np.maximum(upper, knob)


def _body(cv: _Canvas, anatomy: Anatomy) -> np.ndarray:
    """Soft mask of the patient: the chest wall, widening into the shoulders at the top, and the arms
    (less dense) beyond a thin air gap at the sides."""
    hw = 0.91 + 0.05 * np.clip(cv.y, -1.0, 1.0) + 0.3 * np.clip((-0.55 - cv.y) / 0.3, 0.0, 1.0)
    chest = cv.step(hw - np.abs(cv.x), 2.0)
    arms = cv.step(np.abs(cv.x) - hw - 0.05, 2.0)
    return chest + 0.75 * arms


def _band_mask(cv: _Canvas, center: np.ndarray, half: float, width: float = 1.0) -> np.ndarray:
    return cv.step(half - np.abs(cv.y - center), width)


def _rib_family(cv: _Canvas, anatomy: Anatomy, lift: np.ndarray, half: float) -> np.ndarray:
    """Bands ``half`` thick along the curves ``y = rib_y0 + k * rib_step + lift`` for k = 0..10.

    One periodic evaluation instead of a loop over ribs: the distance to the nearest curve of the
    family is the distance of the fractional "rib index" to an integer.
    """
    index = (cv.y - anatomy.rib_y0 - lift) / anatomy.rib_step
    nearest = np.clip(np.rint(index), 0.0, 10.0)
    dist = np.abs(index - nearest) * anatomy.rib_step
    return cv.step(half - dist, 1.0)


def _ribs(cv: _Canvas, anatomy: Anatomy) -> np.ndarray:
    """Posterior ribs (arching up, then down laterally; bright lower cortex) and fainter anterior ribs."""
    ax = np.abs(cv.x)
    u = np.clip(ax / anatomy.thorax_hw, 0.0, 1.0)
    inside = cv.step(anatomy.thorax_hw + 0.08 - ax, 2.0) * cv.step(ax - 0.06, 1.5)
    posterior = -0.30 * u + 0.45 * u**2
    total = 0.6 * _rib_family(cv, anatomy, posterior, 0.032)
    total += 0.3 * _rib_family(cv, anatomy, posterior + 0.032, 0.006)
    anterior = 0.16 + 0.34 * (1.0 - u) ** 1.5
    total += 0.22 * _rib_family(cv, anatomy, anterior, 0.03) * cv.step(u - 0.3, 3.0)
    return total * inside * (1.0 - 0.7 * _below_diaphragm(cv, anatomy))


def _clavicles(cv: _Canvas, anatomy: Anatomy) -> np.ndarray:
    ax = np.abs(cv.x)
    center = anatomy.clavicle_y - 0.30 * (ax - 0.1) + 0.25 * (ax - 0.45) ** 2
    span = cv.step(ax - 0.08, 1.5) * cv.step(0.86 - ax, 2.0)
    return _band_mask(cv, center, 0.042, 1.2) * span


def _spine(cv: _Canvas, anatomy: Anatomy) -> np.ndarray:
    body = cv.step(0.085 - np.abs(cv.x), 1.5)
    discs = 0.75 + 0.25 * np.cos((cv.y - anatomy.rib_y0) * (2.0 * math.pi / anatomy.rib_step))
    pedicles = cv.step(0.02 - np.abs(np.abs(cv.x) - 0.06), 1.0) * (discs > 0.9)
    return body * discs + 0.3 * pedicles


def _shoulders(cv: _Canvas, anatomy: Anatomy) -> np.ndarray:
    left = cv.ellipse(0.97, anatomy.clavicle_y - 0.1, 0.16, 0.15, 1.5)
    right = cv.ellipse(-0.97, anatomy.clavicle_y - 0.1, 0.16, 0.15, 1.5)
    return left + right


def _trachea(cv: _Canvas, anatomy: Anatomy) -> np.ndarray:
    carina = _carina_y(anatomy)
    tube = cv.step(0.035 - np.abs(cv.x - 0.01), 1.2) * cv.step(carina - cv.y, 1.5)
    along = cv.y - carina
    offset = np.abs(np.abs(cv.x - 0.01) - 0.9 * np.maximum(along, 0.0))
    bronchi = cv.step(0.025 - offset, 1.0) * cv.step(along, 1.0) * cv.step(0.14 - along, 1.5)
    return np.minimum(tube + bronchi, 1.0)


def _carina_y(anatomy: Anatomy) -> float:
    return anatomy.apex_y + 0.42


def _smooth_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation (``scale`` in fractions of the size)."""
    sigma = size * scale
    white = rng.random((size, size), dtype=np.float32)  # uniform is cheaper; smoothing makes it Gaussian
    white -= np.float32(0.5)
    smooth = ndimage.gaussian_filter(white, sigma, truncate=2.5)
    smooth *= np.float32(math.sqrt(12.0) * 2.0 * math.sqrt(math.pi) * sigma)  # 1 / std after filtering
    return smooth


def _texture(cv: _Canvas, anatomy: Anatomy, rng: np.random.Generator, size: int) -> np.ndarray:
    """Lung markings: vessel-like lines fanning out from each hilum (zero crossings of a radial
    pattern perturbed by smooth noise), denser and brighter towards the hila."""
    hx, hy = _hilum(anatomy, "left")  # the hila are mirror images: measure from |x|
    dx, dy = np.abs(cv.x) - hx, (cv.y - hy) / 1.3
    r = np.sqrt(dx * dx + dy * dy)
    spread = np.minimum(r * np.float32(1 / 0.3), np.float32(1.0))  # keeps lines wide near the hila
    field = spread * np.sin(9.0 * np.arctan2(dy, dx)) + 0.6 * _smooth_noise(rng, size, 1 / 70)
    vessels = np.exp(-((field / 0.3) ** 2))
    hilar = np.exp(-((r / 0.14) ** 2)) * 0.8 + np.exp(-r / 0.4) * 0.6
    return vessels * (0.3 + hilar)


def _polyline(cv: _Canvas, points: np.ndarray, half: float) -> np.ndarray:
    """Soft mask of a thick polyline through ``points`` ([K, 2], patient coordinates).

    Exact distances are computed only for pixels near the path (found by rasterising it densely), so
    the cost scales with the path length, not the image area.
    """
    size = cv.x.shape[0]
    out = np.zeros_like(cv.x)
    near = _pixels_near(cv, points, half)
    if near.size == 0:
        return out
    px, py = cv.x.ravel()[near][:, None], cv.y.ravel()[near][:, None]
    a, seg = points[:-1], points[1:] - points[:-1]
    length2 = np.maximum((seg**2).sum(axis=1), 1e-9)
    t = np.clip(((px - a[:, 0]) * seg[:, 0] + (py - a[:, 1]) * seg[:, 1]) / length2, 0.0, 1.0)
    dist = np.sqrt((px - a[:, 0] - t * seg[:, 0]) ** 2 + (py - a[:, 1] - t * seg[:, 1]) ** 2).min(axis=1)
    out.reshape(-1)[near] = cv.step(half - dist, 0.8)
    return out.reshape(size, size)


def _pixels_near(cv: _Canvas, points: np.ndarray, half: float) -> np.ndarray:
    """Flat indices of the pixels within ``half`` (+2 px) of the polyline."""
    size = cv.x.shape[0]
    pix = cv.to_pixels(points)
    along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pix, axis=0), axis=1))])
    t = np.append(np.arange(0.0, along[-1], 0.5), along[-1])  # a sample every half pixel
    dense = np.stack([np.interp(t, along, pix[:, 0]), np.interp(t, along, pix[:, 1])], axis=1)
    reach = int(np.ceil(half / cv.px)) + 2
    offsets = np.arange(-reach, reach + 1)
    rows = (np.rint(dense[:, 0])[:, None, None] + offsets[None, :, None]).astype(int)
    cols = (np.rint(dense[:, 1])[:, None, None] + offsets[None, None, :]).astype(int)
    rows, cols = np.broadcast_arrays(rows, cols)
    ok = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    return np.unique(rows[ok] * size + cols[ok])


def _curve(*control: tuple[float, float], n: int = 14) -> np.ndarray:
    """A smooth path through control points (quadratic Bezier chain), as an [n*k, 2] polyline."""
    pts = np.asarray(control, dtype=np.float32)
    if len(pts) == 2:
        t = np.linspace(0, 1, n, dtype=np.float32)[:, None]
        return pts[0] * (1 - t) + pts[1] * t
    t = np.linspace(0, 1, n, dtype=np.float32)[:, None]
    out = [pts[0]]
    for i in range(0, len(pts) - 2, 2):
        p0, p1, p2 = pts[i], pts[i + 1], pts[i + 2]
        out.extend((1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2)
    return np.asarray(out, dtype=np.float32)


def _device_paths(case: SyntheticCase, kind: str) -> list[tuple[np.ndarray, float, float]]:
    """(polyline, half width, density) pieces that draw one support device."""
    anatomy = case.anatomy
    carina = _carina_y(anatomy)
    cx, cy, long, _ = _heart_geometry(case)
    apex = (cx + 0.45 * long * math.cos(HEART_TILT), cy + 0.45 * long * math.sin(HEART_TILT))
    if kind == "ett":
        return [(_curve((0.01, -1.05), (0.012, carina - 0.12)), 0.014, 0.55)]
    if kind == "ngt":
        path = _curve((0.03, -1.05), (0.04, -0.2), (0.05, anatomy.dia_left + 0.1),
                      (0.18, anatomy.dia_left + 0.28), (0.36, anatomy.dia_left + 0.2))
        return [(path, 0.010, 0.6)]
    side = kind.rsplit("_", 1)[1]
    s = side_sign(side)
    if kind.startswith("cvc"):
        path = _curve((s * 0.3, -1.05), (s * 0.14, -0.75), (-0.08, -0.55), (-0.07, -0.42), (-0.075, -0.25))
        return [(path, 0.008, 0.6)]
    gen_x, gen_y = s * 0.55, anatomy.clavicle_y + 0.12
    generator = (_curve((gen_x - 0.06, gen_y), (gen_x + 0.06, gen_y)), 0.045, 0.95)
    lead = _curve((gen_x, gen_y), (s * 0.2, gen_y - 0.05), (-0.06, -0.35), (-0.05, cy - 0.05), apex)
    return [generator, (lead, 0.007, 0.6)]


def _devices(cv: _Canvas, case: SyntheticCase, finding: Finding, difficulty: float) -> np.ndarray:
    out = np.zeros_like(cv.x)
    thin = 1.15 - 0.3 * difficulty
    for kind in finding.devices:
        for path, half, density in _device_paths(case, kind):
            out = np.maximum(out, density * _polyline(cv, path, half * thin))
    return 0.55 * out * finding.conspicuity


def _effusion(cv: _Canvas, case: SyntheticCase, fraction: float, side: str) -> np.ndarray:
    """Dependent fluid on one side: everything below a meniscus that rises laterally.

    Fluid only removes air, so the region need not follow the lung outline: it blunts the
    costophrenic angle and hides the hemidiaphragm by itself.
    """
    anatomy = case.anatomy
    xm = cv.x * side_sign(side)
    lowest = (anatomy.dia_right if side == "right" else anatomy.dia_left) + 0.06
    height = lowest - anatomy.apex_y
    meniscus = 0.35 * fraction * height * (np.maximum(xm, 0.0) / anatomy.thorax_hw) ** 2
    level = lowest - fraction * height - meniscus
    depth = np.clip((cv.y - level) / (0.5 * fraction * height + 1e-3), 0.0, 1.0)
    return cv.step(xm - 0.04, 1.0) * cv.step(cv.y - level, 3.0 + 6.0 * fraction) * (0.4 + 0.6 * depth)


def _pneumothorax_regions(cv: _Canvas, case: SyntheticCase, finding: Finding) -> tuple[np.ndarray, ...]:
    """(air gap without lung markings, collapsed lung, visceral pleural line)."""
    anatomy = case.anatomy
    hx, hy = _hilum(anatomy, finding.side)
    s = finding.extent
    lung = _lung(cv, anatomy, finding.side)
    signed = _lung_signed(cv, anatomy, finding.side, hx + (cv.x - hx) / s, hy + (cv.y - hy) / s, False) * s
    collapsed = cv.step(signed, 1.0)
    gap = np.clip(lung - collapsed, 0.0, 1.0)
    line = cv.step(cv.px * 0.9 - np.abs(signed), 0.6) * lung
    return gap, collapsed * lung, line


def _consolidation(cv: _Canvas, case: SyntheticCase, finding: Finding, size: int) -> np.ndarray:
    anatomy = case.anatomy
    r = finding.extent
    cx, cy = _focal_center(case, finding, 0.3 if finding.zone == "upper" else 0.74, 0.5, 0.6 * r)
    noise = _smooth_noise(np.random.default_rng(finding.seed), size, 1 / 40)
    dist = np.sqrt(((cv.x - cx) / (1.25 * r)) ** 2 + ((cv.y - cy) / r) ** 2)
    blob = cv.step((1.0 - dist + 0.25 * noise) * r, 2.5)
    mottle = 0.8 + 0.2 * np.clip(noise, -1.0, 1.0)
    return blob * mottle * _lung(cv, anatomy, finding.side)


def _nodule(cv: _Canvas, case: SyntheticCase, finding: Finding) -> np.ndarray:
    r = finding.extent
    frac = {"upper": 0.24, "mid": 0.5, "lower": 0.72}[finding.zone]
    cx, cy = _focal_center(case, finding, frac, 0.5, r + 0.03)
    dist = np.sqrt((cv.x - cx) ** 2 + (cv.y - cy) ** 2)
    return cv.step(r - dist, 0.9) * (0.75 + 0.25 * np.sqrt(np.clip(1.0 - (dist / r) ** 2, 0.0, 1.0)))


def _edema(cv: _Canvas, case: SyntheticCase, finding: Finding) -> np.ndarray:
    """Bilateral perihilar ("bat-wing") haze, stronger for moderate edema."""
    hx, hy = _hilum(case.anatomy, "left")  # mirror-symmetric about the midline
    return np.exp(-(((np.abs(cv.x) - hx) / 0.3) ** 2 + ((cv.y - hy) / 0.42) ** 2)) * finding.extent


@dataclass
class _Layers:
    """Per-pixel quantities the findings modify before compositing."""

    air: np.ndarray
    texture: np.ndarray
    dense: np.ndarray


def _apply_findings(cv: _Canvas, case: SyntheticCase, layers: _Layers, difficulty: float, size: int) -> None:
    """Let each present finding fill air space, remove markings or add dense material."""
    for finding in case.details:
        c = finding.conspicuity
        if finding.name == "pleural_effusion":
            for side in _sides(finding.side):
                bilateral_left = finding.side == "bilateral" and side == "left"
                fraction = finding.extent_left if bilateral_left else finding.extent
                fluid = np.clip(0.9 * c * _effusion(cv, case, fraction, side), 0.0, 0.95)
                layers.air *= 1.0 - fluid
        elif finding.name == "pneumothorax":
            gap, collapsed, line = _pneumothorax_regions(cv, case, finding)
            layers.texture *= 1.0 - gap * min(1.0, 0.9 * c)
            layers.air += 0.25 * c * gap
            layers.dense += 0.25 * (1.0 - finding.extent) * c * collapsed + 0.16 * c * line
        elif finding.name == "consolidation":
            layers.air *= 1.0 - np.clip(0.75 * c * _consolidation(cv, case, finding, size), 0.0, 0.95)
        elif finding.name == "nodule":
            layers.dense += 0.32 * c * _nodule(cv, case, finding)
        elif finding.name == "edema":
            layers.air *= 1.0 - np.clip(0.6 * c * _edema(cv, case, finding), 0.0, 0.9)
            blur = (0.6 + 0.6 * finding.extent) * size / 128.0
            layers.texture = ndimage.gaussian_filter(layers.texture, blur, truncate=2.5)
        elif finding.name == "support_devices":
            layers.dense += _devices(cv, case, finding, difficulty)


def render_image(case: SyntheticCase, spec: SyntheticSpec) -> np.ndarray:
    """Draw the frontal radiograph of ``case`` as uint8 ``[size, size]``."""
    size, d = int(spec.image_size), float(spec.difficulty)
    anatomy = case.anatomy
    rng = np.random.default_rng(case.texture_seed)
    cv = _canvas(size, anatomy)
    heart = _heart(cv, case)
    medi = _mediastinum(cv, anatomy)
    soft = np.clip(heart + medi, 0.0, 1.0)
    lungs = (_lung(cv, anatomy, "right") + _lung(cv, anatomy, "left")) * (1.0 - soft)
    texture = _texture(cv, anatomy, rng, size) * lungs
    layers = _Layers(air=lungs.copy(), texture=texture, dense=np.zeros_like(cv.x))
    _apply_findings(cv, case, layers, d, size)
    density = _composite(cv, anatomy, layers, soft)
    return _expose(density, anatomy, rng, d, size)


def _below_diaphragm(cv: _Canvas, anatomy: Anatomy) -> np.ndarray:
    """Soft mask of the abdomen: below each hemidiaphragm's dome."""
    right = _diaphragm_y(anatomy, "right", np.maximum(-cv.x, 0.0))
    left = _diaphragm_y(anatomy, "left", np.maximum(cv.x, 0.0))
    return cv.step(cv.y - np.where(cv.x < 0.0, right, left), 2.0)


def _composite(cv: _Canvas, anatomy: Anatomy, layers: _Layers, soft: np.ndarray) -> np.ndarray:
    """Sum the densities: body, abdomen, mediastinum, air spaces, bones, findings."""
    body = _body(cv, anatomy)
    below = _below_diaphragm(cv, anatomy)
    lateral = np.minimum(np.abs(cv.x) * np.float32(1 / 0.95), np.float32(1.0))
    lateral *= lateral
    lateral *= lateral * lateral
    breast = anatomy.breast * np.exp(-((np.abs(cv.x) - 0.55) / 0.3) ** 2 - ((cv.y - 0.3) / 0.22) ** 2)
    density = body * (anatomy.tissue - 0.15 * lateral + 0.16 * (soft + below - soft * below))
    air = np.clip(layers.air, 0.0, 1.2)
    bone_visibility = 0.35 + 0.65 * np.clip(air, 0.0, 1.0)
    density += breast - 0.38 * air - 0.10 * _trachea(cv, anatomy)
    density += 0.10 * layers.texture * np.clip(air, 0.0, 1.0)
    density += 0.11 * bone_visibility * _ribs(cv, anatomy) + 0.2 * _clavicles(cv, anatomy)
    density += 0.05 * _spine(cv, anatomy)
    density += 0.12 * _shoulders(cv, anatomy) + layers.dense
    bubble = cv.ellipse(0.32, anatomy.dia_left + 0.14, 0.11, 0.06, 2.0)
    return density - 0.12 * bubble


def _expose(
    density: np.ndarray, anatomy: Anatomy, rng: np.random.Generator, d: float, size: int
) -> np.ndarray:
    """Detector response: low-frequency non-uniformity and quantum noise, then gamma/gain/offset
    applied through a lookup table on the quantised signal."""
    img = density
    knots = np.linspace(0.0, size - 1.0, 4)
    grid = np.arange(size, dtype=np.float32)
    rows = np.interp(grid, knots, rng.standard_normal(4)).astype(np.float32)
    cols = np.interp(grid, knots, rng.standard_normal(4)).astype(np.float32)
    img += 0.015 * (rows[:, None] + cols[None, :])
    noise = rng.random((size, size), dtype=np.float32)  # uniform, scaled to the intended std
    noise -= np.float32(0.5)
    img += np.float32((0.008 + 0.035 * d) * math.sqrt(12.0)) * noise
    levels = np.linspace(0.0, 1.0, 1024)
    table = np.clip(np.rint((levels**anatomy.gamma * anatomy.gain + anatomy.offset) * 255.0), 0, 255)
    index = np.clip(img * np.float32(1023.0) + np.float32(0.5), 0.0, 1023.0).astype(np.intp)
    return table.astype(np.uint8)[index]


# ----------------------------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------------------------

ADVERB = {"mild": "mildly", "moderate": "moderately", "severe": "severely"}

POSITIVE: dict[str, tuple[str, ...]] = {
    "cardiomegaly": (
        "The heart is {adverb} enlarged.",
        "There is {grade} cardiomegaly.",
        "The cardiac silhouette is {adverb} enlarged.",
        "{Grade} enlargement of the cardiac silhouette.",
    ),
    "pleural_effusion": (
        "There is a {grade} {side} pleural effusion.",
        "{Grade} {side} pleural effusion.",
        "A {grade} {side}-sided pleural effusion is present.",
    ),
    "pleural_effusion_bilateral": (
        "There are {grade} bilateral pleural effusions.",
        "{Grade} bilateral pleural effusions.",
        "{Grade} pleural effusions are present bilaterally.",
    ),
    "pneumothorax": (
        "There is a {grade} {side} pneumothorax.",
        "{Grade} {side} pneumothorax.",
        "A {grade} {side}-sided pneumothorax is present.",
    ),
    "consolidation": (
        "There is consolidation in the {side} {zone} lobe.",
        "{Side} {zone} lobe consolidation.",
        "Focal consolidation is present in the {side} {zone} lobe.",
        "Airspace consolidation in the {side} {zone} lobe.",
    ),
    "nodule_small": (
        "There is a small nodule in the {side} {zone} lung.",
        "A small {side} {zone} lung nodule is noted.",
        "Small nodular opacity in the {side} {zone} lung.",
    ),
    "nodule_large": (
        "There is a large mass in the {side} {zone} lung.",
        "A large {side} {zone} lung mass is noted.",
        "Large mass in the {side} {zone} lung.",
    ),
    "edema": (
        "There is {grade} pulmonary edema.",
        "{Grade} pulmonary edema.",
        "Findings are consistent with {grade} pulmonary edema.",
        "{Grade} interstitial pulmonary edema is present.",
    ),
}

DEVICE_SENTENCES: dict[str, tuple[str, ...]] = {
    "ett": (
        "An endotracheal tube is in place.",
        "Endotracheal tube in standard position.",
        "The endotracheal tube terminates above the carina.",
    ),
    "ngt": (
        "A nasogastric tube courses below the diaphragm.",
        "Nasogastric tube in place with the tip in the stomach.",
        "An enteric tube extends into the stomach.",
    ),
    "cvc": (
        "A {side} internal jugular central venous catheter terminates in the superior vena cava.",
        "{Side} internal jugular central line with the tip in the superior vena cava.",
        "There is a {side}-sided central venous catheter with its tip in the superior vena cava.",
    ),
    "pacemaker": (
        "A {side} chest wall pacemaker is in place.",
        "{Side}-sided pacemaker with leads projecting over the heart.",
        "There is a {side}-sided cardiac pacemaker.",
    ),
}

NEGATIVE: dict[str, tuple[str, ...]] = {
    "cardiomegaly": (
        "The heart size is normal.",
        "Normal heart size.",
        "The heart is normal in size.",
        "The cardiac silhouette is within normal limits.",
    ),
    "pleural_effusion": (
        "No pleural effusion.",
        "There is no pleural effusion.",
        "No pleural effusion is seen.",
        "No evidence of pleural effusion.",
    ),
    "pneumothorax": (
        "No pneumothorax.",
        "There is no pneumothorax.",
        "No pneumothorax is seen.",
        "No evidence of pneumothorax.",
    ),
    "consolidation": (
        "No focal consolidation.",
        "There is no focal consolidation.",
        "No focal airspace consolidation is seen.",
        "No focal consolidation is identified.",
    ),
    "nodule": (
        "No pulmonary nodules or masses.",
        "No suspicious pulmonary nodule.",
        "There is no nodule or mass.",
    ),
    "edema": (
        "No pulmonary edema.",
        "There is no pulmonary edema.",
        "No evidence of pulmonary edema.",
        "No vascular congestion or edema.",
    ),
    "support_devices": (
        "No lines or tubes are seen.",
        "No support devices.",
    ),
    "pleura": (
        "No pleural effusion or pneumothorax.",
        "There is no pleural effusion or pneumothorax.",
        "No pneumothorax or pleural effusion is seen.",
    ),
}

NORMAL_SENTENCES: tuple[tuple[str, ...], ...] = (
    (
        "The heart size is normal.",
        "Normal heart size.",
        "The heart and mediastinum are within normal limits.",
        "The cardiomediastinal silhouette is normal.",
    ),
    ("The lungs are clear.", "Clear lungs.", "The lungs are clear bilaterally."),
    ("No pleural effusion or pneumothorax.", "There is no pleural effusion or pneumothorax.", ""),
    (
        "No acute cardiopulmonary abnormality.",
        "No acute cardiopulmonary process.",
        "No acute cardiopulmonary disease.",
    ),
)


def _fill(template: str, finding: Finding | None = None, side: str = "") -> str:
    """Format a template; capitalised placeholders ({Side}, {Grade}) start a sentence."""
    values = {
        "side": side or (finding.side if finding else ""),
        "grade": finding.grade if finding else "",
        "zone": finding.zone if finding else "",
        "adverb": ADVERB.get(finding.grade, "") if finding else "",
    }
    values.update({k.capitalize(): v.capitalize() for k, v in values.items()})
    return template.format(**values)


def _choose(rng: np.random.Generator, options: Sequence[str]) -> str:
    return str(options[int(rng.integers(len(options)))])


def _positive_sentence(finding: Finding, rng: np.random.Generator) -> str:
    key = finding.name
    if key == "pleural_effusion" and finding.side == "bilateral":
        key = "pleural_effusion_bilateral"
    elif key == "nodule":
        key = f"nodule_{finding.grade}"
    return _fill(_choose(rng, POSITIVE[key]), finding)


def _device_sentences(finding: Finding, rng: np.random.Generator) -> list[str]:
    out = []
    for kind in finding.devices:
        base, _, side = kind.partition("_")
        out.append(_fill(_choose(rng, DEVICE_SENTENCES[base]), side=side))
    return out


def _normal_report(rng: np.random.Generator) -> str:
    sentences = [_choose(rng, options) for options in NORMAL_SENTENCES]
    return " ".join(s for s in sentences if s)


def _pleura_sentences(case: SyntheticCase, rng: np.random.Generator) -> list[str]:
    eff, ptx = case.detail("pleural_effusion"), case.detail("pneumothorax")
    if eff is None and ptx is None and rng.random() < 0.6:
        return [_choose(rng, NEGATIVE["pleura"])]
    if eff is not None and ptx is None and rng.random() < 0.3:
        return [_positive_sentence(eff, rng)[:-1] + " without pneumothorax."]
    out = [_statement(case, name, rng) for name in ("pleural_effusion", "pneumothorax")]
    rng.shuffle(out)
    return out


def _statement(case: SyntheticCase, name: str, rng: np.random.Generator) -> str:
    finding = case.detail(name)
    return _choose(rng, NEGATIVE[name]) if finding is None else _positive_sentence(finding, rng)


def _abnormal_report(case: SyntheticCase, rng: np.random.Generator) -> str:
    """Devices, heart, lungs, pleura; lung and pleura statements in random order, devices first or last."""
    devices = case.detail("support_devices")
    if devices is not None:
        device_part = _device_sentences(devices, rng)
    else:
        device_part = [_choose(rng, NEGATIVE["support_devices"])] if rng.random() < 0.5 else []
    lungs = [_statement(case, name, rng) for name in ("consolidation", "nodule", "edema")]
    rng.shuffle(lungs)
    body = [_statement(case, "cardiomegaly", rng), *lungs, *_pleura_sentences(case, rng)]
    if rng.random() < 0.25:
        body[:2] = body[1::-1]
    parts = device_part + body if rng.random() < 0.6 else body + device_part
    return " ".join(parts)


def write_report(case: SyntheticCase, rng: np.random.Generator) -> str:
    """The report of ``case``, worded with ``rng``."""
    return _normal_report(rng) if case.normal else _abnormal_report(case, rng)


# ----------------------------------------------------------------------------------------------
# Public generation API
# ----------------------------------------------------------------------------------------------


def generate_study(spec: SyntheticSpec, split: str, index: int) -> SyntheticStudy:
    """Study ``index`` of ``split``; a pure function of ``(spec, split, index)``."""
    streams = _streams(spec, split, index)
    case = _case_from_streams(spec, streams)
    return SyntheticStudy(
        id=study_id(split, index),
        split=split,
        image=render_image(case, spec),
        report=write_report(case, streams[3]),
        findings=dict(case.findings),
    )


def sample_case_and_report(spec: SyntheticSpec, split: str, index: int) -> tuple[SyntheticCase, str]:
    """The case and report of a study without drawing its image (what ``generate_study`` would give)."""
    streams = _streams(spec, split, index)
    case = _case_from_streams(spec, streams)
    return case, write_report(case, streams[3])


def iter_studies(spec: SyntheticSpec, split: str) -> list[SyntheticStudy]:
    """All studies of one split, in index order."""
    return [generate_study(spec, split, i) for i in range(spec.size_of(split))]


PARALLEL_MIN_STUDIES = 400
"""Builds of at least this many studies are drawn by a pool of worker processes (one per CPU)."""

CHUNK_STUDIES = 100


def _write_chunk(spec: SyntheticSpec, split: str, start: int, stop: int, folder: Path) -> list[dict[str, object]]:
    """Draw and save studies ``start .. stop-1`` of ``split``; their annotation entries with findings."""
    entries: list[dict[str, object]] = []
    for i in range(start, stop):
        study = generate_study(spec, split, i)
        rel = f"images/{study.id}.png"
        Image.fromarray(study.image).save(folder / rel, compress_level=1)
        entries.append({"id": study.id, "report": study.report, "image_path": [rel], "split": split,
                        "findings": study.findings})
    return entries


def _chunks(spec: SyntheticSpec) -> list[tuple[str, int, int]]:
    return [(split, start, min(start + CHUNK_STUDIES, spec.size_of(split)))
            for split in SPLIT_CODES for start in range(0, spec.size_of(split), CHUNK_STUDIES)]


def _build_workers(spec: SyntheticSpec) -> int:
    total = sum(spec.size_of(split) for split in SPLIT_CODES)
    if total < PARALLEL_MIN_STUDIES:
        return 1
    return max(1, min(available_cores(), 8))


def _draw_all(spec: SyntheticSpec, folder: Path) -> list[dict[str, object]]:
    """Every study's annotation entry, in split and index order, drawn in parallel when it pays.

    Each study is a pure function of ``(spec, split, index)``, so the result does not depend on the
    number of workers. Workers are forked (they only run numpy and PIL, never torch), so a user's script
    is not re-imported; where fork does not exist the build runs in this process.
    """
    import multiprocessing

    chunks, workers = _chunks(spec), _build_workers(spec)
    if workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [entry for chunk in chunks for entry in _write_chunk(spec, *chunk, folder)]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [pool.submit(_write_chunk, spec, *chunk, folder) for chunk in chunks]
        return [entry for future in futures for entry in future.result()]


def _write_json(path: Path, payload: object) -> None:
    path.write_text(json.dumps(payload, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def _populate(spec: SyntheticSpec, folder: Path) -> None:
    (folder / "images").mkdir(parents=True)
    entries = _draw_all(spec, folder)
    findings = {str(e["id"]): e.pop("findings") for e in entries}
    annotation = {split: [e for e in entries if e["split"] == split] for split in SPLIT_CODES}
    _write_json(folder / "annotation.json", annotation)
    _write_json(folder / "findings.json", findings)
    meta = {**asdict(spec), "generator_version": GENERATOR_VERSION, "fingerprint": spec.fingerprint(),
            "findings": list(FINDINGS), "chexpert_observation": CHEXPERT_OBSERVATION}
    _write_json(folder / "spec.json", meta)
    (folder / COMPLETE_MARKER).write_text("ok\n", encoding="utf-8")


def is_built(folder: Path) -> bool:
    """True when ``folder`` holds a complete build."""
    return (folder / COMPLETE_MARKER).is_file()


def build(spec: SyntheticSpec, root: Path) -> Path:
    """Generate the dataset into ``root/<fingerprint>/`` once; later calls return at once.

    The build happens in a temporary sibling folder that is renamed into place, so a reader never
    sees a half-written dataset and two racing processes both end with the same complete folder.
    """
    root = Path(root)
    final = root / spec.fingerprint()
    if is_built(final):
        return final
    tmp = root / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        _populate(spec, tmp)
        _install(tmp, final)
    except OSError as err:
        raise DataError(f"synthetic: cannot write the dataset to {final}: {err}") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _install(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; keep a complete build another process installed first."""
    if final.exists() and not is_built(final):
        stale = final.with_name(f".stale-{final.name}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(final, stale)
        except OSError:
            pass
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(tmp, final)
    except OSError:
        if not is_built(final):
            raise


# ----------------------------------------------------------------------------------------------
# Reading findings back from a report (the inverse of the report writer)
# ----------------------------------------------------------------------------------------------

_MENTIONS: dict[str, str] = {
    "cardiomegaly": r"cardiomegaly|enlarged heart|cardiac enlargement",
    "pleural_effusion": r"effusions?|pleural fluid",
    "pneumothorax": r"pneumothora\w*",
    "consolidation": r"consolidat\w*|air ?space (?:disease|opacit\w*)|infiltrat\w*",
    "nodule": r"nodul\w*|\bmass(?:es)?\b|\blesions?\b|neoplasm|tumou?r",
    "edema": r"edema|vascular congestion|pulmonary congestion|heart failure|\bchf\b",
    "support_devices": (
        r"\btubes?\b|catheters?|\blines?\b|\bpicc\b|pacemaker|\bpacer\b|\bleads?\b|"
        r"support devices?|\bdevices?\b|\bport\b|\bdrains?\b"
    ),
}
_HEART = (
    r"\bheart\b(?! failure)|cardiac silhouette|cardiomediastinal silhouette|cardiac contours?|cardiac size"
)
_PRE_NEGATION = r"\b(?:no|not|without|negative for|free of|absence of|normal|clear of|resolved)\b"
_POST_NEGATION = (
    r"\b(?:not (?:seen|identified|present|visualized|evident|appreciated|enlarged)|is normal|are normal|"
    r"within normal limits|normal in size|unremarkable|absent|(?:has|have) resolved)\b"
)
_GLOBAL_NORMAL = re.compile(
    r"no acute (?:cardiopulmonary|intrathoracic|chest|pulmonary) (?:abnormality|abnormalities|process|"
    r"disease|findings?)|normal chest(?: radiograph| x ray| xray)?\b|no active disease"
)
_CLAUSE_BREAK = re.compile(r"\b(?:but|however|although|though|otherwise)\b")


def _normalise(report: str) -> list[str]:
    """Lowercase, drop punctuation except sentence periods, split into clauses."""
    text = report.lower().replace("pericardial effusion", "pericardial fluid_")
    text = re.sub(r"kerley b lines|septal lines|pleural line", " ", text)
    text = re.sub(r"[-/]", " ", text)
    text = re.sub(r"[^a-z0-9_. ]+", " ", text)
    clauses: list[str] = []
    for sentence in text.split("."):
        clauses.extend(c.strip() for c in _CLAUSE_BREAK.split(sentence) if c.strip())
    return clauses


def _polarity(clause: str, start: int, end: int) -> int:
    """0 when a negation cue precedes the mention or a post-negation phrase follows it, else 1."""
    if re.search(_PRE_NEGATION, clause[:start]) or re.search(_POST_NEGATION, clause[end:]):
        return 0
    return 1


def _heart_statement(clause: str) -> int | None:
    """Cardiomegaly stated through the heart ("the heart is enlarged", "heart size normal"), if any."""
    match = re.search(_HEART, clause)
    if match is None:
        return None
    if _polarity(clause, match.start(), match.end()) == 0 or re.search(r"\bnormal\b", clause):
        return 0
    return 1 if re.search(r"enlarg|cardiomegaly", clause) else None


def _clause_findings(clause: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for name, pattern in _MENTIONS.items():
        for match in re.finditer(pattern, clause):
            value = _polarity(clause, match.start(), match.end())
            found[name] = max(found.get(name, 0), value)
    heart = _heart_statement(clause)
    if heart is not None:
        found["cardiomegaly"] = max(found.get("cardiomegaly", 0), heart)
    return found


def parse_findings(report: str) -> dict[str, int | None]:
    """Findings a report states: 1 positive, 0 negated, None not mentioned.

    Works on raw reports and on R2Gen-cleaned text. A positive statement wins over a negated one; a
    normal-style sentence ("no acute cardiopulmonary abnormality") negates every finding not stated
    otherwise. Hedged mentions ("possible effusion") count as positive.
    """
    result: dict[str, int | None] = {name: None for name in FINDINGS}
    global_normal = False
    for clause in _normalise(report):
        if _GLOBAL_NORMAL.search(clause):
            global_normal = True
            continue
        for name, value in _clause_findings(clause).items():
            previous = result[name]
            result[name] = value if previous is None else max(previous, value)
    if global_normal:
        result = {name: (0 if value is None else value) for name, value in result.items()}
    return result


def finding_accuracy(reports: Sequence[str], truth: Sequence[dict[str, int]]) -> dict[str, float]:
    """Per-finding accuracy of the findings the reports state (unmentioned = absent), plus ``mean``."""
    if len(reports) != len(truth):
        raise ValueError(f"finding_accuracy: {len(reports)} reports but {len(truth)} ground-truth entries")
    if not reports:
        raise ValueError("finding_accuracy: no reports")
    stated = [parse_findings(r) for r in reports]
    scores = {
        name: float(np.mean([int(s[name] == 1) == int(t[name]) for s, t in zip(stated, truth, strict=True)]))
        for name in FINDINGS
    }
    scores["mean"] = float(np.mean([scores[name] for name in FINDINGS]))
    return scores


__all__ = [
    "CHEXPERT_OBSERVATION",
    "FINDINGS",
    "GENERATOR_VERSION",
    "SyntheticCase",
    "SyntheticSpec",
    "SyntheticStudy",
    "build",
    "finding_accuracy",
    "generate_study",
    "is_built",
    "iter_studies",
    "parse_findings",
    "render_image",
    "sample_case",
    "sample_case_and_report",
    "write_report",
]
