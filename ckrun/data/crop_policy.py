"""`crop: auto` and `align: auto`, decided once per dataset rather than once per image.

Deciding per image mixes scales: on 48 x 48 faces that are already cropped the face detector
finds a box on some images and falls back to the whole image on the others, two zooms in one
dataset (on real CK+ crops that cost 0.036 emotion accuracy against a plain resize). So the
dataset is surveyed once — landmark files, image sizes, and the detector on an evenly spread
sample — and one rule is chosen for every image:

- every image has a landmark file: crop (and align) by landmarks;
- square-ish images that are small, or where the detector mostly fails, or where its box
  fills the frame: already cropped, so no crop at all (`none`), the same for every image;
- otherwise the detector, and an image it misses gets the dataset's typical box (median
  centre and size of the sampled detections, relative to the image) instead of the whole
  image, so the crop scale stays the same.

The survey reads images only, never labels or the split, so looking at every split is no
leakage: it is what `ckrun predict` would see of any image.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ckrun.data import align, faces
from ckrun.data.geometry import FaceGeometry, face_box, landmark_list, read_grey
from ckrun.errors import DataError

SAMPLE = 64  # images the detector looks at to decide (~3 s on 640 x 490 frames, 2 cores)
SQUARE = (0.8, 1.25)  # median width / height of images that may be face crops
SMALL_SIDE = 64  # px: a square image this small is a crop (the detector needs ~24 px faces)
MIN_HIT_RATE = 0.5  # below this the detector is not a reliable crop for the dataset
FILLS_FRAME = 0.6  # detector box (no margin) / shorter side above which the face fills the frame


@dataclass(frozen=True)
class Survey:
    """What the decision saw: sizes of all images, detector results on a sample."""

    n: int
    sizes: dict[tuple[int, int], int]
    sampled: int
    boxes: list[tuple[float, float, float]] = field(default_factory=list)  # rel cx, cy, side (no margin)

    @property
    def median_aspect(self) -> float:
        ratios = np.repeat([w / h for w, h in self.sizes], list(self.sizes.values()))
        return float(np.median(ratios)) if len(ratios) else 1.0

    @property
    def median_short_side(self) -> float:
        sides = np.repeat([min(s) for s in self.sizes], list(self.sizes.values()))
        return float(np.median(sides)) if len(sides) else 0.0

    @property
    def hit_rate(self) -> float:
        return len(self.boxes) / self.sampled if self.sampled else 0.0

    @property
    def typical_box(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in np.median(np.asarray(self.boxes), axis=0))  # type: ignore[return-value]

    def describe_sizes(self) -> str:
        if len(self.sizes) == 1:
            (w, h), n = next(iter(self.sizes.items()))
            return f"{n} images of {w}x{h}"
        aspect, side = self.median_aspect, self.median_short_side
        return f"{self.n} images, median aspect {aspect:.2f}, median short side {side:.0f} px"

    def describe_hits(self) -> str:
        text = f"face detector hit {len(self.boxes)}/{self.sampled} sampled"
        if self.boxes:
            text += f", box {self.typical_box[2]:.2f} of the short side"
        return text


@dataclass(frozen=True)
class CropDecision:
    geometry: FaceGeometry
    crop_reason: str
    align_reason: str

    def line(self) -> str:
        """The one console line that says what was decided and why."""
        return (
            f"faces: crop={self.geometry.crop} ({self.crop_reason}); align={self.geometry.align} ({self.align_reason})"
        )

    def params(self) -> dict[str, str]:
        g = self.geometry
        return {
            "crop_resolved": g.crop,
            "align_resolved": g.align,
            "crop_fallback": ",".join(f"{v:.3f}" for v in g.crop_fallback) or "none",
        }


def _sample(n: int, size: int) -> list[int]:
    """Evenly spread indices (deterministic: the same dataset always gives the same decision)."""
    return sorted({int(i) for i in np.linspace(0, n - 1, min(n, size)).round()}) if n else []


def survey(paths: Sequence[str], sample: int = SAMPLE) -> Survey:
    """Image sizes of every path and the detector's boxes on an even sample of them."""
    sizes: dict[tuple[int, int], int] = {}
    for path in paths:
        size = faces.image_size(path)
        sizes[size] = sizes.get(size, 0) + 1
    picked = [str(paths[i]) for i in _sample(len(paths), sample)]

    def detect(path: str) -> tuple[float, float, float] | None:
        box = faces.detect_face(path, 0.0)
        if box is None:
            return None
        top, left, side = box
        width, height = faces.image_size(path)
        return (left + side / 2) / width, (top + side / 2) / height, side / min(width, height)

    with ThreadPoolExecutor(max_workers=4) as pool:
        found = [b for b in pool.map(detect, picked) if b is not None]
    return Survey(len(paths), sizes, len(picked), found)


def already_cropped(s: Survey) -> bool:
    """Square-ish images that are small, or where the detector is unreliable or sees a frame-filling face.

    Any of these says the faces were cut out already: cropping again could only add detector
    jitter, and its misses a second scale.
    """
    if not SQUARE[0] <= s.median_aspect <= SQUARE[1]:
        return False
    fills = bool(s.boxes) and s.typical_box[2] >= FILLS_FRAME
    return s.median_short_side <= SMALL_SIDE or s.hit_rate < MIN_HIT_RATE or fills


def decide_crop(
    paths: Sequence[str], landmarks: Sequence[str | None], crop: str, margin: float, sample: int = SAMPLE
) -> tuple[str, tuple[float, ...], str]:
    """(resolved crop, detector-miss box, reason) for the dataset."""
    missing = [p for p, lm in zip(paths, landmarks, strict=True) if lm is None]
    n = len(paths)
    if crop == "none":
        return "none", (), "as configured"
    if crop == "landmarks":
        if missing:
            raise DataError(f"{missing[0]}: crop=landmarks but {len(missing)} of {n} images have no landmark file")
        return "landmarks", (), f"landmark files for all {n} images"
    if crop == "auto" and not missing:
        return "landmarks", (), f"landmark files for all {n} images"
    if crop == "detector":  # as asked, also where landmark files exist
        s, mode, prefix = survey(paths, sample), "detector", ""
    else:
        s, has = survey(missing, sample), n - len(missing)
        if not has and already_cropped(s):
            return "none", (), f"already cropped: {s.describe_sizes()}, {s.describe_hits()}"
        mode = "landmarks" if has else "detector"
        prefix = f"landmarks for {has} of {n} images; the rest: " if has else ""
    if not s.boxes:
        return mode, (), f"{prefix}{s.describe_sizes()}, {s.describe_hits()}: misses keep the whole image"
    cx, cy, side = s.typical_box
    fallback = (cx, cy, side * (1 + 2 * margin))
    return mode, fallback, f"{prefix}{s.describe_sizes()}, {s.describe_hits()}; misses get that median box"


def decide_align(
    paths: Sequence[str],
    landmarks: Sequence[str | None],
    align_mode: str,
    geometry: FaceGeometry,
    sample: int = SAMPLE,
) -> tuple[str, tuple[float, ...], str]:
    """(resolved alignment, typical eyes in the face box, reason) for the dataset.

    `auto` aligns only by landmarks: the eye cascade fails most on closed or narrowed eyes and
    on glasses, and closed eyes belong to some expressions, so cascade-based alignment would
    be worse exactly on some classes. It has to be asked for (`eyes`).
    """
    n = len(paths)
    has = sum(lm is not None for lm in landmarks)
    if align_mode == "none":
        return "none", (), "as configured"
    if align_mode == "auto":
        if has == n:
            return "landmarks", (), f"eye centres from landmark files of all {n} images"
        return "none", (), "not every image has a landmark file; align=eyes uses OpenCV's eye cascade"
    if align_mode == "landmarks":
        if has == 0:
            raise DataError(f"align=landmarks but none of the {n} images has a landmark file (try align=eyes)")
        return "landmarks", (), f"eye centres from landmarks for {has} of {n} images; the rest unaligned"
    without = [p for p, lm in zip(paths, landmarks, strict=True) if lm is None]
    picked = [without[i] for i in _sample(len(without), sample)]

    def eyes_in(path: str) -> tuple[float, float, float, float] | None:
        box = face_box(path, None, geometry)
        eyes = align.detect_eyes(read_grey(path), box)
        return None if eyes is None else align.relative_eyes(eyes, box)

    with ThreadPoolExecutor(max_workers=4) as pool:
        found = [e for e in pool.map(eyes_in, picked) if e is not None]
    if not picked:
        return "eyes", (), f"eye centres from landmark files of all {n} images"
    head = f"eye cascade hit {len(found)}/{len(picked)} sampled images without landmarks"
    if not found:
        return "eyes", (), f"{head}: misses stay unaligned"
    typical = tuple(float(v) for v in np.median(np.asarray(found), axis=0))
    return "eyes", typical, f"{head}; misses get the median eye positions in their box"


def decide(
    paths: Sequence[str],
    landmarks: Sequence[object],
    crop: str,
    align_mode: str,
    margin: float,
    *,
    sample: int = SAMPLE,
) -> CropDecision:
    """The dataset's crop and alignment (see the module docstring)."""
    found = landmark_list(landmarks)
    names = [str(p) for p in paths]
    if len(found) != len(names):
        raise ValueError(f"{len(names)} paths but {len(found)} landmark entries")
    mode, fallback, crop_reason = decide_crop(names, found, crop, margin, sample)
    geometry = FaceGeometry(mode, margin, fallback)
    how, eye_fallback, align_reason = decide_align(names, found, align_mode, geometry, sample)
    targets = align.eye_targets(margin) if how != "none" else ()
    return CropDecision(
        FaceGeometry(mode, margin, fallback, how, tuple(targets), eye_fallback), crop_reason, align_reason
    )
