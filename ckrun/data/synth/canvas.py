"""Drawing primitives in face units: tones, curves and a canvas that projects through a `View`.

Every part of a face (drawing, features) draws through `Canvas`, so one view (pose, roll,
scale, position) maps all of it, and the Landmarks files, with the same 1/16-pixel rounding.
"""

from __future__ import annotations

import cv2
import numpy as np

from ckrun.data.synth.identity import Colour
from ckrun.data.synth.pose import SUBPIXEL_BITS, View


def tone(colour: Colour, factor: float = 1.0, t: float = 1.0) -> Colour | None:
    """`colour` darkened (factor < 1) or lightened (> 1) by the fraction t of the change.

    None when t is too small to see, so callers skip drawing shading that is not there.
    """
    if t < 0.02:
        return None
    k = 1 + (factor - 1) * min(t, 1.0)
    return tuple(min(255.0, max(0.0, v * k)) for v in colour)


def blend(a: Colour, b: Colour, t: float) -> Colour:
    return tuple(x + (y - x) * t for x, y in zip(a, b, strict=True))


def smooth(pts: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Chaikin corner cutting: round curves from a few landmarks, ends kept in place."""
    for _ in range(iterations):
        q = 0.75 * pts[:-1] + 0.25 * pts[1:]
        r = 0.25 * pts[:-1] + 0.75 * pts[1:]
        mid = np.empty((2 * len(q), 2))
        mid[0::2], mid[1::2] = q, r
        pts = np.vstack([pts[:1], mid[1:-1], pts[-1:]])
    return pts


_BEZIER_T = {n: np.linspace(0, 1, n)[:, None] for n in (5, 8)}
_UNIT_CIRCLE = np.stack([np.cos(np.arange(20) * np.pi / 10), np.sin(np.arange(20) * np.pi / 10)], axis=1)


def quad(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int = 8) -> np.ndarray:
    """Quadratic Bezier curve: a wrinkle or fold as a gentle arc through three points."""
    t = _BEZIER_T[n]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def ellipse_points(centre: np.ndarray, axes: tuple[float, float]) -> np.ndarray:
    return _UNIT_CIRCLE * axes + centre


class Canvas:
    """An image plus its view, so drawing code speaks in face units.

    A colour of None (shading too faint to see) draws nothing.
    """

    def __init__(self, img: np.ndarray, view: View) -> None:
        self.img = img
        self.view = view
        self.scale = view.scale

    def fill(self, pts: np.ndarray, colour: Colour | None) -> None:
        if colour is not None:
            cv2.fillPoly(self.img, [self.view.fixed(pts)], colour, cv2.LINE_AA, SUBPIXEL_BITS)

    def line(self, pts: np.ndarray, colour: Colour | None, width: float, closed: bool = False) -> None:
        if colour is not None:
            thickness = max(1, round(width * self.scale))
            cv2.polylines(self.img, [self.view.fixed(pts)], closed, colour, thickness, cv2.LINE_AA, SUBPIXEL_BITS)

    def ellipse(self, centre: np.ndarray, axes: tuple[float, float], colour: Colour | None) -> None:
        if colour is not None:
            self.fill(ellipse_points(centre, axes), colour)
