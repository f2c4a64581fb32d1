"""Test-time augmentation: the views of a face whose predictions a model averages.

`flip` adds the mirror image (faces are nearly symmetric and training flips them);
`flip_shift` adds, for the image and its mirror, shifts of `SHIFT_FRACTION` of the side up,
down, left and right: 10 views, all inside the default training augmentation (shifts up to
6%, flips), so the model has seen such faces. Shifted-in borders are filled by mirroring the
edge, as the training augmentation fills them. Views are made from the uint8 faces, before
normalisation, and are the same for training's own evaluation, `ckrun predict`, `ckrun
evaluate` and the served model, because all of them go through `ckrun.predict.Predictor`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

MODES = ("none", "flip", "flip_shift")
SHIFT_FRACTION = 0.03


def shift_pixels(size: int) -> int:
    return max(1, round(SHIFT_FRACTION * size))


def shift(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate (N, H, W, C) images by (dy, dx) pixels, filling the border by mirroring the edge."""
    h, w = images.shape[1:3]
    pad = ((0, 0), (max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)), (0, 0))
    padded = np.pad(images, pad, mode="symmetric")
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[:, top : top + h, left : left + w]


def views(images: np.ndarray, mode: str) -> Iterator[np.ndarray]:
    """The TTA views of a (N, H, W, C) batch, the unchanged images first."""
    if mode not in MODES:
        raise ValueError(f"unknown test-time augmentation {mode!r} (expected one of: {', '.join(MODES)})")
    yield images
    if mode == "none":
        return
    mirrored = images[:, :, ::-1]
    yield mirrored
    if mode == "flip_shift":
        d = shift_pixels(images.shape[1])
        for base in (images, mirrored):
            for dy, dx in ((-d, 0), (d, 0), (0, -d), (0, d)):
                yield shift(base, dy, dx)


def n_views(mode: str) -> int:
    return {"none": 1, "flip": 2, "flip_shift": 10}[mode]
