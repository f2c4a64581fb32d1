"""The landmark model: a subject's neutral 68-point (iBUG) face and how action units move it.

Each AU is a table of point shifts for the image-left half and the midline (the right half is
mirrored), turned once at import into a (68, 2) displacement field per side. A frame's
landmarks are the neutral face plus the fields weighted by AU strength, then kept anatomically
possible (lids and lips do not cross). Everything is in face units; drawing maps it to pixels.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ckrun.data.synth.identity import FaceShape

# Index of each iBUG-68 point's mirror image across the face's midline.
_MIRROR = np.array(
    [16 - i for i in range(17)]
    + [26 - i for i in range(10)]
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)


def _jaw_weights() -> np.ndarray:
    """How much each jaw point follows a jaw drop: 0 at the ears, 1 at the chin."""
    return np.sin(np.pi * np.arange(17) / 16) ** 2


# (outward, down) shifts in face units for the image-left half and the midline, per AU;
# the right half is mirrored. Negative y moves up.
_AU_SHIFTS: dict[int, dict[int, tuple[float, float]]] = {
    1: {21: (0.0, -0.17), 20: (0.0, -0.12), 19: (0.0, -0.06), 18: (0.0, -0.02)},
    2: {17: (0.01, -0.16), 18: (0.0, -0.15), 19: (0.0, -0.1), 20: (0.0, -0.04)},
    4: {
        17: (0.0, 0.05),
        18: (0.0, 0.07),
        19: (-0.02, 0.085),
        20: (-0.04, 0.105),
        21: (-0.06, 0.125),
        37: (0.0, 0.012),
        38: (0.0, 0.015),
    },
    5: {37: (0.0, -0.085), 38: (0.0, -0.085), 40: (0.0, 0.012), 41: (0.0, 0.012)},
    6: {40: (0.0, -0.035), 41: (0.0, -0.045), 36: (0.0, -0.012)},
    7: {40: (0.0, -0.06), 41: (0.0, -0.06), 37: (0.0, 0.022), 38: (0.0, 0.022), 36: (0.0, -0.006)},
    9: {
        31: (0.025, -0.065),
        32: (0.01, -0.065),
        33: (0.0, -0.06),
        30: (0.0, -0.035),
        29: (0.0, -0.015),
        49: (0.0, -0.04),
        50: (0.0, -0.045),
        51: (0.0, -0.045),
        61: (0.0, -0.025),
        62: (0.0, -0.025),
        21: (-0.015, 0.05),
        20: (0.0, 0.03),
    },
    12: {
        48: (0.09, -0.14),
        60: (0.08, -0.13),
        49: (0.035, -0.055),
        59: (0.035, -0.055),
        61: (0.02, -0.035),
        67: (0.02, -0.035),
        50: (0.0, -0.012),
        58: (0.0, -0.015),
        51: (0.0, -0.005),
    },
    14: {48: (-0.07, -0.06), 60: (-0.06, -0.05), 49: (-0.02, -0.018), 59: (-0.02, -0.018)},
    15: {
        48: (-0.02, 0.12),
        60: (-0.02, 0.11),
        49: (0.0, 0.04),
        59: (0.0, 0.045),
        61: (0.0, 0.02),
        67: (0.0, 0.02),
        57: (0.0, -0.012),
    },
    17: {
        57: (0.0, -0.065),
        58: (0.0, -0.055),
        59: (0.0, -0.03),
        66: (0.0, -0.04),
        67: (0.0, -0.03),
        62: (0.0, -0.02),
        51: (0.0, -0.015),
        48: (0.0, 0.015),
        60: (0.0, 0.01),
        8: (0.0, -0.055),
        7: (0.0, -0.045),
        6: (0.0, -0.02),
    },
    20: {
        48: (0.14, 0.025),
        60: (0.13, 0.025),
        49: (0.07, 0.008),
        59: (0.07, 0.0),
        61: (0.045, 0.0),
        67: (0.045, 0.0),
        50: (0.02, 0.012),
        58: (0.02, -0.02),
        51: (0.0, 0.015),
        57: (0.0, -0.028),
    },
    23: {
        48: (-0.075, 0.0),
        60: (-0.07, 0.0),
        49: (-0.045, 0.035),
        50: (-0.015, 0.04),
        51: (0.0, 0.04),
        59: (-0.045, -0.04),
        58: (-0.015, -0.045),
        57: (0.0, -0.045),
        61: (-0.03, 0.0),
        67: (-0.03, 0.0),
    },
    24: {
        48: (-0.03, 0.0),
        60: (-0.03, 0.0),
        49: (-0.01, 0.05),
        50: (0.0, 0.06),
        51: (0.0, 0.06),
        59: (-0.01, -0.06),
        58: (0.0, -0.07),
        57: (0.0, -0.07),
    },
    25: {
        61: (0.0, -0.02),
        62: (0.0, -0.025),
        50: (0.0, -0.012),
        51: (0.0, -0.012),
        67: (0.0, 0.065),
        66: (0.0, 0.075),
        59: (0.0, 0.045),
        58: (0.0, 0.06),
        57: (0.0, 0.065),
    },
    26: {
        **{j: (0.0, 0.17 * float(w)) for j, w in enumerate(_jaw_weights()[:9])},
        57: (0.0, 0.16),
        58: (0.0, 0.155),
        59: (0.0, 0.13),
        66: (0.0, 0.16),
        67: (0.0, 0.15),
        48: (-0.01, 0.05),
        60: (-0.01, 0.05),
        61: (0.0, -0.01),
        62: (0.0, -0.012),
    },
    27: {
        **{j: (0.0, 0.38 * float(w)) for j, w in enumerate(_jaw_weights()[:9])},
        57: (0.0, 0.37),
        58: (0.0, 0.35),
        59: (0.0, 0.3),
        66: (0.0, 0.36),
        67: (0.0, 0.33),
        48: (-0.05, 0.13),
        60: (-0.05, 0.13),
        49: (-0.02, -0.005),
        61: (-0.02, -0.025),
        62: (0.0, -0.03),
        51: (0.0, -0.02),
    },
}
_UNILATERAL = frozenset({14})


def _au_field(shifts: Mapping[int, tuple[float, float]], sides: tuple[int, ...]) -> np.ndarray:
    """(68, 2) displacement of one AU at full strength, on the given image sides (-1, +1)."""
    out = np.zeros((68, 2))
    for index, (outward, down) in shifts.items():
        mirror = int(_MIRROR[index])
        if mirror == index:
            out[index] = (0.0, down)
            continue
        if -1 in sides:
            out[index] = (-outward, down)
        if 1 in sides:
            out[mirror] = (outward, down)
    return out


_FIELDS: dict[tuple[int, int], np.ndarray] = {
    (au, side): _au_field(shifts, (side,) if au in _UNILATERAL else (-1, 1))
    for au, shifts in _AU_SHIFTS.items()
    for side in (-1, 1)
}


def neutral_landmarks(f: FaceShape) -> np.ndarray:
    """The subject's relaxed face as 68 iBUG points in face units."""
    pts = np.zeros((68, 2))
    phi = np.pi * (1 - np.arange(17) / 16)  # pi (image left) .. 0 (image right), via the chin
    cos, sin = np.cos(phi), np.abs(np.sin(phi))
    power = 2 / f.jaw_exp
    pts[0:17, 0] = f.cheek_w * np.sign(cos) * np.abs(cos) ** power * (1 - f.chin_narrow * sin**4)
    pts[0:17, 1] = f.jaw_top + f.jaw_h * sin**power

    u = np.linspace(0, 1, 5)  # outer -> inner
    brow_x = -(f.brow_in + f.brow_len * (1 - u))
    brow_y = f.eye_y - f.brow_gap - f.brow_arch * np.sin(np.pi * (0.15 + 0.7 * u)) + 0.03 * (1 - u)
    pts[17:22] = np.stack([brow_x, brow_y], axis=1)

    pts[27:31, 1] = np.linspace(f.eye_y - 0.02, f.nose_tip, 4)
    base = f.nose_tip + 0.07
    pts[31:36, 0] = np.array([-1, -0.5, 0, 0.5, 1]) * f.nose_w
    pts[31:36, 1] = base + np.array([-0.02, 0.02, 0.035, 0.02, -0.02])

    cx, w, h = -f.eye_dx, f.eye_w, f.eye_h
    pts[36:42] = [
        (cx - w / 2, f.eye_y - f.eye_tilt),
        (cx - w / 6, f.eye_y - 0.55 * h),
        (cx + w / 6, f.eye_y - 0.55 * h),
        (cx + w / 2, f.eye_y),
        (cx + w / 6, f.eye_y + 0.45 * h),
        (cx - w / 6, f.eye_y + 0.45 * h),
    ]

    hw, y, up, low = f.mouth_hw, f.mouth_y, f.lip_up, f.lip_low
    corner = y + f.corner_dy
    pts[48:51] = [(-hw, corner), (-0.6 * hw, y - 0.8 * up), (-0.22 * hw, y - up)]
    pts[51] = (0, y - up + 0.015)
    pts[57] = (0, y + low)
    pts[58:60] = [(-0.3 * hw, y + 0.95 * low), (-0.65 * hw, y + 0.75 * low)]
    pts[60:63] = [(-0.85 * hw, corner), (-0.4 * hw, y - 0.004), (0, y - 0.004)]
    pts[66:68] = [(0, y + 0.004), (-0.4 * hw, y + 0.004)]

    left = np.flatnonzero(pts[:, 0] < 0)
    pts[_MIRROR[left]] = pts[left] * (-1, 1)
    return pts + f.asymmetry


_APEX = 0.85  # fraction of the sequence at which the expression reaches its peak


def ramp(t: float, onset: float) -> float:
    """Smoothstep from 0 (neutral first frame) to 1 at `_APEX`, then held to the last frame.

    CK+ sequences end at the apex and its last frames share the peak labels, so the peak is
    reached a little before the end rather than only on the very last frame.
    """
    x = min(max((t - onset) / (_APEX - onset), 0.0), 1.0)
    return x * x * (3 - 2 * x)


def deform(neutral: np.ndarray, strengths: Mapping[int, float], side: int) -> np.ndarray:
    """Neutral landmarks moved by the AUs' fields, then kept anatomically possible."""
    pts = neutral.copy()
    for au, strength in strengths.items():
        if strength > 0:
            pts += strength * _FIELDS[(au, side)]
    return _constrain(pts)


# (upper, lower) point pairs that must not cross, with the least gap between them.
_ORDERED_PAIRS = (
    ((37, 41), 0.008),
    ((38, 40), 0.008),
    ((43, 47), 0.008),
    ((44, 46), 0.008),
    ((49, 61), 0.012),
    ((50, 61), 0.012),
    ((51, 62), 0.012),
    ((52, 63), 0.012),
    ((53, 63), 0.012),
    ((67, 59), 0.012),
    ((67, 58), 0.012),
    ((66, 57), 0.012),
    ((65, 56), 0.012),
    ((65, 55), 0.012),
)


def _constrain(pts: np.ndarray) -> np.ndarray:
    for upper, lower in ((61, 67), (62, 66), (63, 65)):  # lips meet rather than cross
        if pts[lower, 1] < pts[upper, 1]:
            pts[upper, 1] = pts[lower, 1] = (pts[upper, 1] + pts[lower, 1]) / 2
    for (upper, lower), gap in _ORDERED_PAIRS:
        if pts[lower, 1] - pts[upper, 1] < gap:
            if upper in (37, 38, 43, 44):
                mid = (pts[upper, 1] + pts[lower, 1]) / 2
                pts[upper, 1], pts[lower, 1] = mid - gap / 2, mid + gap / 2
            elif upper >= 60:  # the inner lower lip stays, the outer one sits below it
                pts[lower, 1] = pts[upper, 1] + gap
            else:
                pts[upper, 1] = pts[lower, 1] - gap
    for brow, lid in ((19, 37), (20, 38), (23, 43), (24, 44)):
        pts[brow, 1] = min(pts[brow, 1], pts[lid, 1] - 0.06)
    return pts
