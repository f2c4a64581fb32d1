"""The scene around the face: the wall behind it, the light on it, focus and the sensor's noise.

This is nuisance variation that real recordings have too. Wall, light and focus are fixed per
sequence (one recording session; the camera does not move), so across a sequence's frames only
the face changes. Smooth fields are drawn at quarter resolution and upsampled, and the noise is cut from
one bank per subject: both keep generation fast.
"""

from __future__ import annotations

import cv2
import numpy as np

from ckrun.data.synth.params import SynthParams


def _plane(h: int, w: int, channels: int) -> tuple[int, ...]:
    return (h, w) if channels == 1 else (h, w, channels)


_FIELD_STEP = 4  # smooth fields (walls, light) are drawn at quarter resolution, then upsampled


def _grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-resolution x and y coordinates of a quarter-resolution grid (float32)."""
    ys = np.linspace(0, h - 1, -(-h // _FIELD_STEP), dtype=np.float32)[:, None]
    xs = np.linspace(0, w - 1, -(-w // _FIELD_STEP), dtype=np.float32)[None, :]
    return xs, ys


def _upsample(field: np.ndarray, w: int, h: int) -> np.ndarray:
    return cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR)


def background(rng: np.random.Generator, w: int, h: int, channels: int, strength: float) -> np.ndarray:
    """A wall: base tone, gradient, blotchy low-frequency texture, fine grain, maybe an edge."""
    xs, ys = _grid(w, h)
    shape = (ys.shape[0], xs.shape[1])
    coarse = rng.normal(0, 22 * strength, (4, 5)).astype(np.float32)
    img: np.ndarray = cv2.resize(coarse, shape[::-1], interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 5 * strength, shape).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    img += ((xs - w / 2) * np.cos(angle) + (ys - h / 2) * np.sin(angle)) * np.float32(70 * strength / max(w, h))
    if rng.random() < 0.35:  # a door frame or wall edge
        img[:, : int(rng.uniform(0.05, 0.95) * shape[1])] += np.float32(rng.normal(0, 25 * strength))
    img += np.float32(rng.uniform(60, 200))
    grey = np.clip(_upsample(img, w, h), 0, 255).astype(np.uint8)
    if channels == 1:
        return grey
    tint = rng.normal(0, 12, 3)  # a tinted wall: one colour cast over the grey texture
    # cv2 takes a Python number as a scalar operand; its stubs only list arrays.
    return cv2.merge([cv2.add(grey, float(t)) for t in tint])  # type: ignore[call-overload]


def gain_map(
    rng: np.random.Generator, w: int, h: int, channels: int, affine: np.ndarray, params: SynthParams
) -> np.ndarray:
    """A session's light as a 128-based gain: exposure, a gradient across the frame, soft face
    roundness, and light from one direction shading the head's form (`light_direction`)."""
    scale = float(np.hypot(affine[0, 0], affine[1, 0]))
    cx, cy = affine[0, 2], affine[1, 2] + 0.25 * scale
    angle = rng.uniform(0, 2 * np.pi)
    xs, ys = _grid(w, h)
    slope = ((xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle)) / (2.2 * scale)
    gain = np.clip(1 + params.illumination * slope, 0.4, 1.6)
    r2 = ((xs - cx) ** 2 + (ys - cy) ** 2) / (1.2 * scale) ** 2
    gain = gain * (0.9 + 0.18 * np.exp(-r2)) * rng.uniform(1 - params.exposure, 1 + params.exposure)
    gain = gain * _shading(rng, (xs - cx) / (1.1 * scale), (ys - cy) / (1.5 * scale), params.light_direction)
    gain = np.clip(_upsample(gain.astype(np.float32), w, h) * 128 + 0.5, 0, 255).astype(np.uint8)
    return gain if channels == 1 else cv2.merge([gain] * channels)


def _shading(rng: np.random.Generator, nx: np.ndarray, ny: np.ndarray, share: float) -> np.ndarray:
    """Lambertian light on an ellipsoidal head from a key light in front, to a side and above.

    Studio key lights sit in front of the subject, up to about 50 degrees to a side and a little
    above; `share` is the part of the light that comes from it rather than from everywhere.
    """
    azimuth, elevation = np.deg2rad(rng.uniform(-50, 50)), np.deg2rad(rng.uniform(0, 40))
    light = np.array([np.sin(azimuth) * np.cos(elevation), -np.sin(elevation), np.cos(azimuth) * np.cos(elevation)])
    if share <= 0:
        return np.ones_like(nx * ny)
    r = np.sqrt(nx**2 + ny**2)
    inside = np.minimum(r, 0.98) / np.maximum(r, 1e-6)  # normals of the rim for points outside
    sx, sy = nx * inside, ny * inside
    sz = np.sqrt(np.clip(1 - sx**2 - sy**2, 0.0, None))
    face = (1 - share) + share * 1.2 * np.clip(sx * light[0] + sy * light[1] + sz * light[2], 0.0, None)
    wall = (1 - share) + share * 1.2 * light[2]
    t = np.clip((r - 0.9) / 0.25, 0.0, 1.0)
    return (face * (1 - t) + wall * t).astype(np.float32)


_NOISE_PAD = 32
Noise = tuple[np.ndarray, np.ndarray] | None


def noise_bank(rng: np.random.Generator, w: int, h: int, channels: int, sigma: float) -> Noise:
    """Sensor noise for all of a subject's frames (each takes a random window of it).

    Split into + and - parts so that adding it is two saturating uint8 operations.
    """
    if sigma <= 0:
        return None
    shape = _plane(h + _NOISE_PAD, w + _NOISE_PAD, channels)
    noise = rng.standard_normal(shape, dtype=np.float32) * sigma
    return np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8)


def blur_kernel(sigma: float) -> tuple[int, int]:
    """An odd Gaussian kernel two sigmas wide on each side."""
    side = 2 * int(np.ceil(2 * sigma)) + 1
    return side, side


def finish(img: np.ndarray, gain: np.ndarray, noise: Noise, rng: np.random.Generator, blur: float) -> np.ndarray:
    """Optics and sensor: the session's focus blur, lighting, then noise."""
    img = cv2.GaussianBlur(img, blur_kernel(blur), blur)
    img = cv2.multiply(img, gain, scale=1 / 128)
    if noise is not None:
        h, w = img.shape[:2]
        oy, ox = (int(v) for v in rng.integers(0, _NOISE_PAD, 2))
        img = cv2.add(img, noise[0][oy : oy + h, ox : ox + w])
        img = cv2.subtract(img, noise[1][oy : oy + h, ox : ox + w])
    return img
