"""CK+'s on-disk layout and text formats, shared by the importer and the synthetic generator.

CK+ ships MATLAB-style text: every number printed as ``'   %.7e'`` (three spaces, seven
decimals), one value (Emotion), one ``AU intensity`` pair (FACS) or one ``x y`` pair
(Landmarks) per line. Keeping reader and writer side by side is what makes the synthetic
set byte-compatible with the real one.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

IMAGES_DIR = "cohn-kanade-images"
EMOTION_DIR = "Emotion"
FACS_DIR = "FACS"
LANDMARKS_DIR = "Landmarks"
SUBJECTS_FILE = "subjects.csv"
N_LANDMARKS = 68


def format_values(values: Iterable[float]) -> str:
    """One CK+ text line: each value as three spaces and ``%.7e``, then a newline."""
    return "".join(f"   {float(v):.7e}" for v in values) + "\n"


def frame_stem(subject: str, sequence: str, frame: int) -> str:
    """File stem of a frame, e.g. ('S005', '001', 11) -> 'S005_001_00000011'."""
    return f"{subject}_{sequence}_{int(frame):08d}"


def image_path(root: Path, subject: str, sequence: str, frame: int) -> Path:
    return root / IMAGES_DIR / subject / sequence / f"{frame_stem(subject, sequence, frame)}.png"


def emotion_path(root: Path, subject: str, sequence: str, frame: int) -> Path:
    return root / EMOTION_DIR / subject / sequence / f"{frame_stem(subject, sequence, frame)}_emotion.txt"


def facs_path(root: Path, subject: str, sequence: str, frame: int) -> Path:
    return root / FACS_DIR / subject / sequence / f"{frame_stem(subject, sequence, frame)}_facs.txt"


def landmarks_path(root: Path, subject: str, sequence: str, frame: int) -> Path:
    return root / LANDMARKS_DIR / subject / sequence / f"{frame_stem(subject, sequence, frame)}_landmarks.txt"


def write_emotion(path: Path, code: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_values([code]))


def write_facs(path: Path, aus: Iterable[tuple[int, float]]) -> None:
    """`aus` as (AU code, intensity) pairs; intensity 0 means present, not intensity-coded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(format_values([code, intensity]) for code, intensity in aus))


def write_landmarks(path: Path, points: np.ndarray) -> None:
    """`points` as a (68, 2) array of x, y pixel coordinates."""
    points = np.asarray(points, dtype=float)
    if points.shape != (N_LANDMARKS, 2):
        raise ValueError(f"landmarks must have shape (68, 2), got {points.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(format_values(p) for p in points))


def _read_rows(path: Path, width: int, what: str) -> np.ndarray:
    """Numbers of a CK+ text file as rows of `width`; ValueError names the file and line."""
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"{path}: line {lineno}: not a number in {line.strip()!r}") from None
        if len(values) != width:
            raise ValueError(f"{path}: line {lineno}: expected {width} number(s) per {what} line, got {len(values)}")
        rows.append(values)
    return np.asarray(rows, dtype=float).reshape(-1, width)


def read_emotion(path: Path) -> float:
    """The emotion code of an Emotion file (checked for range by the caller)."""
    rows = _read_rows(path, 1, "emotion")
    if rows.shape[0] != 1:
        raise ValueError(f"{path}: expected exactly one emotion code, found {rows.shape[0]}")
    return float(rows[0, 0])


def read_facs(path: Path) -> list[tuple[int, float]]:
    """(AU code, intensity) pairs of a FACS file."""
    rows = _read_rows(path, 2, "FACS")
    pairs = []
    for code, intensity in rows:
        if code != int(code) or code <= 0:
            raise ValueError(f"{path}: AU code {code!r} is not a positive integer")
        pairs.append((int(code), float(intensity)))
    return pairs


def read_landmarks(path: Path) -> np.ndarray:
    """(68, 2) x, y points of a Landmarks file."""
    rows = _read_rows(path, 2, "landmark")
    if rows.shape[0] != N_LANDMARKS:
        raise ValueError(f"{path}: expected {N_LANDMARKS} landmark points, found {rows.shape[0]}")
    return rows
