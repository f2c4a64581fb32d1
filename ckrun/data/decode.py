"""Image files to model-sized uint8 faces: decode, colour-convert, warp by each image's placement.

One function for training (the face cache) and prediction, so both see identical pixels.
Pillow decodes (the same reader that checks images at import, so a file that passed the
import check decodes here); OpenCV warps. Shrinking first with area averaging and warping
the rest bilinearly keeps small outputs of large frames free of aliasing, as an antialiased
resize would; pixels outside the image are black, as the old pad-to-square was.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from ckrun.data import align
from ckrun.errors import DataError


def read_image(path: str, channels: int) -> np.ndarray:
    """(H, W) grey or (H, W, 3) RGB uint8; 16-bit images keep their top 8 bits."""
    try:
        with Image.open(path) as file:
            img: Image.Image = file
            if img.mode.startswith("I;16"):
                img = Image.fromarray((np.asarray(img, dtype=np.uint16) >> 8).astype(np.uint8))
            return np.asarray(img.convert("L" if channels == 1 else "RGB"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from None


def warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The size x size output of `matrix` (image pixel centres -> output pixel centres).

    Where the output reaches past the image it is black, as if the image were padded with
    black first; at the output's own edge the nearest pixel is repeated, as a crop-then-resize
    does, so an enlarged crop gets no dark fringe.
    """
    import cv2

    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 1:
        # Area-average down to about the output scale, then warp what is left bilinearly.
        h, w = image.shape[:2]
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        sx, sy = new_w / w, new_h / h
        # x_small + 0.5 = s * (x + 0.5), so x = (x_small + 0.5) / s - 0.5.
        undo = np.array([[1 / sx, 0, 0.5 / sx - 0.5], [0, 1 / sy, 0.5 / sy - 0.5], [0, 0, 1]])
        matrix = matrix @ undo
    image, matrix = _pad_to_footprint(image, matrix, size)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _pad_to_footprint(image: np.ndarray, matrix: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Black padding wherever the output's footprint lies beyond the image's outer pixel edge."""
    import cv2

    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]])
    (x0, y0), (x1, y1) = align.apply(inverse, corners).min(axis=0), align.apply(inverse, corners).max(axis=0)
    h, w = image.shape[:2]
    eps = 1e-6
    left, top = (max(0, int(np.ceil(-0.5 - v - eps))) for v in (x0, y0))
    right, bottom = max(0, int(np.ceil(x1 - (w - 0.5) - eps))), max(0, int(np.ceil(y1 - (h - 0.5) - eps)))
    if not (left or top or right or bottom):
        return image, matrix
    padded = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=0)
    shifted = matrix.copy()
    shifted[:, 2] -= matrix[:, :2] @ np.array([left, top], float)
    return padded, shifted


def decode_face(path: str, matrix: np.ndarray, size: int, channels: int) -> np.ndarray:
    face = warp(read_image(path, channels), matrix, size)
    return face[..., None] if face.ndim == 2 else face


def as_matrices(placements: np.ndarray, size: int) -> np.ndarray:
    """(N, 2, 3) matrices from matrices or from (N, 3) square boxes (top, left, side)."""
    placements = np.asarray(placements, dtype=np.float64)
    if placements.ndim == 2 and placements.shape[1] == 3:
        return np.stack([align.box_matrix(box, size) for box in placements]).reshape(-1, 2, 3)
    return placements.reshape(-1, 2, 3)


def decode_faces(paths: Sequence[str], placements: np.ndarray, image_size: int, channels: int) -> np.ndarray:
    """(N, S, S, C) uint8 faces; `placements` are per-image matrices or square boxes."""
    if len(paths) == 0:
        return np.zeros((0, image_size, image_size, channels), np.uint8)
    matrices = as_matrices(placements, image_size)
    if len(matrices) != len(paths):
        raise ValueError(f"{len(paths)} paths but {len(matrices)} placements")
    with ThreadPoolExecutor(max_workers=4) as pool:
        faces = list(
            pool.map(lambda i: decode_face(str(paths[i]), matrices[i], image_size, channels), range(len(paths)))
        )
    return np.stack(faces).astype(np.uint8)
