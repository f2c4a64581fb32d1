"""The generator's contract: its knobs, what a run reports, and the constants of a synthetic set.

Every strength the generator applies (expressivity, pose, lighting, noise, label noise) is a
field of `SynthParams`, so a different kind of set is a different `SynthParams` value and no
other module needs to change. The constants name what callers and the importer rely on: the
marker files, the image sizes, the AUs that can be drawn and the version that keys caches.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

from ckrun.errors import ConfigError

DEFAULT_SUBJECTS = 40
# Written last: a folder without it is an unfinished (or foreign) set.
MARKER_FILE = ".ckrun-synth.json"
# Written first: lets a rerun recognise (and replace) a set that was interrupted.
PARTIAL_MARKER_FILE = ".ckrun-synth.partial"
# Bump when the drawing or sampling changes, so caches keyed on it are regenerated.
SYNTH_VERSION = 4

# (width, height) as PIL reports them, with CK+-like frequencies.
IMAGE_SIZES: tuple[tuple[int, int], ...] = ((640, 490), (640, 480), (720, 480))
IMAGE_SIZE_WEIGHTS = (0.6, 0.25, 0.15)

# The AUs the generator can draw (each with its own geometric or shading change).
SYNTH_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 12, 14, 15, 17, 20, 23, 24, 25, 26, 27)


DIFFICULTIES: tuple[str, ...] = ("easy", "realistic")
DEFAULT_DIFFICULTY = "realistic"

_RANGE_FIELDS = ("sequences_per_subject", "frames_per_sequence", "expressivity", "blur_sigma")
_WEIGHT_FIELDS = ("intensity_weights", "intensity_strength")
_PROBABILITY_FIELDS = (
    "emotion_fraction",
    "rgb_fraction",
    "extra_au_prob",
    "missing_au_prob",
    "uncoded_intensity_prob",
    "emotion_label_noise",
    "au_label_noise",
    "glasses_prob",
    "facial_hair_prob",
    "fringe_prob",
)
_STRENGTH_FIELDS = (
    "wrinkle_contrast",
    "rotation_deg",
    "yaw_deg",
    "pitch_deg",
    "pose_drift_deg",
    "position_jitter",
    "scale_jitter",
    "frame_jitter_px",
    "illumination",
    "light_direction",
    "exposure",
    "noise_sigma",
    "background_texture",
    "shape_spread",
    "skin_texture",
    "static_wrinkles",
    "appearance_spread",
)
# What a set looks like rather than how hard it is: these never decide the difficulty label.
_LAYOUT_FIELDS = ("sequences_per_subject", "frames_per_sequence", "emotion_fraction", "rgb_fraction")


@dataclass(frozen=True)
class SynthParams:
    """Knobs of the generator; the defaults are the `realistic` preset (see `preset`).

    The defaults are chosen from what real CK+ looks like, never from how a model scores on
    the result (README, "The embedded synthetic CK+"): identity varies more than expression,
    AUs are often slight (FACS A/B), heads turn a little, light and focus change between
    sessions, and a few labels are wrong as FACS coders disagree. `PRESETS["easy"]` is the
    cartoon of synthetic CK+ v3: strong, ink-drawn expressions on similar faces, kept for fast
    tests that need a model to learn in a few epochs.
    """

    # The set's layout (same in every preset).
    sequences_per_subject: tuple[int, int] = (8, 10)  # inclusive range
    frames_per_sequence: tuple[int, int] = (8, 20)  # inclusive range
    emotion_fraction: float = 0.8  # sequences with an Emotion file (CK+: 327 of 593)
    rgb_fraction: float = 0.15  # subjects recorded in colour
    # Expression: how strongly AUs show.
    # FACS intensity A..E at the peak: posed CK+ peaks are mostly slight to marked (B-C), trace
    # (A) is common and maximum (E) rare.
    intensity_weights: tuple[float, ...] = (0.15, 0.3, 0.3, 0.17, 0.08)
    # Drawn magnitude of each intensity, as a fraction of an AU's full displacement: FACS
    # describes A as trace and E as maximum, so the magnitude grows with the level.
    intensity_strength: tuple[float, ...] = (0.3, 0.5, 0.7, 0.85, 1.0)
    expressivity: tuple[float, float] = (0.7, 1.15)  # per-subject AU magnitude range
    wrinkle_contrast: float = 0.5  # darkness of expression wrinkles and furrows (1 = ink lines)
    extra_au_prob: float = 0.45  # chance of one extra AU outside the emotion prototype
    missing_au_prob: float = 0.15  # chance of dropping one optional prototype AU
    uncoded_intensity_prob: float = 0.3  # FACS intensity written as 0 (present, not coded)
    # Label noise: what the files say differs from what is drawn, as coders disagree.
    emotion_label_noise: float = 0.03  # Emotion file names another emotion
    au_label_noise: float = 0.04  # each drawn AU miscoded (a look-alike AU, or left out)
    # Head pose: CK+ is posed in front of the camera, so pose is small but never exactly zero.
    rotation_deg: float = 8.0  # roll (in-plane), uniform in +-rotation_deg per sequence
    yaw_deg: float = 8.0  # head turn, uniform in +-yaw_deg per sequence
    pitch_deg: float = 6.0  # nod, uniform in +-pitch_deg per sequence
    pose_drift_deg: float = 0.3  # per-frame random walk of yaw and pitch (SD, degrees)
    position_jitter: float = 0.06  # face centre offset, fraction of the image size
    scale_jitter: float = 0.12  # relative face-size spread
    frame_jitter_px: float = 0.6  # per-frame head drift (random walk step, pixels)
    # Scene and camera, drawn per sequence (recording session).
    illumination: float = 0.3  # gain slope across the frame (0 = flat light)
    light_direction: float = 0.45  # share of directional (shaded) light on the face's form
    exposure: float = 0.2  # gain spread between sessions (+-)
    noise_sigma: float = 4.0  # Gaussian sensor noise, grey levels (digitised video is grainy)
    blur_sigma: tuple[float, float] = (0.8, 1.6)  # optical blur per session, pixels
    background_texture: float = 1.0  # 0 = flat background
    # Identity: how different two people look.
    shape_spread: float = 1.6  # face proportions' spread around the mean (1 = v3's ranges)
    skin_texture: float = 1.0  # blotches, pores and freckles (0 = flat skin)
    static_wrinkles: float = 0.6  # darkness of age lines at 50 (forehead, folds, crow's feet)
    appearance_spread: float = 1.0  # brow density, lip colour, greying hair, skin age (0 = v3's)
    glasses_prob: float = 0.1  # subjects wearing glasses
    facial_hair_prob: float = 0.3  # men with a moustache, beard or stubble
    fringe_prob: float = 0.25  # hair falling over the forehead (hides forehead wrinkles)

    def __post_init__(self) -> None:
        for name in (*_RANGE_FIELDS, *_WEIGHT_FIELDS):  # YAML and JSON give lists; keep it hashable
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name, minimum in (("sequences_per_subject", 1), ("frames_per_sequence", 2)):
            low, high = getattr(self, name)
            if not minimum <= low <= high:
                raise ConfigError(
                    f"{name} must be (low, high) with {minimum} <= low <= high. Received: {name}={[low, high]}"
                )
        for name in ("expressivity", "blur_sigma"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high:
                raise ConfigError(f"{name} must be (low, high) with 0 < low <= high. Received: {[low, high]}")
        for name in _WEIGHT_FIELDS:
            values = getattr(self, name)
            if len(values) != 5 or min(values) < 0 or sum(values) <= 0:
                raise ConfigError(f"{name} must be five values >= 0 (FACS A..E). Received: {list(values)}")
        for name in _PROBABILITY_FIELDS:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1]. Received: {name}={getattr(self, name)}")
        for name in _STRENGTH_FIELDS:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0. Received: {name}={getattr(self, name)}")
        if self.light_direction > 1 or self.exposure >= 1:
            raise ConfigError(
                f"light_direction must be <= 1 and exposure < 1. Received: {self.light_direction}, {self.exposure}"
            )

    @classmethod
    def preset(cls, difficulty: str, **changes: object) -> SynthParams:
        """The named preset, with `changes` (layout fields, for tests and quick sets) applied."""
        if difficulty not in PRESETS:
            raise ConfigError(f"difficulty must be one of {', '.join(DIFFICULTIES)}. Received: {difficulty!r}")
        return replace(PRESETS[difficulty], **changes)  # type: ignore[arg-type]

    @property
    def difficulty(self) -> str:
        """The preset whose strengths these are, or "custom" when any strength differs."""
        for name, preset in PRESETS.items():
            if all(getattr(self, f) == getattr(preset, f) for f in _difficulty_fields()):
                return name
        return "custom"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (tuples as lists), as recorded in the marker file."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


def _difficulty_fields() -> list[str]:
    return [f.name for f in fields(SynthParams) if f.name not in _LAYOUT_FIELDS]


PRESETS: dict[str, SynthParams] = {
    "realistic": SynthParams(),
    # Synthetic CK+ v3, which was tuned until the pixel baseline lost: AUs at near-full
    # strength whatever their intensity, ink-dark wrinkles, similar faces, no out-of-plane
    # pose, flat light, clean labels.
    "easy": SynthParams(
        intensity_weights=(0.08, 0.17, 0.3, 0.28, 0.17),
        intensity_strength=(0.79, 0.86, 0.93, 1.0, 1.07),
        expressivity=(0.85, 1.1),
        wrinkle_contrast=1.0,
        emotion_label_noise=0.0,
        au_label_noise=0.0,
        yaw_deg=0.0,
        pitch_deg=0.0,
        pose_drift_deg=0.0,
        light_direction=0.0,
        exposure=0.15,
        noise_sigma=2.0,
        blur_sigma=(0.8, 0.8),
        shape_spread=1.0,
        skin_texture=0.0,
        static_wrinkles=0.35,
        appearance_spread=0.0,
        glasses_prob=0.0,
        facial_hair_prob=0.0,
        fringe_prob=0.0,
    ),
}


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
class SubjectCounts:
    sequences: int
    frames: int
    with_emotion: int
