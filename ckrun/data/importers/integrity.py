"""Checks of an imported table as a whole: duplicate rows, a leaky predefined split, tiny faces.

Each one catches a dataset that imports without error but would quietly bias every score:
a duplicated image counts twice (and may sit in train and test at once), a subject in two
predefined splits leaks identity, a face a few pixels wide carries no expression. The
importer (`check_import`) calls them in order for every format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ckrun.console import warn
from ckrun.data.ckformat import read_landmarks
from ckrun.errors import DataError

__all__ = ["DUPLICATE_REASON", "MIN_FACE_PX", "drop_duplicate_rows", "face_sides", "warn_small_faces"]

DUPLICATE_REASON = "duplicate row (same image, same labels)"
MIN_FACE_PX = 16


def drop_duplicate_rows(manifest: pd.DataFrame, source: Path) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Rows listed more than once, dropped with a warning; one image with two labellings is an error."""
    exact = manifest.duplicated(keep="first")
    dropped = [(str(p), DUPLICATE_REASON) for p in manifest.loc[exact, "path"]]
    kept = manifest.loc[~exact].reset_index(drop=True)
    clash = kept["path"].duplicated(keep=False)
    if clash.any():
        path = kept.loc[clash, "path"].iloc[0]
        rows = ", ".join(str(i) for i in np.flatnonzero((kept["path"] == path).to_numpy())[:3])
        raise DataError(
            f"{source}: {path} is listed {int((kept['path'] == path).sum())} times with different labels or "
            f"splits (manifest rows {rows}); keep one row per image"
        )
    if dropped:
        example = dropped[0][0]
        warn(f"{source}: {len(dropped)} duplicate row(s) dropped (same image and labels listed again, e.g. {example})")
    return kept, dropped


def face_sides(manifest: pd.DataFrame) -> np.ndarray:
    """The side in pixels of each row's face: its landmark box when it has one, else the image's shorter side.

    Reading every landmark file here also turns a damaged one into an import error rather
    than a failure of the crop halfway through a run.
    """
    sides = np.zeros(len(manifest))
    landmarks = manifest["landmarks"] if "landmarks" in manifest.columns else pd.Series(pd.NA, index=manifest.index)
    for i, (path, marks) in enumerate(zip(manifest["path"], landmarks, strict=True)):
        if isinstance(marks, str) and marks:
            try:
                points = read_landmarks(Path(marks))
            except (OSError, ValueError) as exc:  # the crop would fail on it mid-run: name it now
                raise DataError(f"{marks}: unusable landmark file ({exc})") from None
            sides[i] = float(np.max(points.max(axis=0) - points.min(axis=0)))
        else:
            with Image.open(path) as image:
                sides[i] = float(min(image.size))
    return sides


def warn_small_faces(manifest: pd.DataFrame, source: Path, min_px: int = MIN_FACE_PX) -> int:
    """Warn (with the count) about faces under `min_px` pixels: upscaled, they carry no expression detail."""
    sides = face_sides(manifest)
    small = np.flatnonzero(sides < min_px)
    if len(small):
        first = small[0]
        warn(
            f"{source}: {len(small)} image(s) have a face smaller than {min_px} px (e.g. "
            f"{manifest['path'].iloc[first]}: {sides[first]:.0f} px); they are upscaled and carry little detail"
        )
    return len(small)
