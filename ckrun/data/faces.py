"""Face crop boxes: from CK+ landmarks, OpenCV's face detector, or the whole image.

A box is a square (top, left, size) in image pixels that may reach past the borders; the
pipeline pads with black there, which is the seed's pad-to-square. Boxes are computed in
Python once per image (reading a landmark file or running the detector) and handed to
tf.data as numbers, so the TensorFlow side stays a pure decode-crop-resize.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from ckrun.data import ckformat
from ckrun.errors import DataError

CROP_MODES = ("auto", "landmarks", "detector", "none")
_DETECT_MAX_SIDE = 320


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file header; DataError names an unreadable file."""
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from None


def square_box(x0: float, y0: float, x1: float, y1: float, margin: float) -> tuple[int, int, int]:
    """The square (top, left, size) centred on a rectangle, grown by `margin` on each side."""
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    size = max(1, round(side))
    return round(cy - size / 2), round(cx - size / 2), size


def full_box(width: int, height: int) -> tuple[int, int, int]:
    """The whole image padded to a square (no crop)."""
    return square_box(0, 0, width, height, 0.0)


def landmark_box(points: np.ndarray, margin: float) -> tuple[int, int, int]:
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return square_box(x0, y0, x1, y1, margin)


_local = threading.local()


def _cascade():
    """This thread's face cascade: one shared classifier gives different boxes under threads."""
    cascade = getattr(_local, "face", None)
    if cascade is None:
        cascade = _local.face = load_cascade("haarcascade_frontalface_default.xml")
    return cascade


def load_cascade(name: str) -> Any:
    """One of OpenCV's bundled Haar cascades (nothing is downloaded)."""
    import cv2

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)  # type: ignore[attr-defined]
    if cascade.empty():
        raise DataError(f"OpenCV's cascade {name} could not be loaded (opencv-python-headless < 5 ships it)")
    return cascade


def read_grey(path: str | Path, *, orient: bool = True) -> np.ndarray:
    """Grey uint8 pixels, by OpenCV or else by Pillow, the reader the import checks images with.

    OpenCV refuses some files Pillow reads (32-bit float TIFF): a file the import accepted
    must not fail at training or prediction time. `orient`: apply the EXIF orientation.
    """
    import cv2

    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE | (0 if orient else cv2.IMREAD_IGNORE_ORIENTATION))
    if grey is not None:
        return grey
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from None


def detect_face(path: str | Path, margin: float) -> tuple[int, int, int] | None:
    """Box around the largest detected frontal face, or None when there is none."""
    import cv2

    grey = read_grey(path)
    scale = min(1.0, _DETECT_MAX_SIDE / max(grey.shape))
    small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else grey
    min_side = max(16, int(min(small.shape) * 0.2))
    faces = _cascade().detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3]) / scale
    # Haar boxes cut the chin and brows; grow them a little more than landmark boxes.
    return square_box(x, y, x + w, y + h, margin)


def crop_box(path: str | Path, landmarks: str | Path | None, mode: str, margin: float) -> tuple[int, int, int]:
    """The crop box of one image under `mode` (see CROP_MODES)."""
    if mode not in CROP_MODES:
        raise DataError(f"unknown crop mode {mode!r} (expected one of: {', '.join(CROP_MODES)})")
    has_landmarks = landmarks is not None and not pd.isna(landmarks) and str(landmarks) != ""
    if mode in ("landmarks", "auto") and has_landmarks and landmarks is not None:
        try:
            return landmark_box(ckformat.read_landmarks(Path(landmarks)), margin)
        except (OSError, ValueError) as exc:
            raise DataError(f"{landmarks}: unusable landmark file ({exc})") from None
    if mode == "landmarks":
        raise DataError(f"{path}: crop=landmarks but the image has no landmark file")
    if mode in ("detector", "auto"):
        box = detect_face(path, margin)
        if box is not None:
            return box
    return full_box(*image_size(path))


def find_ckplus_landmarks(image: str | Path) -> Path | None:
    """The Landmarks file of a frame inside a CK+ tree, if there is one.

    Lets `ckrun predict` crop a CK+ frame exactly as training did, given only its path.
    """
    image = Path(image).resolve()
    parts = image.parts
    if ckformat.IMAGES_DIR not in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index(ckformat.IMAGES_DIR)
    candidate = Path(*parts[:i], ckformat.LANDMARKS_DIR, *parts[i + 1 : -1], f"{image.stem}_landmarks.txt")
    return candidate if candidate.is_file() else None


def crop_boxes(
    paths: Sequence[str], landmarks: Sequence[str | None], mode: str, margin: float, *, progress: bool = False
) -> np.ndarray:
    """(N, 3) int array of (top, left, size) for every image."""
    items = zip(paths, landmarks, strict=True)
    if progress:
        from tqdm import tqdm

        items = tqdm(items, total=len(paths), desc="face boxes", unit="img", leave=False)
    boxes = [crop_box(p, lm, mode, margin) for p, lm in items]
    return np.asarray(boxes, dtype=np.int32).reshape(-1, 3)
