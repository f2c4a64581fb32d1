"""Where each face sits in the model's input: one affine matrix per image, from resolved settings.

`FaceGeometry` is the decided preprocessing of a dataset (see `crop_policy`): which crop
(`landmarks`, `detector` or `none`), the box a detector miss gets instead of the whole image,
and which alignment. Training (through the face cache) and prediction both turn a file into
pixels with `placement` and the same geometry, so a new image is cut exactly as training
images were.

Per image: a face box (landmarks, else the detector, else the dataset's typical box, else the
whole image); then, when aligning, eye centres (landmarks, else the eye cascade inside the
box, else the dataset's typical eyes in that box) mapped onto fixed targets; an image whose
eyes cannot be placed keeps its box.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ckrun.data import align, ckformat, faces
from ckrun.errors import DataError

RESOLVED_CROPS = ("landmarks", "detector", "none")
RESOLVED_ALIGNS = ("landmarks", "eyes", "none")


@dataclass(frozen=True)
class FaceGeometry:
    """Resolved crop and alignment of one dataset; travels inside the model's Preprocessing.

    `crop_fallback` is (centre x / width, centre y / height, side / shorter image side) of the
    box used when the detector finds nothing; `eye_fallback` is (lx, ly, rx, ry) as fractions
    of the face box, for images whose eyes the cascade misses. Empty: no fallback (whole image,
    no alignment). `crop == "auto"` is the per-image rule of models trained before crops were
    decided per dataset (landmarks, else detector, else the whole image); it is kept so they
    predict as they were trained.
    """

    crop: str
    margin: float
    crop_fallback: tuple[float, ...] = ()
    align: str = "none"
    eye_targets: tuple[float, ...] = ()
    eye_fallback: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.crop not in (*RESOLVED_CROPS, "auto"):
            raise DataError(f"unknown crop mode {self.crop!r} (expected one of: {', '.join(RESOLVED_CROPS)})")
        if self.align not in RESOLVED_ALIGNS:
            raise DataError(f"unknown alignment {self.align!r} (expected one of: {', '.join(RESOLVED_ALIGNS)})")

    @property
    def targets(self) -> tuple[float, ...]:
        return self.eye_targets or align.eye_targets(self.margin)

    def key(self) -> str:
        """What the pixels depend on, for the face cache."""
        parts = [self.crop, f"{self.margin:g}", _numbers(self.crop_fallback), self.align]
        if self.align != "none":
            parts += [_numbers(self.targets), _numbers(self.eye_fallback)]
        return "-".join(parts)


def _numbers(values: Sequence[float]) -> str:
    return "_".join(f"{v:.4f}" for v in values) or "x"


def _read_landmarks(landmarks: str) -> np.ndarray:
    try:
        return ckformat.read_landmarks(Path(landmarks))
    except (OSError, ValueError) as exc:
        raise DataError(f"{landmarks}: unusable landmark file ({exc})") from None


def read_grey(path: str) -> np.ndarray:
    return faces.read_grey(path, orient=False)


def fallback_box(width: int, height: int, fallback: Sequence[float]) -> tuple[int, int, int]:
    """The dataset's typical face box, placed in an image of this size."""
    cx, cy, rel_side = fallback
    size = max(1, round(rel_side * min(width, height)))
    return round(cy * height - size / 2), round(cx * width - size / 2), size


def face_box(path: str, points: np.ndarray | None, geometry: FaceGeometry) -> tuple[int, int, int]:
    """The square face box of one image under the geometry's crop."""
    if geometry.crop == "auto":
        return faces.landmark_box(points, geometry.margin) if points is not None else _detected(path, geometry)
    if geometry.crop == "none":
        return faces.full_box(*faces.image_size(path))
    if geometry.crop == "landmarks" and points is not None:
        return faces.landmark_box(points, geometry.margin)
    return _detected(path, geometry)  # detector, or a new image without landmarks


def _detected(path: str, geometry: FaceGeometry) -> tuple[int, int, int]:
    box = faces.detect_face(path, geometry.margin)
    if box is not None:
        return box
    width, height = faces.image_size(path)
    if geometry.crop_fallback:
        return fallback_box(width, height, geometry.crop_fallback)
    return faces.full_box(width, height)


def placement(path: str, landmarks: str | None, geometry: FaceGeometry, size: int) -> np.ndarray:
    """The 2 x 3 matrix taking this image's pixels to the size x size model input."""
    points = _read_landmarks(landmarks) if landmarks else None
    box = face_box(path, points, geometry)
    if geometry.align == "none":
        return align.box_matrix(box, size)
    eyes: np.ndarray | None = None
    if points is not None:
        eyes = align.landmark_eyes(points)
    elif geometry.align == "eyes":
        eyes = align.detect_eyes(read_grey(path), box)
        if eyes is None and geometry.eye_fallback:
            eyes = align.box_eyes(box, geometry.eye_fallback)
    matrix = align.eye_matrix(eyes, geometry.targets, size) if eyes is not None else None
    return matrix if matrix is not None else align.box_matrix(box, size)


def landmark_list(values: Sequence[object]) -> list[str | None]:
    """Landmark paths with every spelling of 'none' (None, NA, NaN, '') as None."""
    return [None if _blank(v) else str(v) for v in values]


def _blank(value: object) -> bool:
    return value is None or value is pd.NA or value == "" or (isinstance(value, float) and np.isnan(value))


def placements(
    paths: Sequence[str], landmarks: Sequence[object], geometry: FaceGeometry, size: int, *, progress: bool = False
) -> np.ndarray:
    """(N, 2, 3) placement matrices, computed in threads (OpenCV's detector releases the GIL)."""
    found = landmark_list(landmarks)
    if len(found) != len(paths):
        raise ValueError(f"{len(paths)} paths but {len(found)} landmark entries")
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = pool.map(
            lambda item: placement(item[0], item[1], geometry, size), zip(map(str, paths), found, strict=True)
        )
        if progress:
            from tqdm import tqdm

            jobs = tqdm(jobs, total=len(paths), desc="face placement", unit="img", leave=False)
        out = list(jobs)
    return np.asarray(out, dtype=np.float64).reshape(-1, 2, 3)
