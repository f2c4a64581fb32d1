"""Images and a stand-in face detector for the crop-policy and alignment tests.

OpenCV's detector on drawn faces is neither fast nor under the test's control; these fakes
decide exactly which images it "finds" and where, so a test can ask what happens to the
images it misses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ckrun.data import faces


def blank_frames(folder: Path, n: int, size: tuple[int, int] = (160, 120)) -> list[str]:
    """`n` grey frames with a little texture (so decoded pixels depend on the placement)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"frame_{i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (size[1], size[0]), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def fake_detector(
    monkeypatch: pytest.MonkeyPatch,
    paths: list[str],
    *,
    miss_every: int = 0,
    hit: tuple[float, float, float] = (0.5, 0.4, 0.5),
) -> dict[str, tuple[int, int, int] | None]:
    """Replace the face detector: image i is missed when i % miss_every == 0, else found.

    A found face is a square of `hit` = (centre x / width, centre y / height, side / shorter
    side), its side wobbling by a few percent from image to image, grown by the margin as
    the real detector's box is. Returns the raw (no margin) box per path.
    """
    raw: dict[str, tuple[int, int, int] | None] = {}
    for i, path in enumerate(paths):
        if miss_every and i % miss_every == 0:
            raw[path] = None
            continue
        width, height = faces.image_size(path)
        side = hit[2] * min(width, height) * (1 + 0.04 * ((i % 5) - 2))
        cx, cy = hit[0] * width, hit[1] * height
        raw[path] = faces.square_box(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2, 0.0)

    def detect(path: str | Path, margin: float) -> tuple[int, int, int] | None:
        box = raw[str(path)]
        if box is None:
            return None
        top, left, side = box
        return faces.square_box(left, top, left + side, top + side, margin)

    monkeypatch.setattr(faces, "detect_face", detect)
    return raw
