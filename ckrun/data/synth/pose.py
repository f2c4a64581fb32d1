"""Head pose: the view from face units to pixels, with a little turn and nod of a 3D head.

Drawing and the Landmarks files both go through `View.fixed`, so what is drawn and what is
written agree under any pose. Roll, scale and position are a 2D affine; yaw and pitch first
rotate each point by its depth on a simple head (an ellipsoid with a protruding nose) and
project it orthographically, so under a turn the nose and the middle of the face move more
than the outline and the ears, as they do on a real head.
"""

from __future__ import annotations

import numpy as np

SUBPIXEL_BITS = 4  # cv2 drawing works in 1/16 pixel
SUBPIXEL = 1 << SUBPIXEL_BITS

# The head in face units (half face width at the temples = 1, y down, eyes near y = -0.3).
_HEAD_HALF_WIDTH, _HEAD_HALF_HEIGHT, _HEAD_CENTRE_Y, _HEAD_DEPTH = 1.15, 1.5, 0.1, 0.8
_NOSE_HEIGHT, _NOSE_HALF_WIDTH = 0.3, 0.14
_INV_W2, _INV_H2, _NOSE_K = _HEAD_HALF_WIDTH**-2, _HEAD_HALF_HEIGHT**-2, -(_NOSE_HALF_WIDTH**-2)


def depth(pts: np.ndarray) -> np.ndarray:
    """How far each point stands out towards the camera (face units): skull plus nose.

    Written with few numpy calls: it runs for every drawn primitive of every turned frame.
    """
    x, y = pts[:, 0], pts[:, 1]
    x2 = x * x
    dy = y - _HEAD_CENTRE_Y
    skull = np.sqrt(np.maximum(1 - x2 * _INV_W2 - dy * dy * _INV_H2, 0.0))
    # The nose ridge rises from between the eyes to its tip and drops under it (two ramps).
    along = np.minimum(np.maximum(np.minimum((y + 0.32) * 2.0, (0.33 - y) * 10.0), 0.0), 1.0)
    return _HEAD_DEPTH * skull + _NOSE_HEIGHT * along * np.exp(x2 * _NOSE_K)


class View:
    """One frame's camera: face units -> pixels (and cv2's 1/16-pixel fixed point).

    A turned point is x' = x cos(yaw) + z sin(yaw) and y' = y cos(pitch) + x sin(yaw) sin(pitch)
    - z cos(yaw) sin(pitch) (orthographic): linear in (x, y) plus a term in its depth z, so a
    view keeps the linear part and the depth direction, each already mapped to pixels.
    """

    def __init__(self, affine: np.ndarray, yaw: float = 0.0, pitch: float = 0.0) -> None:
        self.affine = affine  # 2x3: roll, scale, position
        self.yaw = yaw  # radians; > 0 turns the face towards image right
        self.pitch = pitch  # radians; > 0 lifts the chin
        self.scale = float(np.hypot(affine[0, 0], affine[1, 0]))
        cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
        self._turned = yaw != 0.0 or pitch != 0.0
        self._turn = np.array([[cy, sy * sp], [0.0, cp]])  # (x, y) row vectors times this
        self._depth_dir = np.array([sy, -cy * sp])
        self._linear = self._turn @ affine[:, :2].T * SUBPIXEL
        self._depth_px = self._depth_dir @ affine[:, :2].T * SUBPIXEL
        self._offset = affine[:, 2] * SUBPIXEL

    def rotate(self, pts: np.ndarray) -> np.ndarray:
        """Face-unit points as the turned head shows them (still in face units)."""
        if not self._turned:
            return pts
        return pts @ self._turn + depth(pts)[:, None] * self._depth_dir

    def fixed(self, pts: np.ndarray) -> np.ndarray:
        out = pts @ self._linear + self._offset
        if self._turned:
            out += depth(pts)[:, None] * self._depth_px
        return np.rint(out).astype(np.int32)

    def to_pixels(self, pts: np.ndarray) -> np.ndarray:
        """Face units -> image pixels, on exactly the grid the drawing used."""
        return self.fixed(pts) / SUBPIXEL

    def local_affine(self, centre: tuple[float, float] = (0.0, 0.0), radius: float = 1.0) -> np.ndarray:
        """The 2x3 affine closest to this view over a face-sized patch (for warping textures)."""
        grid = np.linspace(-radius, radius, 5)
        pts = np.array([(centre[0] + gx, centre[1] + gy) for gx in grid for gy in grid])
        target = self.rotate(pts) @ self.affine[:, :2].T + self.affine[:, 2]
        design = np.hstack([pts, np.ones((len(pts), 1))])
        solution, *_ = np.linalg.lstsq(design, target, rcond=None)
        return np.asarray(solution.T)
