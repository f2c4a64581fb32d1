"""What some faces wear or grow: glasses, stubble, beards and moustaches.

Each is part of a subject's identity and covers what it covers on a real face: a beard hides
the chin boss of AU17, a moustache half the upper lip, glasses frame the eyes and cut across
lowered brows. Glasses sit on the head (they follow the pose, not the expression); facial hair
grows on the skin, so it follows the landmarks as the mouth moves.
"""

# Arrays plus tuples below are vector offsets in face units, not concatenation.

from __future__ import annotations

import numpy as np

from ckrun.data.synth.canvas import Canvas, blend, quad
from ckrun.data.synth.identity import FaceShape, Palette


def draw_stubble(cv: Canvas, f: FaceShape, pal: Palette, lm: np.ndarray) -> None:
    """A shadow of hair over the jaw, chin and upper lip (under every other part of the face)."""
    if f.facial_hair not in ("stubble", "beard"):
        return
    # From the sideburns down the jaw, up the cheek diagonally past the mouth to under the nose.
    region = np.vstack(
        [
            lm[1:16],
            [lm[54] + (0.16, -0.12), lm[35] + (0.03, 0.04), lm[33] + (0, 0.05)],
            [lm[31] + (-0.03, 0.04), lm[48] + (-0.16, -0.12)],
        ]
    )
    cv.fill(region, blend(pal.skin, pal.hair, 0.22))


def draw_beard(cv: Canvas, f: FaceShape, pal: Palette, lm: np.ndarray) -> None:
    """A full beard below the lower lip, over the chin's AU17 and AU15 shading."""
    if f.facial_hair != "beard":
        return
    lip = lm[[55, 56, 57, 58, 59]] + (0, 0.035)
    region = np.vstack([lm[3:14], [lm[54] + (0.07, 0.02)], lip, [lm[48] + (-0.07, 0.02)]])
    cv.fill(region, blend(pal.hair, pal.skin, 0.15))


def draw_moustache(cv: Canvas, f: FaceShape, pal: Palette, lm: np.ndarray) -> None:
    """A band from under the nose over the top of the upper lip; it moves with the lip corners."""
    if f.facial_hair not in ("moustache", "beard"):
        return
    top = [lm[48] + (-0.035, 0.02), lm[31] + (-0.02, 0.04), lm[33] + (0, 0.05), lm[35] + (0.02, 0.04)]
    bottom = [lm[54] + (0.035, 0.02), *(lm[k] + (0, 0.012) for k in (53, 52, 51, 50, 49))]
    cv.fill(np.array([*top, *bottom]), blend(pal.hair, pal.skin, 0.1))


def _lens(centre: tuple[float, float], half_w: float, half_h: float, squareness: float) -> np.ndarray:
    """A superellipse: round (squareness 2) to nearly rectangular (4) lenses."""
    t = np.linspace(0, 2 * np.pi, 28, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    power = 2 / squareness
    return np.stack(
        [centre[0] + half_w * np.sign(c) * np.abs(c) ** power, centre[1] + half_h * np.sign(s) * np.abs(s) ** power],
        axis=1,
    )


def draw_glasses(cv: Canvas, f: FaceShape, pal: Palette) -> None:
    """Two frames around the eyes, a bridge over the nose and the temples to the ears."""
    g = f.glasses
    if g is None:
        return
    y = f.eye_y + 0.015
    for sign in (-1, 1):
        centre = (sign * f.eye_dx, y)
        cv.line(_lens(centre, g.half_w, g.half_h, g.squareness), pal.glasses, g.thickness, closed=True)
        edge = sign * (f.eye_dx + g.half_w)
        cv.line(np.array([(edge, y - 0.5 * g.half_h), (sign * 1.0, f.eye_y + 0.02)]), pal.glasses, g.thickness)
    inner = f.eye_dx - g.half_w
    bridge = quad(np.array((-inner, y - 0.3 * g.half_h)), np.array((0.0, y - 0.6 * g.half_h)),
                  np.array((inner, y - 0.3 * g.half_h)))  # fmt: skip
    cv.line(bridge, pal.glasses, g.thickness)
