"""Whole CK+ sequences behind a manifest's peak rows: every frame from neutral to apex, in order.

The manifest keeps only the labelled peak frames of each sequence; the frames before them
(the expression building up from a neutral face) sit in the same folder. `sequence_frames`
lists them for the sequences of a manifest part, with each frame's normalised position
(0 = the first, neutral frame, 1 = the apex, CK+'s labelled frame) and the sequence's peak
labels, so a model can be scored along the onset of an expression.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ckrun.data import faces
from ckrun.data.importers.files import IMAGE_SUFFIXES, is_hidden
from ckrun.data.labels import au_columns
from ckrun.errors import DataError

_FRAME_NUMBER = re.compile(r"_(\d+)$")
LABEL_COLUMNS = ("ck_emotion", "emotion", "emotion_num")


def frames_in(folder: Path) -> dict[int, Path]:
    frames = {}
    for path in sorted(folder.iterdir()):
        match = _FRAME_NUMBER.search(path.stem)
        if path.is_file() and not is_hidden(path) and path.suffix.lower() in IMAGE_SUFFIXES and match:
            frames[int(match.group(1))] = path
    return dict(sorted(frames.items()))


def sequence_frames(part: pd.DataFrame) -> pd.DataFrame:
    """One row per frame (first to apex) of every sequence in `part`, ordered by sequence then frame.

    Columns: path, subject, sequence, frame, index, n_frames, position, landmarks, and the
    sequence's peak labels (emotion and AU columns, as on its peak rows).
    """
    if part.empty:
        return pd.DataFrame(columns=["path", "subject", "sequence", "frame", "index", "n_frames", "position"])
    if "sequence" not in part or (part["sequence"].astype(str) == "").all():
        raise DataError("--sequences needs CK+-style data (subject/sequence/frame); this data has no sequences")
    labels = [c for c in (*LABEL_COLUMNS, *au_columns(list(part.columns))) if c in part.columns]
    rows = []
    for (subject, sequence), peak_rows in part.groupby(["subject", "sequence"], sort=True):
        if str(sequence) == "":
            continue
        apex = peak_rows.loc[peak_rows["frame"].astype(int).idxmax()]
        folder = Path(str(apex["path"])).parent
        if not folder.is_dir():
            raise DataError(f"{folder}: sequence folder not found")
        frames = {f: p for f, p in frames_in(folder).items() if f <= int(apex["frame"])}
        n = len(frames)
        for i, (frame, path) in enumerate(frames.items()):
            landmarks = faces.find_ckplus_landmarks(path)
            rows.append(
                {
                    "path": str(path),
                    "subject": str(subject),
                    "sequence": str(sequence),
                    "frame": frame,
                    "index": i,
                    "n_frames": n,
                    "position": i / (n - 1) if n > 1 else 1.0,
                    "landmarks": str(landmarks) if landmarks is not None else None,
                    **{c: apex[c] for c in labels},
                }
            )
    return pd.DataFrame(rows)
