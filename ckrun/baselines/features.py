"""What a linear baseline sees of a face: raw grey pixels or HOG descriptors at 48 px.

48 px grey is the resolution of the pre-cropped CK+ exports researchers publish floors on
(the maintainers' tuned linear SVM: 0.933 test emotion accuracy), so the floor is measured
where the literature measures it. HOG adds what pixels lack: local edge orientation,
normalised per block, so a brow raise or a lip-corner pull reads the same under a lighting
change that shifts every raw pixel.
"""

from __future__ import annotations

import numpy as np

BASELINE_SIZE = 48  # pixels per side, grey
# Dalal & Triggs' defaults: 8 px cells, 2 x 2-cell blocks overlapping by one cell, 9 unsigned
# orientation bins; at 48 px that is 5 x 5 blocks x 36 = 900 values per face.
HOG_CELL = 8
HOG_BLOCK = 16
HOG_BINS = 9


def grey_images(images: np.ndarray) -> np.ndarray:
    """(N, S, S) uint8 from (N, S, S) or (N, S, S, 1) faces, as the baseline's arrays hold them."""
    images = np.asarray(images)
    if images.ndim == 4:
        if images.shape[-1] != 1:
            raise ValueError(f"baseline features need grey faces, got {images.shape[-1]} channels")
        images = images[..., 0]
    if images.ndim != 3:
        raise ValueError(f"expected a stack of square faces, got shape {images.shape}")
    return images.astype(np.uint8, copy=False)


def pixel_features(images: np.ndarray) -> np.ndarray:
    """Every pixel scaled to [0, 1], one row per face."""
    grey = grey_images(images)
    return grey.reshape(len(grey), -1).astype(np.float32) / 255.0


def hog_shape(size: int) -> int:
    """Length of one face's HOG vector at `size` px."""
    blocks = (size - HOG_BLOCK) // HOG_CELL + 1
    return blocks * blocks * (HOG_BLOCK // HOG_CELL) ** 2 * HOG_BINS


def hog_features(images: np.ndarray) -> np.ndarray:
    """OpenCV's HOG descriptor of each face (L2-Hys block normalisation), one row per face."""
    import cv2

    grey = grey_images(images)
    size = grey.shape[1] if len(grey) else BASELINE_SIZE
    if grey.shape[1:] != (size, size) or size < HOG_BLOCK or (size - HOG_BLOCK) % HOG_CELL:
        raise ValueError(f"HOG needs square faces of 16 + 8k px, got {grey.shape[1:]}")
    descriptor = cv2.HOGDescriptor(
        (size, size), (HOG_BLOCK, HOG_BLOCK), (HOG_CELL, HOG_CELL), (HOG_CELL, HOG_CELL), HOG_BINS
    )
    out = np.empty((len(grey), hog_shape(size)), np.float32)
    for i, face in enumerate(grey):
        out[i] = np.asarray(descriptor.compute(np.ascontiguousarray(face))).ravel()
    return out
