"""Synthetic CK+: the embedded default dataset, written in the official CK+ layout.

Real CK+ is licensed and cannot ship with ckrun, yet every command has to work on a fresh
machine. This module draws faces from a 68-point (iBUG) landmark model that FACS action units
deform, and writes them with CK+'s folders and text formats, so the one CK+ importer reads
real and synthetic data alike. The set copies what matters for experiments: peak-frame-only
labels, FACS on every sequence but emotion on most, CK+'s class skew, mixed image sizes and
modes, demographics for bias tables, and nuisance variation (identity, pose, lighting,
background, sensor noise) that keeps raw pixels from being linearly separable.

Faces are drawn *from* the landmarks (same transform, 1/16-pixel fixed point), so the
Landmarks files agree with the pixels. Each subject's random stream derives from
(seed, subject index) alone, so the bytes written do not depend on the number of workers.
"""

# Arrays plus tuples below are vector offsets in face units, not concatenation.
# ruff: noqa: RUF005

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, fields
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ckrun.data import ckformat
from ckrun.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_SUBJECTS",
    "IMAGE_SIZES",
    "MARKER_FILE",
    "PARTIAL_MARKER_FILE",
    "SYNTH_AUS",
    "SYNTH_VERSION",
    "Expression",
    "SynthParams",
    "SynthSummary",
    "generate_synthetic_ckplus",
    "is_synthetic_set",
    "sample_expression",
]

DEFAULT_SUBJECTS = 40
# Written last: a folder without it is an unfinished (or foreign) set.
MARKER_FILE = ".ckrun-synth.json"
# Written first: lets a rerun recognise (and replace) a set that was interrupted.
PARTIAL_MARKER_FILE = ".ckrun-synth.partial"
# Bump when the drawing or sampling changes, so caches keyed on it are regenerated.
SYNTH_VERSION = 3

# (width, height) as PIL reports them, with CK+-like frequencies.
IMAGE_SIZES: tuple[tuple[int, int], ...] = ((640, 490), (640, 480), (720, 480))
_IMAGE_SIZE_WEIGHTS = (0.6, 0.25, 0.15)

# The AUs the generator can draw (each with its own geometric or shading change).
SYNTH_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 12, 14, 15, 17, 20, 23, 24, 25, 26, 27)

_OWNED_PATHS = (
    ckformat.IMAGES_DIR,
    ckformat.EMOTION_DIR,
    ckformat.FACS_DIR,
    ckformat.LANDMARKS_DIR,
    ckformat.SUBJECTS_FILE,
    MARKER_FILE,
    PARTIAL_MARKER_FILE,
)
# Sub filter + Huffman-only deflate: twice as fast as libpng's defaults on noisy frames
# and smaller than level 1 (the noise leaves little for LZ77 to find anyway).
_PNG_OPTIONS = [
    cv2.IMWRITE_PNG_COMPRESSION,
    1,
    cv2.IMWRITE_PNG_FILTER,
    cv2.IMWRITE_PNG_FILTER_SUB,
    cv2.IMWRITE_PNG_STRATEGY,
    cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY,
]
_SUBPIXEL_BITS = 4
_SUBPIXEL = 1 << _SUBPIXEL_BITS

Colour = tuple[float, ...]  # one value per image channel, as cv2 drawing expects


# %% Parameters and results


_RANGE_FIELDS = ("sequences_per_subject", "frames_per_sequence", "expressivity")
_PROBABILITY_FIELDS = ("emotion_fraction", "rgb_fraction", "extra_au_prob", "missing_au_prob", "uncoded_intensity_prob")
_STRENGTH_FIELDS = (
    "rotation_deg",
    "position_jitter",
    "scale_jitter",
    "frame_jitter_px",
    "illumination",
    "noise_sigma",
    "background_texture",
)


@dataclass(frozen=True)
class SynthParams:
    """Knobs of the generator; the defaults give a set a small CNN learns but pixels alone don't.

    Difficulty goes up by lowering `expressivity`, raising the nuisance strengths
    (`rotation_deg`, `position_jitter`, `scale_jitter`, `illumination`, `noise_sigma`,
    `background_texture`) or the label noise (`extra_au_prob`, `missing_au_prob`).
    """

    sequences_per_subject: tuple[int, int] = (8, 10)  # inclusive range
    frames_per_sequence: tuple[int, int] = (8, 20)  # inclusive range
    emotion_fraction: float = 0.8  # sequences with an Emotion file (CK+: 327 of 593)
    rgb_fraction: float = 0.15  # subjects recorded in colour
    expressivity: tuple[float, float] = (0.85, 1.1)  # per-subject AU magnitude range
    rotation_deg: float = 8.0  # in-plane head rotation, uniform in +-rotation_deg
    position_jitter: float = 0.06  # face centre offset, fraction of the image size
    scale_jitter: float = 0.12  # relative face-size spread
    frame_jitter_px: float = 0.6  # per-frame head drift (random walk step, pixels)
    illumination: float = 0.3  # gain slope across the face (0 = flat light)
    noise_sigma: float = 2.0  # Gaussian sensor noise, grey levels
    background_texture: float = 1.0  # 0 = flat background
    extra_au_prob: float = 0.45  # chance of one extra AU outside the emotion prototype
    missing_au_prob: float = 0.15  # chance of dropping one optional prototype AU
    uncoded_intensity_prob: float = 0.3  # FACS intensity written as 0 (present, not coded)

    def __post_init__(self) -> None:
        for name in _RANGE_FIELDS:  # YAML and JSON give lists; keep the dataclass hashable
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name, minimum in (("sequences_per_subject", 1), ("frames_per_sequence", 2)):
            low, high = getattr(self, name)
            if not minimum <= low <= high:
                raise ConfigError(
                    f"{name} must be (low, high) with {minimum} <= low <= high. Received: {name}={[low, high]}"
                )
        low, high = self.expressivity
        if not 0.0 < low <= high:
            raise ConfigError(f"expressivity must be (low, high) with 0 < low <= high. Received: {[low, high]}")
        for name in _PROBABILITY_FIELDS:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1]. Received: {name}={getattr(self, name)}")
        for name in _STRENGTH_FIELDS:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0. Received: {name}={getattr(self, name)}")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (tuples as lists), as recorded in the marker file."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class SynthSummary:
    """What a generation run wrote, for the CLI's one-line report and for tests."""

    root: Path
    subjects: int
    sequences: int
    frames: int
    sequences_with_emotion: int
    elapsed_s: float


@dataclass(frozen=True)
class _SubjectCounts:
    sequences: int
    frames: int
    with_emotion: int


# %% Expressions: emotion prototypes and AU sampling

# Sequences per CK+ emotion code in CK+ itself, i.e. 54% negative, 25% surprise, 21% positive.
_EMOTION_WEIGHTS: dict[int, int] = {1: 45, 2: 18, 3: 59, 4: 25, 5: 69, 6: 28, 7: 83}
_LEVEL_WEIGHTS = (0.08, 0.17, 0.3, 0.28, 0.17)  # FACS intensity A..E


@dataclass(frozen=True)
class _Prototype:
    """EMFACS-style AU set: `core` always, `optional` (au, p), one AU of each `one_of` group."""

    core: tuple[int, ...]
    optional: tuple[tuple[int, float], ...] = ()
    one_of: tuple[tuple[int, ...], ...] = ()
    keep: tuple[int, ...] = ()  # AUs label noise never drops (they carry the emotion)
    max_level: Mapping[int, int] = field(default_factory=dict)


_PROTOTYPES: dict[int, _Prototype] = {
    # Anger: lips tightened and/or pressed; CK+ codes AU23 and AU24 together more often than not.
    1: _Prototype(core=(4, 7), optional=((5, 0.4), (17, 0.5), (23, 0.6), (24, 0.6)), one_of=((23, 24),), keep=(4,)),
    2: _Prototype(core=(14,), optional=((12, 0.3),), keep=(14,), max_level={12: 2}),
    3: _Prototype(core=(9,), optional=((7, 0.3), (15, 0.4), (17, 0.5), (25, 0.3)), keep=(9,)),
    4: _Prototype(core=(1, 2, 4, 5, 20), optional=((25, 0.6), (26, 0.3)), keep=(4, 20)),
    5: _Prototype(core=(6, 12), optional=((25, 0.5),), keep=(12,)),
    6: _Prototype(core=(1, 4, 15), optional=((17, 0.5),), keep=(15,)),
    7: _Prototype(core=(1, 2, 5, 25), one_of=((26, 26, 27),), keep=(1, 2, 26, 27)),
}
# Pairs that would cancel each other when drawn (and rarely co-occur in FACS codes).
_CONFLICTS = frozenset(frozenset(p) for p in ((12, 15), (20, 23), (24, 25), (24, 26), (24, 27), (26, 27)))
# Extra AUs never include the ones that define another high-level class (12, 26, 27). The
# weights favour AUs that only one rare prototype carries, so every AU the model gets an
# output for has enough positives in a 40-subject set to be learned and scored.
_EXTRA_POOL = (1, 2, 4, 5, 6, 7, 9, 14, 15, 17, 20, 23, 24, 25)
_EXTRA_WEIGHTS = (1, 1, 1, 1, 1, 2, 2, 4, 2, 2, 4, 3, 3, 1)


@dataclass(frozen=True)
class Expression:
    """One sequence's target expression: the emotion, whether it is labelled, and AU levels."""

    emotion: int  # CK+ code 1..7
    has_emotion: bool
    levels: tuple[tuple[int, int], ...]  # (AU, FACS intensity 1..5), sorted by AU
    coded: tuple[tuple[int, float], ...]  # as written to the FACS file (0 = not intensity-coded)
    side: int  # -1 or +1: the side of unilateral AUs (14)


def _pick(rng: np.random.Generator, weights: tuple[float, ...]) -> int:
    """Index drawn with probability proportional to `weights` (one uniform draw, unlike rng.choice's setup)."""
    target = rng.random() * sum(weights)
    total = 0.0
    for index, weight in enumerate(weights):
        total += weight
        if target < total:
            return index
    return len(weights) - 1


def _conflicts(au: int, present: set[int]) -> bool:
    return any(frozenset((au, other)) in _CONFLICTS for other in present)


def _prototype_aus(proto: _Prototype, rng: np.random.Generator) -> set[int]:
    aus = set(proto.core)
    for group in proto.one_of:
        aus.add(int(group[rng.integers(len(group))]))
    for au, prob in proto.optional:
        if rng.random() < prob and not _conflicts(au, aus):
            aus.add(au)
    if aus & {26, 27}:
        aus.add(25)  # a dropped jaw parts the lips; CK+ codes both
    return aus


def _add_label_noise(aus: set[int], proto: _Prototype, rng: np.random.Generator, params: SynthParams) -> set[int]:
    """Drop and add AUs so that the AU set does not determine the emotion exactly."""
    droppable = sorted(aus - set(proto.keep) - set(proto.core[:1]) - {25})
    if droppable and rng.random() < params.missing_au_prob:
        aus = aus - {droppable[rng.integers(len(droppable))]}
    candidates = [(au, w) for au, w in zip(_EXTRA_POOL, _EXTRA_WEIGHTS, strict=True)
                  if au not in aus and not _conflicts(au, aus)]  # fmt: skip
    if candidates and rng.random() < params.extra_au_prob:
        aus = aus | {candidates[_pick(rng, tuple(w for _, w in candidates))][0]}
    return aus


def sample_expression(rng: np.random.Generator, params: SynthParams | None = None) -> Expression:
    """Draw one sequence's emotion and AUs with CK+'s class skew and imperfect prototypes."""
    params = params or SynthParams()
    emotion = list(_EMOTION_WEIGHTS)[_pick(rng, tuple(_EMOTION_WEIGHTS.values()))]
    proto = _PROTOTYPES[emotion]
    aus = _add_label_noise(_prototype_aus(proto, rng), proto, rng, params)
    levels = []
    coded = []
    for au in sorted(aus):
        level = _pick(rng, _LEVEL_WEIGHTS) + 1
        level = min(level, proto.max_level.get(au, 5))
        levels.append((au, level))
        coded.append((au, 0.0 if rng.random() < params.uncoded_intensity_prob else float(level)))
    has_emotion = bool(rng.random() < params.emotion_fraction)
    side = 1 if rng.random() < 0.5 else -1
    return Expression(emotion, has_emotion, tuple(levels), tuple(coded), side)


# %% Identity: demographics, face shape, palette

_ETHNICITIES = ("Euro-American", "African-American", "Asian", "Latino", "Other")
_ETHNICITY_WEIGHTS = (0.81, 0.11, 0.04, 0.03, 0.01)
# Skin tone ranges per ethnicity as (low, high) BGR.
_SKIN_BGR = {
    "Euro-American": ((120, 140, 175), (170, 190, 225)),
    "African-American": ((40, 55, 80), (90, 105, 140)),
    "Asian": ((110, 140, 175), (150, 180, 215)),
    "Latino": ((85, 110, 150), (130, 155, 195)),
    "Other": ((70, 95, 135), (150, 170, 210)),
}


@dataclass(frozen=True)
class _Demographics:
    age: int
    sex: str
    ethnicity: str


@dataclass(frozen=True)
class _FaceShape:
    """Identity geometry in face units (half face width at the temples = 1, y down)."""

    jaw_top: float
    jaw_h: float
    jaw_exp: float
    chin_narrow: float
    cheek_w: float
    head_h: float
    eye_y: float
    eye_dx: float
    eye_w: float
    eye_h: float
    eye_tilt: float
    iris_r: float
    brow_gap: float
    brow_in: float
    brow_len: float
    brow_arch: float
    brow_thick: float
    nose_tip: float
    nose_w: float
    mouth_y: float
    mouth_hw: float
    lip_up: float
    lip_low: float
    corner_dy: float
    hairline: float
    long_hair: bool
    age_lines: float  # darkness of static wrinkles (older subjects)
    expressivity: float
    asymmetry: np.ndarray = field(compare=False, repr=False)
    chin_dots: np.ndarray = field(compare=False, repr=False)
    mole: tuple[float, float] | None = None


@dataclass(frozen=True)
class _Palette:
    """Colours as float tuples with one entry per image channel (1 for grey, 3 for BGR)."""

    skin: Colour
    lips: Colour
    brow: Colour
    hair: Colour
    sclera: Colour
    iris: Colour
    teeth: Colour
    mouth: Colour
    clothes: Colour
    channels: int


@dataclass(frozen=True)
class _Subject:
    subject_id: str
    demographics: _Demographics
    size: tuple[int, int]  # (width, height)
    face: _FaceShape
    palette: _Palette


def _subject_rng(seed: int, index: int) -> np.random.Generator:
    """The subject's own stream: identical whichever process draws it."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(index,)))


def _sample_demographics(rng: np.random.Generator) -> _Demographics:
    age = int(np.clip(round(18 + rng.gamma(1.6, 5.5)), 18, 50))
    sex = "F" if rng.random() < 0.69 else "M"
    ethnicity = _ETHNICITIES[_pick(rng, _ETHNICITY_WEIGHTS)]
    return _Demographics(age, sex, ethnicity)


def _sample_face(rng: np.random.Generator, demo: _Demographics, params: SynthParams) -> _FaceShape:
    u = rng.uniform
    male = demo.sex == "M"
    eye_y = -0.3 + u(-0.03, 0.03)
    nose_tip = u(0.12, 0.22)
    angles = rng.uniform(0, 2 * np.pi, 8)
    radii = np.sqrt(rng.uniform(0, 1, 8))
    chin_dots = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    mole = (float(u(-0.6, 0.6)), float(u(-0.1, 0.6))) if rng.random() < 0.3 else None
    if mole is not None and abs(mole[0]) < 0.45 and mole[1] > 0.25:
        mole = (mole[0], mole[1] - 0.4)  # keep moles off the mouth corners, where AU14 dimples are
    return _FaceShape(
        jaw_top=eye_y + u(0.0, 0.06),
        jaw_h=u(1.2, 1.42) + (0.05 if male else 0.0),
        jaw_exp=u(2.0, 2.8) + (0.4 if male else 0.0),
        chin_narrow=u(0.05, 0.3),
        cheek_w=u(0.95, 1.05),
        head_h=u(1.0, 1.15),
        eye_y=eye_y,
        eye_dx=u(0.4, 0.47),
        eye_w=u(0.27, 0.32),
        eye_h=u(0.11, 0.14),
        eye_tilt=u(-0.015, 0.025),
        iris_r=u(0.062, 0.072),
        brow_gap=u(0.19, 0.24),
        brow_in=u(0.1, 0.14),
        brow_len=u(0.38, 0.46),
        brow_arch=u(0.025, 0.07),
        brow_thick=u(0.05, 0.08) + (0.015 if male else 0.0),
        nose_tip=nose_tip,
        nose_w=u(0.15, 0.2) + (0.02 if male else 0.0),
        mouth_y=nose_tip + u(0.3, 0.37),
        mouth_hw=u(0.3, 0.37),
        lip_up=u(0.06, 0.09),
        lip_low=u(0.08, 0.12),
        corner_dy=u(-0.015, 0.015),
        hairline=u(0.5, 0.75) + (u(0.0, 0.3) if male else 0.0),
        long_hair=bool(rng.random() < (0.7 if not male else 0.1)),
        age_lines=float(np.clip((demo.age - 28) / 22, 0.0, 1.0)) * 0.35,
        expressivity=u(*params.expressivity),
        asymmetry=rng.normal(0, 0.006, (68, 2)),
        chin_dots=chin_dots,
        mole=mole,
    )


def _sample_palette(rng: np.random.Generator, demo: _Demographics, rgb: bool) -> _Palette:
    low, high = (np.array(v, dtype=float) for v in _SKIN_BGR[demo.ethnicity])
    skin = low + (high - low) * rng.uniform()
    skin = skin + rng.normal(0, 4, 3)
    dark_hair = demo.ethnicity != "Euro-American" or rng.random() < 0.6
    hair_level = rng.uniform(15, 55) if dark_hair else rng.uniform(60, 130)
    hair = np.array([0.8, 0.9, 1.0]) * hair_level
    brow = np.minimum(hair * 1.1, skin * 0.45)
    iris_choices = ((30, 45, 70), (120, 90, 50), (70, 100, 60), (20, 30, 45))
    iris = np.array(iris_choices[rng.integers(len(iris_choices))], dtype=float)
    colours = {
        "skin": skin,
        "lips": skin * np.array([0.72, 0.6, 0.9]),
        "brow": brow,
        "hair": hair,
        "sclera": np.array([228.0, 232.0, 235.0]) + rng.normal(0, 4),
        "iris": iris,
        "teeth": np.array([205.0, 220.0, 228.0]),
        "mouth": np.array([25.0, 25.0, 45.0]),
        "clothes": rng.uniform(20, 220, 3),
    }
    if not rgb:  # luminance of the BGR colour, as a grey camera would record it
        weights = np.array([0.114, 0.587, 0.299])
        colours = {k: np.array([v @ weights]) for k, v in colours.items()}
    tuples = {k: tuple(float(x) for x in np.clip(v, 0, 255)) for k, v in colours.items()}
    return _Palette(**tuples, channels=3 if rgb else 1)


def _subject_ids(count: int, seed: int) -> list[str]:
    """CK+-style non-contiguous three-digit subject ids (S005, S010, ...), fixed by the seed."""
    rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(2**31,)))
    max_gap = max(1, min(5, (999 - 5) // max(count, 1)))
    numbers = 5 + np.cumsum(np.concatenate([[0], rng.integers(1, max_gap + 1, count - 1)]))
    return [f"S{n:03d}" for n in numbers]


def _sample_subject(
    seed: int, index: int, subject_id: str, params: SynthParams
) -> tuple[_Subject, np.random.Generator]:
    rng = _subject_rng(seed, index)
    demo = _sample_demographics(rng)
    size = IMAGE_SIZES[_pick(rng, _IMAGE_SIZE_WEIGHTS)]
    rgb = bool(rng.random() < params.rgb_fraction)
    face = _sample_face(rng, demo, params)
    palette = _sample_palette(rng, demo, rgb)
    return _Subject(subject_id, demo, size, face, palette), rng


# %% Landmark model: neutral face and AU displacement fields

# Index of each iBUG-68 point's mirror image across the face's midline.
_MIRROR = np.array(
    [16 - i for i in range(17)]
    + [26 - i for i in range(10)]
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)


def _jaw_weights() -> np.ndarray:
    """How much each jaw point follows a jaw drop: 0 at the ears, 1 at the chin."""
    return np.sin(np.pi * np.arange(17) / 16) ** 2


# (outward, down) shifts in face units for the image-left half and the midline, per AU;
# the right half is mirrored. Negative y moves up.
_AU_SHIFTS: dict[int, dict[int, tuple[float, float]]] = {
    1: {21: (0.0, -0.17), 20: (0.0, -0.12), 19: (0.0, -0.06), 18: (0.0, -0.02)},
    2: {17: (0.01, -0.16), 18: (0.0, -0.15), 19: (0.0, -0.1), 20: (0.0, -0.04)},
    4: {
        17: (0.0, 0.05),
        18: (0.0, 0.07),
        19: (-0.02, 0.085),
        20: (-0.04, 0.105),
        21: (-0.06, 0.125),
        37: (0.0, 0.012),
        38: (0.0, 0.015),
    },
    5: {37: (0.0, -0.085), 38: (0.0, -0.085), 40: (0.0, 0.012), 41: (0.0, 0.012)},
    6: {40: (0.0, -0.035), 41: (0.0, -0.045), 36: (0.0, -0.012)},
    7: {40: (0.0, -0.06), 41: (0.0, -0.06), 37: (0.0, 0.022), 38: (0.0, 0.022), 36: (0.0, -0.006)},
    9: {
        31: (0.025, -0.065),
        32: (0.01, -0.065),
        33: (0.0, -0.06),
        30: (0.0, -0.035),
        29: (0.0, -0.015),
        49: (0.0, -0.04),
        50: (0.0, -0.045),
        51: (0.0, -0.045),
        61: (0.0, -0.025),
        62: (0.0, -0.025),
        21: (-0.015, 0.05),
        20: (0.0, 0.03),
    },
    12: {
        48: (0.09, -0.14),
        60: (0.08, -0.13),
        49: (0.035, -0.055),
        59: (0.035, -0.055),
        61: (0.02, -0.035),
        67: (0.02, -0.035),
        50: (0.0, -0.012),
        58: (0.0, -0.015),
        51: (0.0, -0.005),
    },
    14: {48: (-0.07, -0.06), 60: (-0.06, -0.05), 49: (-0.02, -0.018), 59: (-0.02, -0.018)},
    15: {
        48: (-0.02, 0.12),
        60: (-0.02, 0.11),
        49: (0.0, 0.04),
        59: (0.0, 0.045),
        61: (0.0, 0.02),
        67: (0.0, 0.02),
        57: (0.0, -0.012),
    },
    17: {
        57: (0.0, -0.065),
        58: (0.0, -0.055),
        59: (0.0, -0.03),
        66: (0.0, -0.04),
        67: (0.0, -0.03),
        62: (0.0, -0.02),
        51: (0.0, -0.015),
        48: (0.0, 0.015),
        60: (0.0, 0.01),
        8: (0.0, -0.055),
        7: (0.0, -0.045),
        6: (0.0, -0.02),
    },
    20: {
        48: (0.14, 0.025),
        60: (0.13, 0.025),
        49: (0.07, 0.008),
        59: (0.07, 0.0),
        61: (0.045, 0.0),
        67: (0.045, 0.0),
        50: (0.02, 0.012),
        58: (0.02, -0.02),
        51: (0.0, 0.015),
        57: (0.0, -0.028),
    },
    23: {
        48: (-0.075, 0.0),
        60: (-0.07, 0.0),
        49: (-0.045, 0.035),
        50: (-0.015, 0.04),
        51: (0.0, 0.04),
        59: (-0.045, -0.04),
        58: (-0.015, -0.045),
        57: (0.0, -0.045),
        61: (-0.03, 0.0),
        67: (-0.03, 0.0),
    },
    24: {
        48: (-0.03, 0.0),
        60: (-0.03, 0.0),
        49: (-0.01, 0.05),
        50: (0.0, 0.06),
        51: (0.0, 0.06),
        59: (-0.01, -0.06),
        58: (0.0, -0.07),
        57: (0.0, -0.07),
    },
    25: {
        61: (0.0, -0.02),
        62: (0.0, -0.025),
        50: (0.0, -0.012),
        51: (0.0, -0.012),
        67: (0.0, 0.065),
        66: (0.0, 0.075),
        59: (0.0, 0.045),
        58: (0.0, 0.06),
        57: (0.0, 0.065),
    },
    26: {
        **{j: (0.0, 0.17 * float(w)) for j, w in enumerate(_jaw_weights()[:9])},
        57: (0.0, 0.16),
        58: (0.0, 0.155),
        59: (0.0, 0.13),
        66: (0.0, 0.16),
        67: (0.0, 0.15),
        48: (-0.01, 0.05),
        60: (-0.01, 0.05),
        61: (0.0, -0.01),
        62: (0.0, -0.012),
    },
    27: {
        **{j: (0.0, 0.38 * float(w)) for j, w in enumerate(_jaw_weights()[:9])},
        57: (0.0, 0.37),
        58: (0.0, 0.35),
        59: (0.0, 0.3),
        66: (0.0, 0.36),
        67: (0.0, 0.33),
        48: (-0.05, 0.13),
        60: (-0.05, 0.13),
        49: (-0.02, -0.005),
        61: (-0.02, -0.025),
        62: (0.0, -0.03),
        51: (0.0, -0.02),
    },
}
_UNILATERAL = frozenset({14})


def _au_field(shifts: Mapping[int, tuple[float, float]], sides: tuple[int, ...]) -> np.ndarray:
    """(68, 2) displacement of one AU at full strength, on the given image sides (-1, +1)."""
    out = np.zeros((68, 2))
    for index, (outward, down) in shifts.items():
        mirror = int(_MIRROR[index])
        if mirror == index:
            out[index] = (0.0, down)
            continue
        if -1 in sides:
            out[index] = (-outward, down)
        if 1 in sides:
            out[mirror] = (outward, down)
    return out


_FIELDS: dict[tuple[int, int], np.ndarray] = {
    (au, side): _au_field(shifts, (side,) if au in _UNILATERAL else (-1, 1))
    for au, shifts in _AU_SHIFTS.items()
    for side in (-1, 1)
}


def _neutral_landmarks(f: _FaceShape) -> np.ndarray:
    """The subject's relaxed face as 68 iBUG points in face units."""
    pts = np.zeros((68, 2))
    phi = np.pi * (1 - np.arange(17) / 16)  # pi (image left) .. 0 (image right), via the chin
    cos, sin = np.cos(phi), np.abs(np.sin(phi))
    power = 2 / f.jaw_exp
    pts[0:17, 0] = f.cheek_w * np.sign(cos) * np.abs(cos) ** power * (1 - f.chin_narrow * sin**4)
    pts[0:17, 1] = f.jaw_top + f.jaw_h * sin**power

    u = np.linspace(0, 1, 5)  # outer -> inner
    brow_x = -(f.brow_in + f.brow_len * (1 - u))
    brow_y = f.eye_y - f.brow_gap - f.brow_arch * np.sin(np.pi * (0.15 + 0.7 * u)) + 0.03 * (1 - u)
    pts[17:22] = np.stack([brow_x, brow_y], axis=1)

    pts[27:31, 1] = np.linspace(f.eye_y - 0.02, f.nose_tip, 4)
    base = f.nose_tip + 0.07
    pts[31:36, 0] = np.array([-1, -0.5, 0, 0.5, 1]) * f.nose_w
    pts[31:36, 1] = base + np.array([-0.02, 0.02, 0.035, 0.02, -0.02])

    cx, w, h = -f.eye_dx, f.eye_w, f.eye_h
    pts[36:42] = [
        (cx - w / 2, f.eye_y - f.eye_tilt),
        (cx - w / 6, f.eye_y - 0.55 * h),
        (cx + w / 6, f.eye_y - 0.55 * h),
        (cx + w / 2, f.eye_y),
        (cx + w / 6, f.eye_y + 0.45 * h),
        (cx - w / 6, f.eye_y + 0.45 * h),
    ]

    hw, y, up, low = f.mouth_hw, f.mouth_y, f.lip_up, f.lip_low
    corner = y + f.corner_dy
    pts[48:51] = [(-hw, corner), (-0.6 * hw, y - 0.8 * up), (-0.22 * hw, y - up)]
    pts[51] = (0, y - up + 0.015)
    pts[57] = (0, y + low)
    pts[58:60] = [(-0.3 * hw, y + 0.95 * low), (-0.65 * hw, y + 0.75 * low)]
    pts[60:63] = [(-0.85 * hw, corner), (-0.4 * hw, y - 0.004), (0, y - 0.004)]
    pts[66:68] = [(0, y + 0.004), (-0.4 * hw, y + 0.004)]

    left = np.flatnonzero(pts[:, 0] < 0)
    pts[_MIRROR[left]] = pts[left] * (-1, 1)
    return pts + f.asymmetry


_APEX = 0.85  # fraction of the sequence at which the expression reaches its peak


def _ramp(t: float, onset: float) -> float:
    """Smoothstep from 0 (neutral first frame) to 1 at `_APEX`, then held to the last frame.

    CK+ sequences end at the apex and its last frames share the peak labels, so the peak is
    reached a little before the end rather than only on the very last frame.
    """
    x = min(max((t - onset) / (_APEX - onset), 0.0), 1.0)
    return x * x * (3 - 2 * x)


def _deform(neutral: np.ndarray, strengths: Mapping[int, float], side: int) -> np.ndarray:
    """Neutral landmarks moved by the AUs' fields, then kept anatomically possible."""
    pts = neutral.copy()
    for au, strength in strengths.items():
        if strength > 0:
            pts += strength * _FIELDS[(au, side)]
    return _constrain(pts)


# (upper, lower) point pairs that must not cross, with the least gap between them.
_ORDERED_PAIRS = (
    ((37, 41), 0.008),
    ((38, 40), 0.008),
    ((43, 47), 0.008),
    ((44, 46), 0.008),
    ((49, 61), 0.012),
    ((50, 61), 0.012),
    ((51, 62), 0.012),
    ((52, 63), 0.012),
    ((53, 63), 0.012),
    ((67, 59), 0.012),
    ((67, 58), 0.012),
    ((66, 57), 0.012),
    ((65, 56), 0.012),
    ((65, 55), 0.012),
)


def _constrain(pts: np.ndarray) -> np.ndarray:
    for upper, lower in ((61, 67), (62, 66), (63, 65)):  # lips meet rather than cross
        if pts[lower, 1] < pts[upper, 1]:
            pts[upper, 1] = pts[lower, 1] = (pts[upper, 1] + pts[lower, 1]) / 2
    for (upper, lower), gap in _ORDERED_PAIRS:
        if pts[lower, 1] - pts[upper, 1] < gap:
            if upper in (37, 38, 43, 44):
                mid = (pts[upper, 1] + pts[lower, 1]) / 2
                pts[upper, 1], pts[lower, 1] = mid - gap / 2, mid + gap / 2
            elif upper >= 60:  # the inner lower lip stays, the outer one sits below it
                pts[lower, 1] = pts[upper, 1] + gap
            else:
                pts[upper, 1] = pts[lower, 1] - gap
    for brow, lid in ((19, 37), (20, 38), (23, 43), (24, 44)):
        pts[brow, 1] = min(pts[brow, 1], pts[lid, 1] - 0.06)
    return pts


# %% Drawing: canonical geometry -> anti-aliased pixels through one affine transform


def _tone(colour: Colour, factor: float = 1.0, t: float = 1.0) -> Colour | None:
    """`colour` darkened (factor < 1) or lightened (> 1) by the fraction t of the change.

    None when t is too small to see, so callers skip drawing shading that is not there.
    """
    if t < 0.02:
        return None
    k = 1 + (factor - 1) * min(t, 1.0)
    return tuple(min(255.0, max(0.0, v * k)) for v in colour)


def _blend(a: Colour, b: Colour, t: float) -> Colour:
    return tuple(x + (y - x) * t for x, y in zip(a, b, strict=True))


def _smooth(pts: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Chaikin corner cutting: round curves from a few landmarks, ends kept in place."""
    for _ in range(iterations):
        q = 0.75 * pts[:-1] + 0.25 * pts[1:]
        r = 0.25 * pts[:-1] + 0.75 * pts[1:]
        mid = np.empty((2 * len(q), 2))
        mid[0::2], mid[1::2] = q, r
        pts = np.vstack([pts[:1], mid[1:-1], pts[-1:]])
    return pts


_BEZIER_T = {n: np.linspace(0, 1, n)[:, None] for n in (5, 8)}
_UNIT_CIRCLE = np.stack([np.cos(np.arange(20) * np.pi / 10), np.sin(np.arange(20) * np.pi / 10)], axis=1)


def _quad(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int = 8) -> np.ndarray:
    """Quadratic Bezier curve: a wrinkle or fold as a gentle arc through three points."""
    t = _BEZIER_T[n]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _ellipse(centre: np.ndarray, axes: tuple[float, float]) -> np.ndarray:
    return _UNIT_CIRCLE * axes + centre


class _Projection:
    """Face units -> cv2's fixed-point pixels (1/16 pixel): one transform for pixels and files."""

    def __init__(self, affine: np.ndarray) -> None:
        self.linear = affine[:, :2].T * _SUBPIXEL
        self.offset = affine[:, 2] * _SUBPIXEL
        self.scale = float(np.hypot(affine[0, 0], affine[1, 0]))

    def fixed(self, pts: np.ndarray) -> np.ndarray:
        return np.rint(pts @ self.linear + self.offset).astype(np.int32)


def _to_pixels(affine: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Face units -> image pixels, on exactly the grid the drawing used."""
    return _Projection(affine).fixed(pts) / _SUBPIXEL


class _Canvas:
    """An image plus the face-to-pixel transform, so drawing code speaks in face units.

    A colour of None (shading too faint to see) draws nothing.
    """

    def __init__(self, img: np.ndarray, affine: np.ndarray) -> None:
        self.img = img
        self.projection = _Projection(affine)
        self.scale = self.projection.scale

    def fill(self, pts: np.ndarray, colour: Colour | None) -> None:
        if colour is not None:
            fixed = self.projection.fixed(pts)
            cv2.fillPoly(self.img, [fixed], colour, cv2.LINE_AA, _SUBPIXEL_BITS)

    def line(self, pts: np.ndarray, colour: Colour | None, width: float, closed: bool = False) -> None:
        if colour is not None:
            fixed = self.projection.fixed(pts)
            thickness = max(1, round(width * self.scale))
            cv2.polylines(self.img, [fixed], closed, colour, thickness, cv2.LINE_AA, _SUBPIXEL_BITS)

    def ellipse(self, centre: np.ndarray, axes: tuple[float, float], colour: Colour | None) -> None:
        if colour is not None:
            self.fill(_ellipse(centre, axes), colour)


def _head_arc(lm: np.ndarray, f: _FaceShape, grow: float = 1.0, n: int = 15) -> np.ndarray:
    """Forehead and skull outline from the right temple over the top to the left temple."""
    centre = (lm[0] + lm[16]) / 2
    half = (lm[16, 0] - lm[0, 0]) / 2 * grow
    t = np.linspace(0, -np.pi, n)
    return np.stack([centre[0] + half * np.cos(t), centre[1] + f.head_h * grow * np.sin(t)], axis=1)


def _draw_body(cv: _Canvas, f: _FaceShape, pal: _Palette, lm: np.ndarray) -> None:
    """What lies behind the face: shoulders, neck with the chin's shadow, ears, back hair."""
    top = (lm[0, 1] + lm[16, 1]) / 2
    cv.fill(
        np.array([(-2.3, 4.0), (-2.1, 2.0), (-0.6, 1.7), (0, 1.9), (0.6, 1.7), (2.1, 2.0), (2.3, 4.0)]),
        pal.clothes,
    )
    cv.fill(
        np.array([(-0.45, top + 0.8), (0.45, top + 0.8), (0.52, 2.1), (-0.52, 2.1)]),
        _tone(pal.skin, 0.8),
    )
    jaw = lm[3:14]
    cv.fill(np.vstack([jaw, jaw[::-1] + (0, 0.12)]), _tone(pal.skin, 0.6))
    for sign in (-1, 1):
        ear = np.array([sign * ((lm[16, 0] - lm[0, 0]) / 2 + 0.03), top + 0.17])
        cv.ellipse(ear, (0.08, 0.17), _tone(pal.skin, 0.88))
    if f.long_hair:
        arc = _head_arc(lm, f, 1.12)
        sides = np.array([(-arc[0, 0] * 1.05, top + 1.35), (arc[0, 0] * 1.05, top + 1.35)])
        cv.fill(np.vstack([sides[1:], arc, sides[:1]]), pal.hair)
    else:
        cv.fill(_head_arc(lm, f, 1.07), pal.hair)


def _draw_head(cv: _Canvas, f: _FaceShape, pal: _Palette, lm: np.ndarray, a: Mapping[int, float]) -> None:
    """Face outline (jaw landmarks plus a skull arc), forehead lines, hair fringe, a mole."""
    arc = _head_arc(lm, f)
    cv.fill(np.vstack([lm[0:17], arc]), pal.skin)
    _draw_forehead_lines(cv, f, pal, lm, a)
    half = (lm[16, 0] - lm[0, 0]) / 2
    x = np.linspace(-half, half, 13)
    hair_y = np.minimum(f.eye_y - f.brow_gap - f.hairline + 0.35 * (x / half) ** 2, arc[0, 1] - 0.05)
    cv.fill(np.vstack([arc, np.stack([x, hair_y], axis=1)]), pal.hair)
    if f.mole is not None:
        cv.ellipse(np.array(f.mole), (0.013, 0.013), _tone(pal.skin, 0.55))


_MID_FOREHEAD = np.stack([np.linspace(-0.3, 0.3, 7), -0.03 * (1 - np.linspace(-1, 1, 7) ** 2)], axis=1)
_SIDE_FOREHEAD = np.stack([np.linspace(0.25, 0.72, 6), 0.05 * ((np.linspace(0.25, 0.72, 6) - 0.45) / 0.3) ** 2], axis=1)
_NOSE_WRINKLE = np.stack([np.linspace(-0.1, 0.1, 5), -0.015 * (1 - np.linspace(-1, 1, 5) ** 2)], axis=1)


def _draw_forehead_lines(cv: _Canvas, f: _FaceShape, pal: _Palette, lm: np.ndarray, a: Mapping[int, float]) -> None:
    """AU1 wrinkles the middle of the forehead, AU2 its sides; age adds faint static lines."""
    inner = max(a.get(1, 0.0), f.age_lines)
    outer = max(a.get(2, 0.0), f.age_lines)
    mid_y = (lm[20, 1] + lm[23, 1]) / 2
    for k in range(3):
        colour = _tone(pal.skin, 0.6, inner * (1 - 0.15 * k))
        cv.line(_MID_FOREHEAD + (0, mid_y - 0.1 - 0.065 * k), colour, 0.018)
        colour = _tone(pal.skin, 0.6, outer * (1 - 0.15 * k))
        if colour is not None:
            for sign, brow in ((-1, 18), (1, 25)):
                line = _SIDE_FOREHEAD * (sign, 1) + (0, lm[brow, 1] - 0.1 - 0.065 * k)
                cv.line(line, colour, 0.018)


_EYES = ((36, 37, 38, 39, 40, 41), (45, 44, 43, 42, 47, 46))  # outer, upper x2, inner, lower x2


def _draw_eye(
    cv: _Canvas,
    f: _FaceShape,
    pal: _Palette,
    lm: np.ndarray,
    a: Mapping[int, float],
    idx: tuple[int, ...],
) -> None:
    """Sclera, iris and pupil, then lid skin over what the lids hide (so AU5/6/7 change how
    much eye shows), lid lines, and AU7's tension line under the lower lid."""
    outer, up1, up2, inner, low1, low2 = idx
    upper = _smooth(lm[[outer, up1, up2, inner]])
    lower = _smooth(lm[[inner, low1, low2, outer]])
    cv.fill(np.vstack([upper, lower]), pal.sclera)
    centre = (lm[outer] + lm[inner]) / 2 - (0, 0.004)
    cv.ellipse(centre, (f.iris_r, f.iris_r), pal.iris)
    cv.ellipse(centre, (0.45 * f.iris_r, 0.45 * f.iris_r), _tone(pal.mouth, 0.5))
    cv.ellipse(
        centre - (0.3 * f.iris_r, 0.35 * f.iris_r),
        (0.2 * f.iris_r, 0.2 * f.iris_r),
        _tone(pal.sclera, 1.05),
    )
    cv.fill(np.vstack([upper, upper[::-1] - (0, 0.11)]), pal.skin)
    cv.fill(np.vstack([lower, lower[::-1] + (0, 0.11)]), pal.skin)
    crease = upper - (0, 0.045) * np.sin(np.linspace(0, np.pi, len(upper)))[:, None] - (0, 0.01)
    cv.line(crease, _tone(pal.skin, 0.78), 0.012)
    cv.line(upper, _tone(pal.brow, 0.6), 0.026)
    cv.line(lower, _tone(pal.skin, 0.68), 0.012)
    cv.line(lower + (0, 0.035), _tone(pal.skin, 0.7, a.get(7, 0.0)), 0.014)
    _draw_cheek(cv, pal, lm, a, outer, lower)


def _draw_cheek(
    cv: _Canvas,
    pal: _Palette,
    lm: np.ndarray,
    a: Mapping[int, float],
    outer: int,
    lower: np.ndarray,
) -> None:
    """AU6: raised cheek below the eye, its furrow, and crow's feet at the outer corner."""
    cheek = a.get(6, 0.0)
    if cheek <= 0.0:
        return
    sign = np.sign(lm[outer, 0])
    centre = lower.mean(axis=0) + (0, 0.2)
    cv.ellipse(centre, (0.2, 0.09), _tone(pal.skin, 1.1, cheek))
    cv.line(lower + (0, 0.075), _tone(pal.skin, 0.68, cheek), 0.016)
    for angle in (-0.45, 0.0, 0.45):
        d = np.array([sign * np.cos(angle), np.sin(angle)])
        start = lm[outer] + d * 0.035
        cv.line(np.stack([start, start + d * 0.1]), _tone(pal.skin, 0.55, cheek), 0.016)


def _draw_nose(cv: _Canvas, f: _FaceShape, pal: _Palette, lm: np.ndarray, a: Mapping[int, float]) -> None:
    """Nose sides, wings and nostrils; AU9 wrinkles the bridge; the nasolabial folds deepen."""
    wrinkle = a.get(9, 0.0)
    for sign, wing, nostril, corner in ((-1, 31, 32, 48), (1, 35, 34, 54)):
        side = np.array(
            [
                lm[27] + (sign * 0.06, 0.06),
                lm[30] + (sign * 0.08, -0.06),
                lm[wing] + (sign * 0.01, -0.04),
            ]
        )
        cv.line(side, _tone(pal.skin, 0.85), 0.014)
        cv.ellipse(lm[nostril] + (sign * 0.01, -0.012), (0.032, 0.016), _tone(pal.skin, 0.35))
        start, end = lm[wing] + (sign * 0.05, -0.02), lm[corner] + (sign * 0.05, 0.0)
        fold = _quad(start, (start + end) / 2 + (sign * 0.04, 0), end)
        depth = f.age_lines + 0.15 + 0.75 * a.get(12, 0.0) + 0.45 * wrinkle + 0.2 * a.get(6, 0.0)
        cv.line(fold, _tone(pal.skin, 0.6, depth), 0.018)
        bunny = np.array([lm[28] + (sign * 0.1, 0.0), lm[28] + (sign * 0.17, 0.07)])
        cv.line(bunny, _tone(pal.skin, 0.55, wrinkle), 0.016)
    cv.line(_smooth(lm[31:36]), _tone(pal.skin, 0.7), 0.016)
    cv.ellipse(lm[30] - (0, 0.01), (0.05, 0.035), _tone(pal.skin, 1.08))
    colour = _tone(pal.skin, 0.55, wrinkle)
    if colour is not None:
        for k in (-1, 0, 1):
            cv.line(_NOSE_WRINKLE + lm[28] + (0, 0.02 + 0.04 * k), colour, 0.016)


def _draw_brows(cv: _Canvas, f: _FaceShape, pal: _Palette, lm: np.ndarray, a: Mapping[int, float]) -> None:
    """Brows as filled bands; AU4 adds vertical furrows between them."""
    profile = f.brow_thick * np.array([0.55, 0.8, 0.95, 1.0, 0.95])[:, None]
    for chain in (lm[17:22], lm[26:21:-1]):
        top = _smooth(chain - profile * (0, 0.55), 1)
        bottom = _smooth(chain + profile * (0, 0.45), 1)
        cv.fill(np.vstack([top, bottom[::-1]]), pal.brow)
    lower = a.get(4, 0.0)
    if lower > 0.0:
        mid = (lm[21] + lm[22]) / 2
        for dx in (-0.035, 0.035):
            furrow = np.array([mid + (dx, -0.02), mid + (dx * 1.2, 0.1)])
            cv.line(furrow, _tone(pal.skin, 0.5, lower), 0.018)
        cv.line(
            np.array([lm[27] + (-0.05, 0.0), lm[27] + (0.05, 0.0)]),
            _tone(pal.skin, 0.6, lower),
            0.014,
        )


def _draw_mouth_area(
    cv: _Canvas, f: _FaceShape, pal: _Palette, lm: np.ndarray, a: Mapping[int, float], side: int
) -> None:
    """Skin around the mouth: AU17 chin boss, AU24 bulges, AU15/12/14 corner lines."""
    chin = a.get(17, 0.0)
    if chin > 0.0:
        centre = (lm[57] + lm[8]) / 2 + (0, 0.02)
        cv.ellipse(centre, (0.17, 0.085), _tone(pal.skin, 1.18, chin))
        for dot in centre + f.chin_dots * (0.13, 0.06):
            cv.ellipse(dot, (0.016, 0.016), _tone(pal.skin, 0.45, chin * 0.9))
        furrow = _quad(lm[57] + (-0.14, 0.05), lm[57] + (0, 0.1), lm[57] + (0.14, 0.05))
        cv.line(furrow, _tone(pal.skin, 0.45, chin), 0.024)
    press = a.get(24, 0.0)
    if press > 0.0:
        half = 0.7 * f.mouth_hw
        # Pressed lips bulge the skin above and below them, outlined by dark creases.
        cv.ellipse(lm[51] - (0, 0.05), (half, 0.035), _tone(pal.skin, 1.25, press))
        cv.ellipse(lm[57] + (0, 0.05), (half, 0.035), _tone(pal.skin, 1.25, press))
        for y, sign in ((lm[51][1] - 0.09, -1), (lm[57][1] + 0.09, 1)):
            crease = _quad(np.array((lm[48][0] + 0.02, y - sign * 0.02)), np.array((lm[51][0], y)),
                           np.array((lm[54][0] - 0.02, y - sign * 0.02)))  # fmt: skip
            cv.line(crease, _tone(pal.skin, 0.45, press), 0.022)
    for sign, corner in ((-1, 48), (1, 54)):
        c = lm[corner]
        cv.line(
            np.array([c + (sign * 0.015, 0.02), c + (sign * 0.04, 0.12)]),
            _tone(pal.skin, 0.6, a.get(15, 0.0)),
            0.018,
        )
        crease = _quad(c + (sign * 0.03, -0.04), c + (sign * 0.05, 0.0), c + (sign * 0.03, 0.035), 5)
        cv.line(crease, _tone(pal.skin, 0.6, 0.8 * a.get(12, 0.0)), 0.016)
        if sign == side:
            dimple = _quad(c + (sign * 0.04, -0.06), c + (sign * 0.075, 0.0), c + (sign * 0.04, 0.06), 5)
            cv.line(dimple, _tone(pal.skin, 0.3, a.get(14, 0.0)), 0.045)
            cv.ellipse(c + (sign * 0.035, -0.01), (0.035, 0.028), _tone(pal.skin, 0.5, a.get(14, 0.0)))
            cv.ellipse(c + (sign * 0.09, -0.04), (0.05, 0.035), _tone(pal.skin, 1.15, a.get(14, 0.0)))


def _draw_lips(cv: _Canvas, f: _FaceShape, pal: _Palette, lm: np.ndarray, a: Mapping[int, float]) -> None:
    """Lips, and when parted the dark mouth with teeth (AU25/26/27)."""
    pale = 0.35 * a.get(23, 0.0) + 0.3 * a.get(24, 0.0)
    lips = _blend(pal.lips, pal.skin, min(pale, 0.6))
    upper = _smooth(lm[48:55])
    lower = _smooth(lm[[54, 55, 56, 57, 58, 59, 48]])
    cv.fill(np.vstack([upper, lower]), lips)
    cv.line(np.vstack([upper, lower]), _tone(lips, 0.8 - 0.3 * a.get(23, 0.0)), 0.008, closed=True)
    gaps = lm[[67, 66, 65], 1] - lm[[61, 62, 63], 1]
    if gaps.max() > 0.015:
        inner_up = _smooth(lm[60:65], 1)
        inner_low = _smooth(lm[[64, 65, 66, 67, 60]], 1)
        cv.fill(np.vstack([inner_up, inner_low]), pal.mouth)
        local = np.concatenate([[0.0], gaps, [0.0]])
        teeth = lm[60:65] + np.stack([np.zeros(5), np.minimum(0.055, 0.5 * local)], axis=1)
        cv.fill(np.vstack([inner_up, _smooth(teeth, 1)[::-1]]), pal.teeth)
        if gaps.max() > 0.12:
            low_teeth = lm[[64, 65, 66, 67, 60]] - np.stack([np.zeros(5), np.minimum(0.035, 0.2 * local[::-1])], axis=1)
            cv.fill(np.vstack([inner_low, _smooth(low_teeth, 1)[::-1]]), _tone(pal.teeth, 0.9))
        cv.line(np.vstack([inner_up, inner_low]), pal.mouth, 0.01, closed=True)
    else:
        seam = _smooth(lm[[48, 60, 61, 62, 63, 64, 54]])
        cv.line(seam, _blend(lips, pal.mouth, 0.7), 0.02 + 0.01 * a.get(23, 0.0))
    cv.ellipse(lm[57] * 0.6 + lm[66] * 0.4, (0.3 * f.mouth_hw, 0.015), _tone(lips, 1.15))


def _draw_face(
    img: np.ndarray,
    affine: np.ndarray,
    subject: _Subject,
    lm: np.ndarray,
    a: Mapping[int, float],
    side: int,
) -> None:
    """Back to front: body and hair, head, eyes and cheeks, nose, brows, mouth."""
    cv, f, pal = _Canvas(img, affine), subject.face, subject.palette
    _draw_body(cv, f, pal, lm)
    _draw_head(cv, f, pal, lm, a)
    for idx in _EYES:
        _draw_eye(cv, f, pal, lm, a, idx)
    _draw_nose(cv, f, pal, lm, a)
    _draw_brows(cv, f, pal, lm, a)
    _draw_mouth_area(cv, f, pal, lm, a, side)
    _draw_lips(cv, f, pal, lm, a)


# %% Scene: background, lighting, noise (fixed per sequence, the camera does not move)


def _plane(h: int, w: int, channels: int) -> tuple[int, ...]:
    return (h, w) if channels == 1 else (h, w, channels)


_FIELD_STEP = 4  # smooth fields (walls, light) are drawn at quarter resolution, then upsampled


def _grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-resolution x and y coordinates of a quarter-resolution grid (float32)."""
    ys = np.linspace(0, h - 1, -(-h // _FIELD_STEP), dtype=np.float32)[:, None]
    xs = np.linspace(0, w - 1, -(-w // _FIELD_STEP), dtype=np.float32)[None, :]
    return xs, ys


def _upsample(field: np.ndarray, w: int, h: int) -> np.ndarray:
    return cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR)


def _background(rng: np.random.Generator, w: int, h: int, channels: int, strength: float) -> np.ndarray:
    """A wall: base tone, gradient, blotchy low-frequency texture, fine grain, maybe an edge."""
    xs, ys = _grid(w, h)
    shape = (ys.shape[0], xs.shape[1])
    coarse = rng.normal(0, 22 * strength, (4, 5)).astype(np.float32)
    img = cv2.resize(coarse, shape[::-1], interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 5 * strength, shape).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    img += ((xs - w / 2) * np.cos(angle) + (ys - h / 2) * np.sin(angle)) * np.float32(70 * strength / max(w, h))
    if rng.random() < 0.35:  # a door frame or wall edge
        img[:, : int(rng.uniform(0.05, 0.95) * shape[1])] += np.float32(rng.normal(0, 25 * strength))
    img += np.float32(rng.uniform(60, 200))
    grey = np.clip(_upsample(img, w, h), 0, 255).astype(np.uint8)
    if channels == 1:
        return grey
    tint = rng.normal(0, 12, 3)  # a tinted wall: one colour cast over the grey texture
    return cv2.merge([cv2.add(grey, float(t)) for t in tint])


def _gain_map(
    rng: np.random.Generator, w: int, h: int, channels: int, affine: np.ndarray, strength: float
) -> np.ndarray:
    """Exposure, a light gradient across the face and soft face roundness, as a 128-based gain."""
    scale = float(np.hypot(affine[0, 0], affine[1, 0]))
    cx, cy = affine[0, 2], affine[1, 2] + 0.25 * scale
    angle = rng.uniform(0, 2 * np.pi)
    xs, ys = _grid(w, h)
    slope = ((xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle)) / (2.2 * scale)
    gain = np.clip(1 + strength * slope, 0.4, 1.6)
    r2 = ((xs - cx) ** 2 + (ys - cy) ** 2) / (1.2 * scale) ** 2
    gain = gain * (0.9 + 0.18 * np.exp(-r2)) * rng.uniform(0.85, 1.15)
    gain = np.clip(_upsample(gain.astype(np.float32), w, h) * 128 + 0.5, 0, 255).astype(np.uint8)
    return gain if channels == 1 else cv2.merge([gain] * channels)


_NOISE_PAD = 32
_Noise = tuple[np.ndarray, np.ndarray] | None


def _noise_bank(rng: np.random.Generator, w: int, h: int, channels: int, sigma: float) -> _Noise:
    """Sensor noise for all of a subject's frames (each takes a random window of it).

    Split into + and - parts so that adding it is two saturating uint8 operations.
    """
    if sigma <= 0:
        return None
    shape = _plane(h + _NOISE_PAD, w + _NOISE_PAD, channels)
    noise = rng.standard_normal(shape, dtype=np.float32) * sigma
    return np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8)


def _finish(img: np.ndarray, gain: np.ndarray, noise: _Noise, rng: np.random.Generator) -> np.ndarray:
    """Optics and sensor: slight blur, lighting, then noise."""
    img = cv2.GaussianBlur(img, (3, 3), 0.8)
    img = cv2.multiply(img, gain, scale=1 / 128)
    if noise is not None:
        h, w = img.shape[:2]
        oy, ox = (int(v) for v in rng.integers(0, _NOISE_PAD, 2))
        img = cv2.add(img, noise[0][oy : oy + h, ox : ox + w])
        img = cv2.subtract(img, noise[1][oy : oy + h, ox : ox + w])
    return img


# %% Sequences and subjects


def _affine(scale: float, angle: float, cx: float, cy: float) -> np.ndarray:
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -s, cx], [s, c, cy]])


def _shift_into(low: float, high: float, lo_bound: float, hi_bound: float) -> float:
    """Translation that moves the span [low, high] inside [lo_bound, hi_bound] (centred if too big)."""
    if high - low > hi_bound - lo_bound:
        return (lo_bound + hi_bound) / 2 - (low + high) / 2
    if low < lo_bound:
        return lo_bound - low
    if high > hi_bound:
        return hi_bound - high
    return 0.0


def _sequence_affines(
    rng: np.random.Generator, size: tuple[int, int], frames: list[np.ndarray], params: SynthParams
) -> list[np.ndarray]:
    """Per-frame head pose: a per-sequence placement plus a small drift, all landmarks in view."""
    w, h = size
    jitter = rng.uniform(-1, 1, 4)
    scale = 0.27 * h * (1 + jitter[0] * params.scale_jitter)
    angle = np.deg2rad(jitter[1] * params.rotation_deg)
    cx = w / 2 + jitter[2] * params.position_jitter * w
    cy = 0.4 * h + jitter[3] * params.position_jitter * h
    steps = rng.normal(0, params.frame_jitter_px, (len(frames), 3))
    steps[0] = 0
    drift = np.clip(np.cumsum(steps, axis=0), -8, 8)
    affines = [_affine(scale, angle + np.deg2rad(0.15 * d[2]), cx + d[0], cy + d[1]) for d in drift]
    pts = np.vstack([_to_pixels(a, lm) for a, lm in zip(affines, frames, strict=True)])
    margin = 6
    dx = _shift_into(pts[:, 0].min(), pts[:, 0].max(), margin, w - 1 - margin)
    dy = _shift_into(pts[:, 1].min(), pts[:, 1].max(), margin, h - 1 - margin)
    for a in affines:
        a[:, 2] += (round(dx), round(dy))
    return affines


def _strengths(expr: Expression, onsets: Mapping[int, float], expressivity: float, t: float) -> dict[int, float]:
    """AU magnitudes at time t in [0, 1]: FACS level times the subject's expressivity, ramped."""
    return {au: expressivity * (0.72 + 0.07 * level) * _ramp(t, onsets[au]) for au, level in expr.levels}


def _write_sequence(
    root: Path, subject: _Subject, sequence: str, rng: np.random.Generator, params: SynthParams, noise: _Noise
) -> tuple[int, bool]:
    """One neutral-to-peak sequence with its labels; returns (frames, has an Emotion file)."""
    expr = sample_expression(rng, params)
    low, high = params.frames_per_sequence
    n = int(rng.integers(low, high + 1))
    onsets = {au: float(rng.uniform(0, 0.3)) for au, _ in expr.levels}
    neutral = _neutral_landmarks(subject.face)
    strengths = [_strengths(expr, onsets, subject.face.expressivity, k / (n - 1)) for k in range(n)]
    frames = [_deform(neutral, s, expr.side) for s in strengths]
    affines = _sequence_affines(rng, subject.size, frames, params)
    w, h = subject.size
    channels = subject.palette.channels
    background = _background(rng, w, h, channels, params.background_texture)
    gain = _gain_map(rng, w, h, channels, affines[0], params.illumination)
    sid = subject.subject_id
    ckformat.image_path(root, sid, sequence, 1).parent.mkdir(parents=True, exist_ok=True)
    for k, (lm, affine, s) in enumerate(zip(frames, affines, strengths, strict=True)):
        img = background.copy()
        _draw_face(img, affine, subject, lm, s, expr.side)
        img = _finish(img, gain, noise, rng)
        cv2.imwrite(str(ckformat.image_path(root, sid, sequence, k + 1)), img, _PNG_OPTIONS)
        ckformat.write_landmarks(ckformat.landmarks_path(root, sid, sequence, k + 1), _to_pixels(affine, lm))
    ckformat.write_facs(ckformat.facs_path(root, sid, sequence, n), expr.coded)
    if expr.has_emotion:
        ckformat.write_emotion(ckformat.emotion_path(root, sid, sequence, n), expr.emotion)
    return n, expr.has_emotion


def _generate_subject(root: str, seed: int, index: int, subject_id: str, params: SynthParams) -> _SubjectCounts:
    """All sequences of one subject (a worker process's unit of work)."""
    subject, rng = _sample_subject(seed, index, subject_id, params)
    low, high = params.sequences_per_subject
    sequences = int(rng.integers(low, high + 1))
    noise = _noise_bank(rng, *subject.size, subject.palette.channels, params.noise_sigma)
    frames = with_emotion = 0
    for k in range(sequences):
        n, labelled = _write_sequence(Path(root), subject, f"{k + 1:03d}", rng, params, noise)
        frames += n
        with_emotion += labelled
    return _SubjectCounts(sequences, frames, with_emotion)


# %% The output folder and the public entry point


def is_synthetic_set(path: Path | str) -> bool:
    """Whether `path` holds a complete synthetic CK+ (the marker is written last)."""
    return (Path(path) / MARKER_FILE).is_file()


def _prepare_root(root: Path) -> None:
    """Refuse foreign folders; clear a previous (complete or interrupted) synthetic set."""
    if root.exists() and not root.is_dir():
        raise DataError(f"{root}: exists and is not a folder; choose a new or empty folder for the synthetic CK+")
    if root.is_dir() and any(root.iterdir()):
        if not (root / MARKER_FILE).is_file() and not (root / PARTIAL_MARKER_FILE).is_file():
            raise DataError(
                f"{root}: folder is not empty and is not a synthetic CK+ set (no {MARKER_FILE}); "
                "choose a new or empty folder"
            )
        (root / MARKER_FILE).unlink(missing_ok=True)  # first, so a half-replaced set never looks complete
        for name in _OWNED_PATHS:
            target = root / name
            if target.is_dir():
                shutil.rmtree(target)
            elif name != PARTIAL_MARKER_FILE:
                target.unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    (root / PARTIAL_MARKER_FILE).write_text("synthetic CK+ generation in progress\n")


def _check_arguments(subjects: int, seed: int, workers: int | None) -> None:
    if not 1 <= subjects <= 994:
        raise ConfigError(
            f"subjects must be between 1 and 994 (CK+ ids are three digits). Received: subjects={subjects}"
        )
    if seed < 0:
        raise ConfigError(f"seed must be >= 0. Received: seed={seed}")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1. Received: workers={workers}")


def _write_subjects_csv(root: Path, seed: int, ids: list[str], params: SynthParams) -> None:
    with (root / ckformat.SUBJECTS_FILE).open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["subject", "age", "sex", "ethnicity"])
        for index, sid in enumerate(ids):
            demo = _sample_subject(seed, index, sid, params)[0].demographics
            writer.writerow([sid, demo.age, demo.sex, demo.ethnicity])


def _run_subjects(
    root: Path, seed: int, ids: list[str], params: SynthParams, workers: int, progress: bool
) -> list[_SubjectCounts]:
    """Draw every subject, in spawned worker processes when workers > 1.

    Spawn rather than fork: the caller may have TensorFlow (and its threads) loaded. Like any
    spawning code, a calling script needs the ``if __name__ == "__main__":`` guard.
    """
    jobs = [(str(root), seed, index, sid, params) for index, sid in enumerate(ids)]
    with tqdm(total=len(jobs), desc="synthetic CK+", unit="subject", disable=not progress) as bar:
        if workers == 1:
            counts = []
            for job in jobs:
                counts.append(_generate_subject(*job))
                bar.update()
            return counts
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_generate_subject, *job) for job in jobs]
            try:
                for future in as_completed(futures):
                    future.result()
                    bar.update()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            return [future.result() for future in futures]


def generate_synthetic_ckplus(
    out: Path | str,
    *,
    subjects: int = DEFAULT_SUBJECTS,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    params: SynthParams | None = None,
) -> SynthSummary:
    """Write a synthetic CK+ into `out` in the official layout; same inputs, same bytes.

    `out` must be new, empty, or an earlier synthetic set (which is replaced). The marker
    file is written last, so an interrupted run never looks like a finished set.
    """
    params = params or SynthParams()
    _check_arguments(subjects, seed, workers)
    workers = min(workers or min(2, os.cpu_count() or 1), subjects)
    root = Path(out)
    start = time.perf_counter()
    _prepare_root(root)
    ids = _subject_ids(subjects, seed)
    _write_subjects_csv(root, seed, ids, params)
    counts = _run_subjects(root, seed, ids, params, workers, progress)
    totals = {
        "sequences": sum(c.sequences for c in counts),
        "frames": sum(c.frames for c in counts),
        "sequences_with_emotion": sum(c.with_emotion for c in counts),
    }
    marker = {
        "generator": "ckrun.data.synth",
        "version": SYNTH_VERSION,
        "seed": seed,
        "subjects": subjects,
        "params": params.to_dict(),
        **totals,
    }
    (root / MARKER_FILE).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    (root / PARTIAL_MARKER_FILE).unlink()
    return SynthSummary(root=root, subjects=subjects, elapsed_s=time.perf_counter() - start, **totals)
