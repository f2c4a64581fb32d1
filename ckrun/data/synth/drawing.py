"""Drawing: a face from its landmarks, as anti-aliased pixels through one view.

Drawing code speaks in face units; `Canvas` maps them through the frame's `View` (pose), and
the Landmarks files go through the same view, so they agree with the pixels. Parts are drawn
back to front, each with the shading its AUs cause (wrinkles, furrows, bulges), which the
landmarks alone would not show; the shading strengths come in already scaled by the set's
wrinkle contrast.
"""

# Arrays plus tuples below are vector offsets in face units, not concatenation.
# ruff: noqa: RUF005

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ckrun.data.synth.canvas import Canvas, blend, quad, smooth, tone
from ckrun.data.synth.features import draw_beard, draw_glasses, draw_moustache, draw_stubble
from ckrun.data.synth.identity import FaceShape, Palette, Subject
from ckrun.data.synth.pose import View


def _head_arc(lm: np.ndarray, f: FaceShape, grow: float = 1.0, n: int = 15) -> np.ndarray:
    """Forehead and skull outline from the right temple over the top to the left temple."""
    centre = (lm[0] + lm[16]) / 2
    half = (lm[16, 0] - lm[0, 0]) / 2 * grow
    t = np.linspace(0, -np.pi, n)
    return np.stack([centre[0] + half * np.cos(t), centre[1] + f.head_h * grow * np.sin(t)], axis=1)


def _draw_body(cv: Canvas, f: FaceShape, pal: Palette, lm: np.ndarray) -> None:
    """What lies behind the face: shoulders, neck with the chin's shadow, ears, back hair."""
    top = (lm[0, 1] + lm[16, 1]) / 2
    cv.fill(
        np.array([(-2.3, 4.0), (-2.1, 2.0), (-0.6, 1.7), (0, 1.9), (0.6, 1.7), (2.1, 2.0), (2.3, 4.0)]),
        pal.clothes,
    )
    cv.fill(
        np.array([(-0.45, top + 0.8), (0.45, top + 0.8), (0.52, 2.1), (-0.52, 2.1)]),
        tone(pal.skin, 0.8),
    )
    jaw = lm[3:14]
    cv.fill(np.vstack([jaw, jaw[::-1] + (0, 0.12)]), tone(pal.skin, 0.6))
    for sign in (-1, 1):
        ear = np.array([sign * ((lm[16, 0] - lm[0, 0]) / 2 + 0.03), top + 0.17])
        cv.ellipse(ear, (0.08, 0.17), tone(pal.skin, 0.88))
    if f.long_hair:
        arc = _head_arc(lm, f, 1.12)
        sides = np.array([(-arc[0, 0] * 1.05, top + 1.35), (arc[0, 0] * 1.05, top + 1.35)])
        cv.fill(np.vstack([sides[1:], arc, sides[:1]]), pal.hair)
    else:
        cv.fill(_head_arc(lm, f, 1.07), pal.hair)


def _draw_head(cv: Canvas, f: FaceShape, pal: Palette, lm: np.ndarray, a: Mapping[int, float]) -> None:
    """Face outline (jaw landmarks plus a skull arc), forehead lines, hair fringe, a mole."""
    arc = _head_arc(lm, f)
    cv.fill(np.vstack([lm[0:17], arc]), pal.skin)
    _draw_forehead_lines(cv, f, pal, lm, a)
    half = (lm[16, 0] - lm[0, 0]) / 2
    x = np.linspace(-half, half, 13)
    hair_y = np.minimum(f.eye_y - f.brow_gap - f.hairline + 0.35 * (x / half) ** 2, arc[0, 1] - 0.05)
    cv.fill(np.vstack([arc, np.stack([x, hair_y], axis=1)]), pal.hair)
    if f.mole is not None:
        cv.ellipse(np.array(f.mole), (0.013, 0.013), tone(pal.skin, 0.55))


_MID_FOREHEAD = np.stack([np.linspace(-0.3, 0.3, 7), -0.03 * (1 - np.linspace(-1, 1, 7) ** 2)], axis=1)
_SIDE_FOREHEAD = np.stack([np.linspace(0.25, 0.72, 6), 0.05 * ((np.linspace(0.25, 0.72, 6) - 0.45) / 0.3) ** 2], axis=1)
_NOSE_WRINKLE = np.stack([np.linspace(-0.1, 0.1, 5), -0.015 * (1 - np.linspace(-1, 1, 5) ** 2)], axis=1)


def _draw_forehead_lines(cv: Canvas, f: FaceShape, pal: Palette, lm: np.ndarray, a: Mapping[int, float]) -> None:
    """AU1 wrinkles the middle of the forehead, AU2 its sides; age adds faint static lines."""
    inner = max(a.get(1, 0.0), f.age_lines)
    outer = max(a.get(2, 0.0), f.age_lines)
    mid_y = (lm[20, 1] + lm[23, 1]) / 2
    for k in range(3):
        colour = tone(pal.skin, 0.6, inner * (1 - 0.15 * k))
        cv.line(_MID_FOREHEAD + (0, mid_y - 0.1 - 0.065 * k), colour, 0.018)
        colour = tone(pal.skin, 0.6, outer * (1 - 0.15 * k))
        if colour is not None:
            for sign, brow in ((-1, 18), (1, 25)):
                line = _SIDE_FOREHEAD * (sign, 1) + (0, lm[brow, 1] - 0.1 - 0.065 * k)
                cv.line(line, colour, 0.018)


_EYES = ((36, 37, 38, 39, 40, 41), (45, 44, 43, 42, 47, 46))  # outer, upper x2, inner, lower x2


def _draw_eye(
    cv: Canvas,
    f: FaceShape,
    pal: Palette,
    lm: np.ndarray,
    a: Mapping[int, float],
    idx: tuple[int, ...],
) -> None:
    """Sclera, iris and pupil, then lid skin over what the lids hide (so AU5/6/7 change how
    much eye shows), lid lines, and AU7's tension line under the lower lid."""
    outer, up1, up2, inner, low1, low2 = idx
    upper = smooth(lm[[outer, up1, up2, inner]])
    lower = smooth(lm[[inner, low1, low2, outer]])
    cv.fill(np.vstack([upper, lower]), pal.sclera)
    centre = (lm[outer] + lm[inner]) / 2 - (0, 0.004)
    cv.ellipse(centre, (f.iris_r, f.iris_r), pal.iris)
    cv.ellipse(centre, (0.45 * f.iris_r, 0.45 * f.iris_r), tone(pal.mouth, 0.5))
    cv.ellipse(
        centre - (0.3 * f.iris_r, 0.35 * f.iris_r),
        (0.2 * f.iris_r, 0.2 * f.iris_r),
        tone(pal.sclera, 1.05),
    )
    cv.fill(np.vstack([upper, upper[::-1] - (0, 0.11)]), pal.skin)
    cv.fill(np.vstack([lower, lower[::-1] + (0, 0.11)]), pal.skin)
    crease = upper - (0, 0.045) * np.sin(np.linspace(0, np.pi, len(upper)))[:, None] - (0, 0.01)
    cv.line(crease, tone(pal.skin, 0.78), 0.012)
    cv.line(upper, tone(pal.brow, 0.6), 0.026)
    cv.line(lower, tone(pal.skin, 0.68), 0.012)
    cv.line(lower + (0, 0.035), tone(pal.skin, 0.7, a.get(7, 0.0)), 0.014)
    _draw_cheek(cv, f, pal, lm, a, outer, lower)


def _draw_cheek(
    cv: Canvas,
    f: FaceShape,
    pal: Palette,
    lm: np.ndarray,
    a: Mapping[int, float],
    outer: int,
    lower: np.ndarray,
) -> None:
    """AU6: raised cheek below the eye, its furrow, and crow's feet (which age draws too)."""
    cheek = a.get(6, 0.0)
    feet = max(cheek, 0.7 * f.age_lines)
    sign = np.sign(lm[outer, 0])
    if cheek > 0.0:
        centre = lower.mean(axis=0) + (0, 0.2)
        cv.ellipse(centre, (0.2, 0.09), tone(pal.skin, 1.1, cheek))
        cv.line(lower + (0, 0.075), tone(pal.skin, 0.68, cheek), 0.016)
    colour = tone(pal.skin, 0.55, feet)
    if colour is not None:
        for angle in (-0.45, 0.0, 0.45):
            d = np.array([sign * np.cos(angle), np.sin(angle)])
            start = lm[outer] + d * 0.035
            cv.line(np.stack([start, start + d * 0.1]), colour, 0.016)


def _draw_nose(cv: Canvas, f: FaceShape, pal: Palette, lm: np.ndarray, a: Mapping[int, float]) -> None:
    """Nose sides, wings and nostrils; AU9 wrinkles the bridge; the nasolabial folds deepen."""
    wrinkle = a.get(9, 0.0)
    for sign, wing, nostril, corner in ((-1, 31, 32, 48), (1, 35, 34, 54)):
        side = np.array(
            [
                lm[27] + (sign * 0.06, 0.06),
                lm[30] + (sign * 0.08, -0.06),
                lm[wing] + (sign * 0.01, -0.04),
            ]
        )
        cv.line(side, tone(pal.skin, 0.85), 0.014)
        cv.ellipse(lm[nostril] + (sign * 0.01, -0.012), (0.032, 0.016), tone(pal.skin, 0.35))
        start, end = lm[wing] + (sign * 0.05, -0.02), lm[corner] + (sign * 0.05, 0.0)
        fold = quad(start, (start + end) / 2 + (sign * 0.04, 0), end)
        depth = f.age_lines + 0.15 + 0.75 * a.get(12, 0.0) + 0.45 * wrinkle + 0.2 * a.get(6, 0.0)
        cv.line(fold, tone(pal.skin, 0.6, depth), 0.018)
        bunny = np.array([lm[28] + (sign * 0.1, 0.0), lm[28] + (sign * 0.17, 0.07)])
        cv.line(bunny, tone(pal.skin, 0.55, wrinkle), 0.016)
    cv.line(smooth(lm[31:36]), tone(pal.skin, 0.7), 0.016)
    cv.ellipse(lm[30] - (0, 0.01), (0.05, 0.035), tone(pal.skin, 1.08))
    colour = tone(pal.skin, 0.55, wrinkle)
    if colour is not None:
        for k in (-1, 0, 1):
            cv.line(_NOSE_WRINKLE + lm[28] + (0, 0.02 + 0.04 * k), colour, 0.016)


def _draw_brows(cv: Canvas, f: FaceShape, pal: Palette, lm: np.ndarray, a: Mapping[int, float]) -> None:
    """Brows as filled bands; AU4 adds vertical furrows between them."""
    profile = f.brow_thick * np.array([0.55, 0.8, 0.95, 1.0, 0.95])[:, None]
    for chain in (lm[17:22], lm[26:21:-1]):
        top = smooth(chain - profile * (0, 0.55), 1)
        bottom = smooth(chain + profile * (0, 0.45), 1)
        cv.fill(np.vstack([top, bottom[::-1]]), pal.brow)
    lower = a.get(4, 0.0)
    if lower > 0.0:
        mid = (lm[21] + lm[22]) / 2
        for dx in (-0.035, 0.035):
            furrow = np.array([mid + (dx, -0.02), mid + (dx * 1.2, 0.1)])
            cv.line(furrow, tone(pal.skin, 0.5, lower), 0.018)
        cv.line(
            np.array([lm[27] + (-0.05, 0.0), lm[27] + (0.05, 0.0)]),
            tone(pal.skin, 0.6, lower),
            0.014,
        )


def _draw_mouth_area(cv: Canvas, f: FaceShape, pal: Palette, lm: np.ndarray, a: Mapping[int, float], side: int) -> None:
    """Skin around the mouth: AU17 chin boss, AU24 bulges, AU15/12/14 corner lines."""
    chin = a.get(17, 0.0)
    if chin > 0.0:
        centre = (lm[57] + lm[8]) / 2 + (0, 0.02)
        cv.ellipse(centre, (0.17, 0.085), tone(pal.skin, 1.18, chin))
        for dot in centre + f.chin_dots * (0.13, 0.06):
            cv.ellipse(dot, (0.016, 0.016), tone(pal.skin, 0.45, chin * 0.9))
        furrow = quad(lm[57] + (-0.14, 0.05), lm[57] + (0, 0.1), lm[57] + (0.14, 0.05))
        cv.line(furrow, tone(pal.skin, 0.45, chin), 0.024)
    press = a.get(24, 0.0)
    if press > 0.0:
        half = 0.7 * f.mouth_hw
        # Pressed lips bulge the skin above and below them, outlined by dark creases.
        cv.ellipse(lm[51] - (0, 0.05), (half, 0.035), tone(pal.skin, 1.25, press))
        cv.ellipse(lm[57] + (0, 0.05), (half, 0.035), tone(pal.skin, 1.25, press))
        for y, sign in ((lm[51][1] - 0.09, -1), (lm[57][1] + 0.09, 1)):
            crease = quad(np.array((lm[48][0] + 0.02, y - sign * 0.02)), np.array((lm[51][0], y)),
                           np.array((lm[54][0] - 0.02, y - sign * 0.02)))  # fmt: skip
            cv.line(crease, tone(pal.skin, 0.45, press), 0.022)
    for sign, corner in ((-1, 48), (1, 54)):
        c = lm[corner]
        cv.line(
            np.array([c + (sign * 0.015, 0.02), c + (sign * 0.04, 0.12)]),
            tone(pal.skin, 0.6, a.get(15, 0.0)),
            0.018,
        )
        crease = quad(c + (sign * 0.03, -0.04), c + (sign * 0.05, 0.0), c + (sign * 0.03, 0.035), 5)
        cv.line(crease, tone(pal.skin, 0.6, 0.8 * a.get(12, 0.0)), 0.016)
        if sign == side:
            dimple = quad(c + (sign * 0.04, -0.06), c + (sign * 0.075, 0.0), c + (sign * 0.04, 0.06), 5)
            cv.line(dimple, tone(pal.skin, 0.3, a.get(14, 0.0)), 0.045)
            cv.ellipse(c + (sign * 0.035, -0.01), (0.035, 0.028), tone(pal.skin, 0.5, a.get(14, 0.0)))
            cv.ellipse(c + (sign * 0.09, -0.04), (0.05, 0.035), tone(pal.skin, 1.15, a.get(14, 0.0)))


def _draw_lips(cv: Canvas, f: FaceShape, pal: Palette, lm: np.ndarray, a: Mapping[int, float]) -> None:
    """Lips, and when parted the dark mouth with teeth (AU25/26/27)."""
    pale = 0.35 * a.get(23, 0.0) + 0.3 * a.get(24, 0.0)
    lips = blend(pal.lips, pal.skin, min(pale, 0.6))
    upper = smooth(lm[48:55])
    lower = smooth(lm[[54, 55, 56, 57, 58, 59, 48]])
    cv.fill(np.vstack([upper, lower]), lips)
    cv.line(np.vstack([upper, lower]), tone(lips, 0.8 - 0.3 * a.get(23, 0.0)), 0.008, closed=True)
    gaps = lm[[67, 66, 65], 1] - lm[[61, 62, 63], 1]
    if gaps.max() > 0.015:
        inner_up = smooth(lm[60:65], 1)
        inner_low = smooth(lm[[64, 65, 66, 67, 60]], 1)
        cv.fill(np.vstack([inner_up, inner_low]), pal.mouth)
        local = np.concatenate([[0.0], gaps, [0.0]])
        teeth = lm[60:65] + np.stack([np.zeros(5), np.minimum(0.055, 0.5 * local)], axis=1)
        cv.fill(np.vstack([inner_up, smooth(teeth, 1)[::-1]]), pal.teeth)
        if gaps.max() > 0.12:
            low_teeth = lm[[64, 65, 66, 67, 60]] - np.stack([np.zeros(5), np.minimum(0.035, 0.2 * local[::-1])], axis=1)
            cv.fill(np.vstack([inner_low, smooth(low_teeth, 1)[::-1]]), tone(pal.teeth, 0.9))
        cv.line(np.vstack([inner_up, inner_low]), pal.mouth, 0.01, closed=True)
    else:
        seam = smooth(lm[[48, 60, 61, 62, 63, 64, 54]])
        cv.line(seam, blend(lips, pal.mouth, 0.7), 0.02 + 0.01 * a.get(23, 0.0))
    cv.ellipse(lm[57] * 0.6 + lm[66] * 0.4, (0.3 * f.mouth_hw, 0.015), tone(lips, 1.15))


def draw_face(
    img: np.ndarray,
    view: View,
    subject: Subject,
    lm: np.ndarray,
    a: Mapping[int, float],
    side: int,
) -> None:
    """Back to front: body and hair, head, stubble, eyes and cheeks, nose, brows, mouth, beard,
    lips, moustache, glasses (each feature over what it hides on a real face)."""
    cv, f, pal = Canvas(img, view), subject.face, subject.palette
    _draw_body(cv, f, pal, lm)
    _draw_head(cv, f, pal, lm, a)
    draw_stubble(cv, f, pal, lm)
    for idx in _EYES:
        _draw_eye(cv, f, pal, lm, a, idx)
    _draw_nose(cv, f, pal, lm, a)
    _draw_brows(cv, f, pal, lm, a)
    _draw_mouth_area(cv, f, pal, lm, a, side)
    draw_beard(cv, f, pal, lm)
    _draw_lips(cv, f, pal, lm, a)
    draw_moustache(cv, f, pal, lm)
    draw_glasses(cv, f, pal)
