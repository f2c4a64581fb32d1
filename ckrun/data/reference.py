"""The neutral reference frame of each image, for `reference=neutral`.

A CK+ sequence starts from the person's neutral face, so the model can read each frame beside
that person's own neutral frame: the person-specific normalisation that OpenFace and py-feat
rely on (a face that always looks a little sad reads differently once its neutral is known).
The neutral frame of an image is the ``neutral`` column of the manifest where the data gives
one (a CSV column of image paths), else the first frame of the image's CK+ sequence folder.
The two faces are decoded with the same crop and alignment and stacked as channels, so every
geometric augmentation and test-time flip moves both alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ckrun.data import faces
from ckrun.data.manifest import NEUTRAL
from ckrun.data.sequences import frames_in
from ckrun.errors import DataError

MISSING = (
    "no neutral frame: reference=neutral needs CK+ sequence folders (the first frame is the neutral one) "
    "or a `neutral` column of image paths"
)


def neutral_paths(rows: pd.DataFrame) -> list[str]:
    """The neutral frame of every row, in row order; DataError names the first row without one."""
    given = rows[NEUTRAL].tolist() if NEUTRAL in rows.columns else [None] * len(rows)
    first_frames: dict[Path, str | None] = {}
    out = []
    for path, neutral in zip(rows["path"].astype(str), given, strict=True):
        if neutral is not None and not pd.isna(neutral) and str(neutral):
            out.append(str(neutral))
            continue
        folder = Path(path).parent
        if folder not in first_frames:
            frames = frames_in(folder) if folder.is_dir() else {}
            first_frames[folder] = str(next(iter(frames.values()))) if frames else None
        found = first_frames[folder]
        if found is None:
            raise DataError(f"{path}: {MISSING}")
        out.append(found)
    return out


def neutral_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """A manifest of the rows' neutral frames (path and CK+ landmarks), ready for the face cache."""
    paths = neutral_paths(rows)
    marks = [faces.find_ckplus_landmarks(p) for p in paths]
    return pd.DataFrame({"path": paths, "landmarks": [str(m) if m is not None else None for m in marks]})


def stack(images: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """(N, S, S, 2C): each face's channels, then its neutral face's."""
    if neutral.shape != images.shape:
        raise ValueError(f"faces {images.shape} and neutral faces {neutral.shape} differ in shape")
    return np.concatenate([np.asarray(images), np.asarray(neutral)], axis=-1)


def broadcast(neutral: str | Path | Sequence[str | Path] | None, n: int) -> list[str] | None:
    """One neutral image for all `n` images, or one per image."""
    if neutral is None:
        return None
    if isinstance(neutral, str | Path):
        return [str(neutral)] * n
    names = [str(p) for p in neutral]
    if len(names) != n:
        raise DataError(f"{len(names)} neutral images for {n} images: give one, or one per image")
    return names
