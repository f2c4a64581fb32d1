"""Reader for the official CK+ layout: image sequences plus peak-frame label files.

CK+ labels only the last (peak) frame of each sequence, with an Emotion file (327 of 593
sequences) and a FACS file (all of them). The frames just before the peak show nearly the
same expression, so the last `peak_frames` frames share the peak labels: more images per
label without inventing any. Everything else about the table (order, dtypes, checks) is
the importer's job.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from tqdm import tqdm

from ckrun.data import labels
from ckrun.data.ckformat import (
    EMOTION_DIR,
    FACS_DIR,
    IMAGES_DIR,
    LANDMARKS_DIR,
    SUBJECTS_FILE,
    read_emotion,
    read_facs,
)
from ckrun.data.importers.files import IMAGE_SUFFIXES, is_hidden, visible_dirs
from ckrun.data.importers.tables import read_demographics
from ckrun.data.manifest import DEMOGRAPHIC_COLUMNS, PEAK_DISTANCE, RawImport
from ckrun.errors import ConfigError, DataError

__all__ = ["find_ckplus_root", "read_ckplus"]

NO_LABEL_REASON = "sequence has neither an Emotion nor a FACS file"
NO_IMAGES_REASON = "sequence folder has no images"
NOT_A_FRAME_REASON = "not a CK+ frame image"

_EMOTION_SUFFIX = "_emotion.txt"
_FACS_SUFFIX = "_facs.txt"
_FRAME_NUMBER = re.compile(r"_(\d+)$")

# (subject, sequence) -> the label files of that sequence as (frame, path)
_LabelFiles = dict[tuple[str, str], tuple[int, Path]]
_T = TypeVar("_T")


@dataclass(frozen=True)
class _Sequence:
    subject: str
    sequence: str
    frames: dict[int, Path]  # frame number -> image, ascending

    @property
    def key(self) -> tuple[str, str]:
        return self.subject, self.sequence


@dataclass(frozen=True)
class _PeakLabels:
    frame: int  # the labelled frame; the window of peak frames ends here
    ck_emotion: str | None
    emotion: str | None  # None for neutral or no Emotion file
    aus: frozenset[int] | None  # None: no FACS file, so AUs are unknown (NaN)


def read_ckplus(root: Path, *, peak_frames: int = 3, progress: bool = False) -> RawImport:
    """Read a CK+ root (or a folder wrapping one): the peak-frame rows of every labelled sequence.

    Sequences without an Emotion file keep their AU labels (emotion missing), because
    CK+ has FACS codes for all 593 sequences but emotions for only 327; the importer's
    `require_emotion` keeps only rows with a 3-class emotion (so it also drops neutral
    sequences).
    """
    if peak_frames < 1:
        raise ConfigError(f"peak_frames must be at least 1; received {peak_frames}")
    root = _resolve_root(Path(root))
    skipped: list[tuple[str, str]] = []
    sequences = _scan_images(root, skipped)
    emotion_files = _label_files(root / EMOTION_DIR, _EMOTION_SUFFIX)
    facs_files = _label_files(root / FACS_DIR, _FACS_SUFFIX)
    for files in (emotion_files, facs_files):
        _check_label_targets(files, sequences)
    rows: list[dict[str, Any]] = []
    bar = tqdm(sequences.values(), desc="reading CK+", unit="seq", disable=not progress)
    for seq in bar:
        peak = _peak_labels(emotion_files.get(seq.key), facs_files.get(seq.key))
        if peak is None:
            skipped.append((str(root / IMAGES_DIR / seq.subject / seq.sequence), NO_LABEL_REASON))
            continue
        rows += _peak_rows(root, seq, peak, peak_frames)
    if not rows:
        raise DataError(
            f"{root}: no labelled sequence: no {EMOTION_DIR}/ or {FACS_DIR}/ label file "
            f"matches a sequence in {IMAGES_DIR}/"
        )
    return RawImport(_merge_demographics(_to_frame(rows), root), skipped, "ckplus", root, root)


def find_ckplus_root(path: Path) -> Path | None:
    """The CK+ root at or just inside `path`, since unzipping CK+ often adds a `CK+/` level."""
    if not path.is_dir():
        return None
    if (path / IMAGES_DIR).is_dir():
        return path
    children = visible_dirs(path)
    if len(children) == 1 and (children[0] / IMAGES_DIR).is_dir():
        return children[0]
    return None


def _resolve_root(path: Path) -> Path:
    if not path.exists():
        raise DataError(f"{path}: folder not found")
    root = find_ckplus_root(path)
    if root is None:
        raise DataError(f"{path}: not a CK+ folder: no {IMAGES_DIR}/ folder inside")
    return root.resolve()


# %% images


def _scan_images(root: Path, skipped: list[tuple[str, str]]) -> dict[tuple[str, str], _Sequence]:
    """Every sequence folder of cohn-kanade-images/SUBJECT/SEQUENCE with its frames."""
    sequences: dict[tuple[str, str], _Sequence] = {}
    for subject_dir in visible_dirs(root / IMAGES_DIR):
        for seq_dir in visible_dirs(subject_dir):
            frames = _scan_frames(seq_dir, skipped)
            if frames:
                seq = _Sequence(subject_dir.name, seq_dir.name, frames)
                sequences[seq.key] = seq
            else:
                skipped.append((str(seq_dir), NO_IMAGES_REASON))
    if not sequences:
        raise DataError(f"{root / IMAGES_DIR}: no images found (expected SUBJECT/SEQUENCE/*.png)")
    return sequences


def _scan_frames(seq_dir: Path, skipped: list[tuple[str, str]]) -> dict[int, Path]:
    frames: dict[int, Path] = {}
    for path in sorted(seq_dir.iterdir()):
        if is_hidden(path) or path.is_dir():
            continue
        match = _FRAME_NUMBER.search(path.stem)
        if path.suffix.lower() not in IMAGE_SUFFIXES or match is None:
            skipped.append((str(path), NOT_A_FRAME_REASON))
            continue
        frame = int(match.group(1))
        if frame in frames:
            raise DataError(f"{path}: frame {frame} also stored as {frames[frame].name}")
        frames[frame] = path
    return dict(sorted(frames.items()))


# %% label files


def _label_files(folder: Path, suffix: str) -> _LabelFiles:
    """The one label file of each sequence under `folder` (Emotion/ or FACS/), if any.

    Both folders are optional: a CK+ copy without Emotion/ is still useful for AUs.
    """
    files: _LabelFiles = {}
    if not folder.is_dir():
        return files
    for path in sorted(folder.glob(f"*/*/*{suffix}")):
        if is_hidden(path):
            continue
        match = _FRAME_NUMBER.search(path.name[: -len(suffix)])
        if match is None:
            raise DataError(
                f"{path}: cannot tell the frame from the file name (expected e.g. S005_001_00000011{suffix})"
            )
        key = (path.parent.parent.name, path.parent.name)
        if key in files:
            raise DataError(f"{path}: a second label file for one sequence ({files[key][1].name})")
        files[key] = (int(match.group(1)), path)
    return files


def _check_label_targets(files: _LabelFiles, sequences: dict[tuple[str, str], _Sequence]) -> None:
    """A label file must name an existing frame, or its labels would land on the wrong image."""
    for (subject, sequence), (frame, path) in files.items():
        images = f"{IMAGES_DIR}/{subject}/{sequence}"
        if (subject, sequence) not in sequences:
            raise DataError(f"{path}: labels a sequence with no images ({images} is missing)")
        if frame not in sequences[subject, sequence].frames:
            raise DataError(f"{path}: labels frame {frame}, but {images} has no image for it")


def _peak_labels(emotion_file: tuple[int, Path] | None, facs_file: tuple[int, Path] | None) -> _PeakLabels | None:
    if emotion_file is None and facs_file is None:
        return None
    ck_emotion = emotion = None
    if emotion_file is not None:
        ck_emotion, emotion = _read_emotion_code(emotion_file[1])
    aus = _read_aus(facs_file[1]) if facs_file is not None else None
    frame = max(entry[0] for entry in (emotion_file, facs_file) if entry is not None)
    return _PeakLabels(frame, ck_emotion, emotion, aus)


def _read_emotion_code(path: Path) -> tuple[str, str | None]:
    code = _read_label(read_emotion, path)
    try:
        return labels.emotion_from_code(code)
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from None


def _read_aus(path: Path) -> frozenset[int]:
    """AU codes present at the peak; intensity 0 means present but not intensity-coded."""
    return frozenset(code for code, _ in _read_label(read_facs, path))


def _read_label(reader: Callable[[Path], _T], path: Path) -> _T:
    """Run a ckformat reader, turning its ValueError into a DataError that names the file."""
    try:
        return reader(path)
    except (ValueError, OSError) as exc:
        message = str(exc)
        if str(path) not in message:
            message = f"{path}: {message}"
        raise DataError(message) from None


# %% rows


def _peak_rows(root: Path, seq: _Sequence, peak: _PeakLabels, peak_frames: int) -> list[dict[str, Any]]:
    """One row per frame of the peak window: the `peak_frames` frames ending at the label.

    In CK+ the labelled frame is the sequence's last, so this is its last `peak_frames`.
    Each row records how many frames it lies before the peak (`peak_distance`, 0 = peak),
    counted in images of the sequence, so a frame with weaker expression can weigh less.
    """
    window = [f for f in seq.frames if f <= peak.frame][-peak_frames:]
    landmarks_dir = root / LANDMARKS_DIR / seq.subject / seq.sequence
    rows = []
    for distance, frame in zip(range(len(window) - 1, -1, -1), window, strict=True):
        image = seq.frames[frame]
        landmarks = landmarks_dir / f"{image.stem}_landmarks.txt"
        rows.append(
            {
                "path": str(image),
                "subject": seq.subject,
                "sequence": seq.sequence,
                "frame": frame,
                "ck_emotion": peak.ck_emotion,
                "emotion": peak.emotion,
                "landmarks": str(landmarks) if landmarks.is_file() else None,
                PEAK_DISTANCE: distance,
                "aus": peak.aus,
            }
        )
    return rows


def _to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows to a table with one AU column per code seen anywhere.

    CK+ FACS coding is complete for the peak frame, so an AU absent from a sequence's file
    is a real 0, while a sequence without a FACS file gets NaN (unknown, masked in the loss).
    """
    codes = sorted(set().union(*(r["aus"] for r in rows if r["aus"] is not None)))
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "aus"} for r in rows])
    table = table.astype(object).where(table.notna(), pd.NA)
    for code in codes:
        table[labels.au_column(code)] = [np.nan if r["aus"] is None else float(code in r["aus"]) for r in rows]
    return table


def _merge_demographics(table: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Age, sex and ethnicity per subject from the optional subjects.csv at the CK+ root."""
    path = root / SUBJECTS_FILE
    if not path.is_file():
        return table
    demographics = read_demographics(path)
    for column in DEMOGRAPHIC_COLUMNS:
        if column in demographics.columns:
            table[column] = table["subject"].map(demographics[column])
    return table
