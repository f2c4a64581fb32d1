"""Face alignment: where the eyes are, and the affine map that puts them at fixed positions.

Every face becomes a 2 x 3 affine matrix from image pixels to output pixels (both with
integer coordinates at pixel centres, as OpenCV's `warpAffine` reads them). A square crop box
is the special case with no rotation; alignment rotates and scales so the two eye centres land
on the same output pixels in every image, which removes head roll and face-size differences
that a crop box keeps — and, unlike a box around all 68 points, does not shrink the face when
the jaw drops (surprise), so the scale no longer depends on the expression.

The eye targets follow from the crop margin: on the iBUG 68-point mean face the eye centres
are `EYE_GAP` of the landmark box's side apart and `EYE_RISE` of it above the box centre, so
an aligned upright face has the same scale and centre as its landmark crop.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ckrun.data.faces import load_cascade

EYE_GAP = 0.42  # distance between the eye centres / side of the 68-point landmark box
EYE_RISE = 0.28  # eye line above the landmark box centre / side of the box
LEFT_EYE = slice(36, 42)  # iBUG-68 points around the image-left eye (the subject's right)
RIGHT_EYE = slice(42, 48)
_EYE_SEARCH_SIDE = 200  # face boxes are rescaled to this many pixels before the eye cascade


def eye_targets(margin: float) -> tuple[float, float, float, float]:
    """(left x, left y, right x, right y) of the eye centres as fractions of the output side."""
    gap, rise = EYE_GAP / (1 + 2 * margin), EYE_RISE / (1 + 2 * margin)
    return 0.5 - gap / 2, 0.5 - rise, 0.5 + gap / 2, 0.5 - rise


def landmark_eyes(points: np.ndarray) -> np.ndarray:
    """(2, 2) centres of the image-left and image-right eye: the mean of their six points each."""
    return np.stack([points[LEFT_EYE].mean(axis=0), points[RIGHT_EYE].mean(axis=0)])


def box_matrix(box: tuple[int, int, int] | np.ndarray, size: int) -> np.ndarray:
    """The affine map that cuts the square (top, left, side) box and scales it to size x size."""
    top, left, side = (float(v) for v in box)
    k = size / side
    # Pixel centres: x_out + 0.5 = k * (x_in + 0.5 - left).
    return np.array([[k, 0.0, k * (0.5 - left) - 0.5], [0.0, k, k * (0.5 - top) - 0.5]])


def eye_matrix(eyes: np.ndarray, targets: tuple[float, ...], size: int) -> np.ndarray | None:
    """The similarity (rotation, uniform scale, shift) taking `eyes` to `targets` in the output.

    None when the eyes cannot be right: the image-left eye not left of the other, or the two
    closer than two pixels.
    """
    src = np.asarray(eyes, float)
    dst = np.asarray(targets, float).reshape(2, 2) * size - 0.5
    v_src, v_dst = src[1] - src[0], dst[1] - dst[0]
    if v_src[0] <= 0 or np.hypot(*v_src) < 2:
        return None
    scale = np.hypot(*v_dst) / np.hypot(*v_src)
    angle = np.arctan2(v_dst[1], v_dst[0]) - np.arctan2(v_src[1], v_src[0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.column_stack([rot, dst[0] - rot @ src[0]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N, 2) mapped by a 2 x 3 affine matrix."""
    pts = np.asarray(points, float)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def box_eyes(box: tuple[int, int, int] | np.ndarray, relative: tuple[float, ...]) -> np.ndarray:
    """Eye centres at fixed fractions (lx, ly, rx, ry) of a square face box: the typical eyes."""
    top, left, side = (float(v) for v in box)
    rel = np.asarray(relative, float).reshape(2, 2)
    return np.column_stack([left + rel[:, 0] * side, top + rel[:, 1] * side])


def relative_eyes(eyes: np.ndarray, box: tuple[int, int, int] | np.ndarray) -> tuple[float, float, float, float]:
    """The inverse of `box_eyes`: eye centres as fractions of their face box."""
    top, left, side = (float(v) for v in box)
    rel = (np.asarray(eyes, float) - [left, top]) / side
    return float(rel[0, 0]), float(rel[0, 1]), float(rel[1, 0]), float(rel[1, 1])


_local = threading.local()


def _eye_cascade() -> Any:
    """This thread's eye cascade (a classifier shared between threads is not reproducible)."""
    cascade = getattr(_local, "eye", None)
    if cascade is None:
        cascade = _local.eye = load_cascade("haarcascade_eye.xml")
    return cascade


def detect_eyes(grey: np.ndarray, box: tuple[int, int, int] | np.ndarray) -> np.ndarray | None:
    """(2, 2) eye centres found by OpenCV's eye cascade in the upper part of a face box, or None.

    The box is rescaled to a fixed side first, so eyes of 48 px crops and of 640 px frames
    are searched at the same size. Of the detections in the upper 60% of the box, the
    largest one on each side of its midline is taken; without one on each side there is no
    answer (a single eye gives no angle).
    """
    import cv2

    top, left, side = (int(v) for v in box)
    height = round(side * 0.6)
    region = np.zeros((height, side), np.uint8)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + height, grey.shape[0]), min(left + side, grey.shape[1])
    if y1 <= y0 or x1 <= x0:
        return None
    region[y0 - top : y1 - top, x0 - left : x1 - left] = grey[y0:y1, x0:x1]
    k = _EYE_SEARCH_SIDE / side
    small = cv2.resize(region, None, fx=k, fy=k, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    min_side = int(_EYE_SEARCH_SIDE * 0.08)
    found = _eye_cascade().detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
    centres = [((x + w / 2) / k + left - 0.5, (y + h / 2) / k + top - 0.5, w * h) for x, y, w, h in found]
    mid = left + side / 2
    left_side = [c for c in centres if c[0] < mid]
    right_side = [c for c in centres if c[0] >= mid]
    if not left_side or not right_side:
        return None
    pick = [max(group, key=lambda c: c[2]) for group in (left_side, right_side)]
    return np.array([[c[0], c[1]] for c in pick])
