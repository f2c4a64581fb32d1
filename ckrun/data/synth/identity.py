"""Who is in front of the camera: demographics, face shape, colours, skin, glasses, facial hair.

A subject is drawn from its own random stream, derived from (seed, subject index) alone, so
every worker process draws the same person and the parent's subjects.csv agrees with the
frames the workers write. The same stream then drives that subject's sequences. Demographics
come first in the stream, so every difficulty draws the same people (the same subjects.csv);
the set's strengths only change how different they look.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ckrun.data.synth.expressions import pick
from ckrun.data.synth.params import IMAGE_SIZE_WEIGHTS, IMAGE_SIZES, SynthParams
from ckrun.data.synth.skin import make_texture

Colour = tuple[float, ...]  # one value per image channel, as cv2 drawing expects

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
class Glasses:
    """Frames in face units: lens half-sizes, 2 (round) to 4 (square) shape, line width."""

    half_w: float
    half_h: float
    squareness: float
    thickness: float


@dataclass(frozen=True)
class FaceShape:
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
    facial_hair: str | None = None  # "stubble", "moustache" or "beard"
    glasses: Glasses | None = None


@dataclass(frozen=True)
class Palette:
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
    glasses: Colour
    channels: int


@dataclass(frozen=True)
class Subject:
    subject_id: str
    demographics: _Demographics
    size: tuple[int, int]  # (width, height)
    face: FaceShape
    palette: Palette
    texture: np.ndarray | None = field(default=None, compare=False, repr=False)  # skin gain, see skin.py


def _subject_rng(seed: int, index: int) -> np.random.Generator:
    """The subject's own stream: identical whichever process draws it."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(index,)))


def _sample_demographics(rng: np.random.Generator) -> _Demographics:
    age = int(np.clip(round(18 + rng.gamma(1.6, 5.5)), 18, 50))
    sex = "F" if rng.random() < 0.69 else "M"
    ethnicity = _ETHNICITIES[pick(rng, _ETHNICITY_WEIGHTS)]
    return _Demographics(age, sex, ethnicity)


def _sample_face(rng: np.random.Generator, demo: _Demographics, params: SynthParams) -> FaceShape:
    spread = params.shape_spread

    def u(low: float, high: float) -> float:
        """A proportion drawn from v3's range, widened around its centre by `shape_spread`."""
        centre = (low + high) / 2
        return centre + (float(rng.uniform(low, high)) - centre) * spread

    male = demo.sex == "M"
    eye_y = -0.3 + u(-0.03, 0.03)
    nose_tip = u(0.12, 0.22)
    angles = rng.uniform(0, 2 * np.pi, 8)
    radii = np.sqrt(rng.uniform(0, 1, 8))
    chin_dots = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    mole = (float(rng.uniform(-0.6, 0.6)), float(rng.uniform(-0.1, 0.6))) if rng.random() < 0.3 else None
    if mole is not None and abs(mole[0]) < 0.45 and mole[1] > 0.25:
        mole = (mole[0], mole[1] - 0.4)  # keep moles off the mouth corners, where AU14 dimples are
    return FaceShape(
        jaw_top=eye_y + u(0.0, 0.06),
        jaw_h=u(1.2, 1.42) + (0.05 if male else 0.0),
        jaw_exp=u(2.0, 2.8) + (0.4 if male else 0.0),
        chin_narrow=max(0.0, u(0.05, 0.3)),
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
        age_lines=0.0,  # drawn with the palette (skin age goes with hair greying)
        expressivity=u(*params.expressivity),
        asymmetry=rng.normal(0, 0.006, (68, 2)),
        chin_dots=chin_dots,
        mole=mole,
    )


def _sample_palette(rng: np.random.Generator, demo: _Demographics, rgb: bool, spread: float) -> Palette:
    """Colours; `spread` (appearance_spread) adds brow density, lip colour and greying hair."""
    low, high = (np.array(v, dtype=float) for v in _SKIN_BGR[demo.ethnicity])
    skin = low + (high - low) * rng.uniform()
    skin = skin + rng.normal(0, 4, 3)
    dark_hair = demo.ethnicity != "Euro-American" or rng.random() < 0.6
    hair_level = rng.uniform(15, 55) if dark_hair else rng.uniform(60, 130)
    hair = np.array([0.8, 0.9, 1.0]) * hair_level
    brow = np.minimum(hair * 1.1, skin * 0.45)
    brow_density, lip_tone, grey = 1 - spread * rng.uniform(0, 0.5), 1 + spread * rng.uniform(-0.1, 0.1), 0.0
    if rng.random() < spread * np.clip((demo.age - 35) / 15, 0, 1):
        grey = rng.uniform(0.3, 0.8)
    hair = hair + (np.array([150.0, 155.0, 160.0]) - hair) * grey
    brow = skin + (brow - skin) * brow_density
    frames = rng.uniform(20, 70) if rng.random() < 0.6 else rng.uniform(120, 200)
    iris_choices = ((30, 45, 70), (120, 90, 50), (70, 100, 60), (20, 30, 45))
    iris = np.array(iris_choices[rng.integers(len(iris_choices))], dtype=float)
    colours = {
        "skin": skin,
        "lips": skin * np.array([0.72, 0.6, 0.9]) * lip_tone,
        "brow": brow,
        "hair": hair,
        "sclera": np.array([228.0, 232.0, 235.0]) + rng.normal(0, 4),
        "iris": iris,
        "teeth": np.array([205.0, 220.0, 228.0]),
        "mouth": np.array([25.0, 25.0, 45.0]),
        "clothes": rng.uniform(20, 220, 3),
        "glasses": np.array([1.0, 1.0, 1.05]) * frames,
    }
    if not rgb:  # luminance of the BGR colour, as a grey camera would record it
        weights = np.array([0.114, 0.587, 0.299])
        colours = {k: np.array([v @ weights]) for k, v in colours.items()}
    tuples = {k: tuple(float(x) for x in np.clip(v, 0, 255)) for k, v in colours.items()}
    return Palette(**tuples, channels=3 if rgb else 1)


def subject_ids(count: int, seed: int) -> list[str]:
    """CK+-style non-contiguous three-digit subject ids (S005, S010, ...), fixed by the seed."""
    rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(2**31,)))
    max_gap = max(1, min(5, (999 - 5) // max(count, 1)))
    numbers = 5 + np.cumsum(np.concatenate([[0], rng.integers(1, max_gap + 1, count - 1)]))
    return [f"S{n:03d}" for n in numbers]


def sample_subject(seed: int, index: int, subject_id: str, params: SynthParams) -> tuple[Subject, np.random.Generator]:
    rng = _subject_rng(seed, index)
    demo = _sample_demographics(rng)
    size = IMAGE_SIZES[pick(rng, IMAGE_SIZE_WEIGHTS)]
    rgb = bool(rng.random() < params.rgb_fraction)
    face = _sample_face(rng, demo, params)
    palette = _sample_palette(rng, demo, rgb, params.appearance_spread)
    face = _sample_extras(rng, demo, face, params)
    texture = make_texture(rng, params.skin_texture)
    return Subject(subject_id, demo, size, face, palette, texture), rng


def _sample_extras(rng: np.random.Generator, demo: _Demographics, face: FaceShape, params: SynthParams) -> FaceShape:
    """Skin age, a fringe, facial hair and glasses: what makes people look different beyond shape."""
    years = (demo.age - 28) / 22 + params.appearance_spread * rng.uniform(-0.25, 0.25)
    changes: dict[str, object] = {"age_lines": float(np.clip(years, 0.0, 1.0)) * params.static_wrinkles}
    if rng.random() < params.fringe_prob * (1.0 if demo.sex == "F" else 0.4):
        changes["hairline"] = float(rng.uniform(0.08, 0.25))  # hair down to just above the brows
    if demo.sex == "M" and rng.random() < params.facial_hair_prob:
        changes["facial_hair"] = ("stubble", "moustache", "beard")[pick(rng, (0.5, 0.25, 0.25))]
    if rng.random() < params.glasses_prob:
        half_w = face.eye_w / 2 + float(rng.uniform(0.06, 0.1))
        changes["glasses"] = Glasses(
            half_w=min(half_w, face.eye_dx - 0.05),
            half_h=float(rng.uniform(0.12, 0.17)),
            squareness=float(rng.uniform(2.0, 4.0)),
            thickness=float(rng.uniform(0.015, 0.035)),
        )
    return replace(face, **changes)  # type: ignore[arg-type]
