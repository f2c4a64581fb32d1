"""The generator's contract: its knobs, what a run reports, and the constants of a synthetic set.

Every strength the generator applies (expressivity, pose, lighting, noise, label noise) is a
field of `SynthParams`, so a different kind of set is a different `SynthParams` value and no
other module needs to change. The constants name what callers and the importer rely on: the
marker files, the image sizes, the AUs that can be drawn and the version that keys caches.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from ckrun.errors import ConfigError

DEFAULT_SUBJECTS = 40
# Written last: a folder without it is an unfinished (or foreign) set.
MARKER_FILE = ".ckrun-synth.json"
# Written first: lets a rerun recognise (and replace) a set that was interrupted.
PARTIAL_MARKER_FILE = ".ckrun-synth.partial"
# Bump when the drawing or sampling changes, so caches keyed on it are regenerated.
SYNTH_VERSION = 3

# (width, height) as PIL reports them, with CK+-like frequencies.
IMAGE_SIZES: tuple[tuple[int, int], ...] = ((640, 490), (640, 480), (720, 480))
IMAGE_SIZE_WEIGHTS = (0.6, 0.25, 0.15)

# The AUs the generator can draw (each with its own geometric or shading change).
SYNTH_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 12, 14, 15, 17, 20, 23, 24, 25, 26, 27)


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
class SubjectCounts:
    sequences: int
    frames: int
    with_emotion: int
