"""Facial regions of the FACS action units, as masks on the face the model sees.

An AU is a movement of one part of the face, so a model that detects it should look there.
Each region is drawn from the 68 iBUG points CK+ ships (0-based: jaw 0-16, brows 17-26, nose
27-35, eyes 36-47, lips 48-67), grown by a fraction of the inter-ocular distance so it keeps
its size relative to the face whatever the crop. Points are first mapped through the same
crop, alignment and resize as the image (`to_face_coordinates`), so masks and Grad-CAM maps
share one pixel grid.

The regions follow FACS: brows (AU1, 2, 4), eyes and lids (AU5, 6, 7, 43), nose (AU9 and the
nostril AUs 38, 39), upper lip (AU10, 11), mouth corners (AU12-15, 20), chin (AU17) and lips
with the jaw (AU16, 18, 22-28). AUs outside this table get no region and no share.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ckrun.data.labels import au_code

# Region -> (point groups whose convex hulls are filled, growth in inter-ocular distances).
_HULLS: dict[str, tuple[tuple[tuple[int, ...], ...], float]] = {
    "brows": ((tuple(range(17, 22)), tuple(range(22, 27))), 0.22),
    "eyes": ((tuple(range(36, 42)), tuple(range(42, 48))), 0.22),
    "nose": ((tuple(range(27, 36)),), 0.12),
    "upper_lip": (((*range(31, 36), *range(48, 55)),), 0.08),
    "chin": (((*range(6, 11), 56, 57, 58),), 0.08),
    "lips_jaw": (((*range(48, 60), *range(5, 12)),), 0.12),
}
# Region -> (points, disk radius in inter-ocular distances).
_DISKS: dict[str, tuple[tuple[int, ...], float]] = {"mouth_corners": ((48, 54), 0.35)}
REGIONS: tuple[str, ...] = (*_HULLS, *_DISKS)

AU_REGIONS: dict[int, str] = {
    **dict.fromkeys((1, 2, 4), "brows"),
    **dict.fromkeys((5, 6, 7, 43), "eyes"),
    **dict.fromkeys((9, 38, 39), "nose"),
    **dict.fromkeys((10, 11), "upper_lip"),
    **dict.fromkeys((12, 13, 14, 15, 20), "mouth_corners"),
    17: "chin",
    **dict.fromkeys((16, 18, 22, 23, 24, 25, 26, 27, 28), "lips_jaw"),
}


def region_of(au: str) -> str | None:
    """The facial region of an AU column name (``AU12`` -> ``mouth_corners``), None when unmapped."""
    try:
        return AU_REGIONS.get(au_code(au))
    except ValueError:
        return None


def to_face_coordinates(points: np.ndarray, placement: np.ndarray) -> np.ndarray:
    """Image-pixel (x, y) points -> pixels of the face the model sees, through the image's
    placement (the 2 x 3 crop/align/resize matrix of `ckrun.data.geometry`)."""
    matrix = np.asarray(placement, float).reshape(2, 3)
    return np.asarray(points, float) @ matrix[:, :2].T + matrix[:, 2]


def _inter_ocular(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[36:42].mean(axis=0) - points[42:48].mean(axis=0)))


def region_masks(points: np.ndarray, image_size: int) -> dict[str, np.ndarray]:
    """Boolean (S, S) mask per region for 68 points already in face coordinates."""
    import cv2

    points = np.asarray(points, float)
    if points.shape != (68, 2):
        raise ValueError(f"expected 68 (x, y) landmarks, got shape {points.shape}")
    unit = max(_inter_ocular(points), 1.0)
    masks: dict[str, np.ndarray] = {}
    for name, (groups, grow) in _HULLS.items():
        canvas = np.zeros((image_size, image_size), np.uint8)
        for group in groups:
            hull = cv2.convexHull(np.round(points[list(group)]).astype(np.int32))
            cv2.fillConvexPoly(canvas, hull, 1)
        grown = round(grow * unit)
        if grown > 0:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grown + 1, 2 * grown + 1))
            canvas = np.asarray(cv2.dilate(canvas, kernel), np.uint8)
        masks[name] = canvas.astype(bool)
    yy, xx = np.mgrid[0:image_size, 0:image_size]
    for name, (centres, radius_units) in _DISKS.items():
        radius = radius_units * unit
        mask = np.zeros((image_size, image_size), bool)
        for i in centres:
            mask |= (xx - points[i, 0]) ** 2 + (yy - points[i, 1]) ** 2 <= radius**2
        masks[name] = mask
    return masks


def attribution_share(attribution: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of a non-negative map's total inside `mask` (NaN for an all-zero map)."""
    total = float(np.sum(attribution))
    if total <= 0:
        return float("nan")
    return float(np.sum(attribution[mask]) / total)


def au_shares(maps: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray]) -> dict[str, tuple[str, float, float]]:
    """Per AU with a region: (region, share of its map inside, the region's share of the face)."""
    out = {}
    for au, attribution in maps.items():
        region = region_of(au)
        if region is None or region not in masks:
            continue
        mask = masks[region]
        out[au] = (region, attribution_share(attribution, mask), float(mask.mean()))
    return out
