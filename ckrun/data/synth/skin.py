"""Skin texture: blotches, pores and freckles that belong to a subject and move with the face.

A real face is not a flat colour: uneven pigment and redness, pores and freckles differ from
person to person and are a large part of why two faces differ in pixels. The texture is a gain
map in face units, drawn once per subject; each frame warps it under the face with the affine
that best matches the frame's view and multiplies it in. Outside the head it is neutral.
"""

from __future__ import annotations

import cv2
import numpy as np

from ckrun.data.synth.pose import View

# The texture covers the head in face units, one texel every _STEP.
_X0, _Y0, _STEP = -1.3, -1.6, 0.025
_WIDTH, _HEIGHT = 104, 124
_NEUTRAL = 128


def make_texture(rng: np.random.Generator, strength: float) -> np.ndarray | None:
    """A subject's skin as a 128-based gain map (uint8), or None for flat skin."""
    if strength <= 0:
        return None
    blotch = rng.normal(0, 1, (7, 6)).astype(np.float32)
    field = cv2.resize(blotch, (_WIDTH, _HEIGHT), interpolation=cv2.INTER_CUBIC) * 0.035 * rng.uniform(0.5, 1.5)
    pores = cv2.GaussianBlur(rng.normal(0, 1, (_HEIGHT, _WIDTH)).astype(np.float32), (3, 3), 0.7)
    field += pores * 0.03 * rng.uniform(0.5, 1.5)
    if rng.random() < 0.3:  # freckles
        count = int(rng.integers(20, 90))
        xs = rng.integers(20, _WIDTH - 20, count)
        ys = rng.integers(40, _HEIGHT - 40, count)
        field[ys, xs] -= rng.uniform(0.05, 0.12, count).astype(np.float32)
    ys, xs = np.mgrid[0:_HEIGHT, 0:_WIDTH].astype(np.float32)
    r = np.hypot((_X0 + xs * _STEP) / 1.12, (_Y0 + ys * _STEP - 0.05) / 1.45)
    window = np.clip((1.08 - r) / 0.15, 0.0, 1.0)
    gain = _NEUTRAL * (1 + strength * field * window)
    return np.clip(gain + 0.5, 0, 255).astype(np.uint8)


def apply_texture(img: np.ndarray, texture: np.ndarray | None, view: View) -> None:
    """Multiply the texture into `img` under the face (in place, only over the head's box)."""
    if texture is None:
        return
    to_face = np.array([[_STEP, 0, _X0], [0, _STEP, _Y0], [0, 0, 1]])
    face_to_image = np.vstack([view.local_affine((0.0, -0.1)), [0, 0, 1]])
    warp = face_to_image @ to_face
    corners = np.array([[0, 0, 1], [_WIDTH, 0, 1], [0, _HEIGHT, 1], [_WIDTH, _HEIGHT, 1]]) @ warp[:2].T
    h, w = img.shape[:2]
    x0, y0 = (max(0, int(v)) for v in corners.min(axis=0))
    x1, y1 = (min(n, int(np.ceil(v)) + 1) for v, n in zip(corners.max(axis=0), (w, h), strict=True))
    if x1 <= x0 or y1 <= y0:
        return
    warp[:2, 2] -= (x0, y0)
    gain = cv2.warpAffine(texture, warp[:2], (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderValue=_NEUTRAL)
    roi = img[y0:y1, x0:x1]
    if roi.ndim == 3:
        gain = cv2.merge([gain] * roi.shape[2])
    roi[...] = cv2.multiply(roi, gain, scale=1 / _NEUTRAL)
