"""Tiny CK+ trees in the exact official layout, for tests that must not need the real data.

Images are small plain PIL pictures (grey and RGB, like CK+'s mix); label files are written
with ckformat's writers, so they are byte-compatible with CK+'s MATLAB-style text.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ckrun.data import ckformat


@dataclass(frozen=True)
class Seq:
    """One CK+ sequence: what to write and which quirk to include."""

    subject: str = "S005"
    sequence: str = "001"
    n_frames: int = 5
    emotion: float | None = 1  # CK+ code 0-7; None: no Emotion file
    aus: tuple[tuple[int, float], ...] | None = ((4, 3.0), (7, 0.0))  # None: no FACS file
    landmarks: bool = True  # write Landmarks/ files for every frame
    rgb: bool = False
    first_frame: int = 1
    # Emotion/FACS name this frame instead of the last one (None: the last, as in CK+).
    label_frame: int | None = None


# One sequence per CK+ emotion code 1-7 over three subjects, plus the knobs tests need:
# a neutral (code 0) sequence, an emotion-less one, an intensity-0 AU and missing landmarks.
DEFAULT_SEQUENCES: tuple[Seq, ...] = (
    Seq("S005", "001", emotion=1, aus=((4, 3.0), (7, 2.0), (23, 4.0))),
    Seq("S005", "002", emotion=2, aus=((14, 0.0),), rgb=True),  # intensity 0 = present
    Seq("S005", "003", emotion=None, aus=((12, 2.0), (25, 1.0))),  # no Emotion file
    Seq("S010", "001", emotion=3, aus=((9, 3.0), (17, 2.0)), landmarks=False),
    Seq("S010", "002", emotion=4, aus=((1, 2.0), (2, 2.0), (4, 1.0), (20, 3.0), (25, 0.0))),
    Seq("S010", "004", emotion=5, aus=((6, 3.0), (12, 4.0)), rgb=True, n_frames=2),
    Seq("S011", "001", emotion=6, aus=((1, 2.0), (4, 2.0), (15, 3.0))),
    Seq("S011", "002", emotion=7, aus=((1, 3.0), (2, 3.0), (5, 2.0), (26, 4.0))),
    Seq("S011", "003", emotion=0, aus=((43, 0.0),)),  # neutral
)

DEFAULT_DEMOGRAPHICS: dict[str, tuple[int, str, str]] = {
    "S005": (21, "F", "Euro-American"),
    "S010": (27, "M", "Afro-American"),
    "S011": (19, "F", "Asian"),
}


def write_image(path: Path, *, rgb: bool = False, size: tuple[int, int] = (32, 24)) -> Path:
    """A small valid PNG/JPEG (format from the suffix) with a gradient, so it is not blank."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    ramp = np.linspace(0, 255, width * height, dtype=np.float64).reshape(height, width)
    grey = ramp.astype(np.uint8)
    pixels = np.stack([grey, grey[::-1], 255 - grey], axis=-1) if rgb else grey
    Image.fromarray(pixels).save(path)
    return path


def corrupt(path: Path) -> Path:
    """Overwrite `path` with bytes no image decoder accepts."""
    path.write_bytes(b"this is not an image\x00\x01\x02")
    return path


def write_sequence(root: Path, seq: Seq) -> list[Path]:
    """Images, Landmarks, Emotion and FACS files of one sequence; returns the image paths."""
    frames = range(seq.first_frame, seq.first_frame + seq.n_frames)
    images = []
    for frame in frames:
        image = ckformat.image_path(root, seq.subject, seq.sequence, frame)
        images.append(write_image(image, rgb=seq.rgb))
        if seq.landmarks:
            points = np.column_stack([np.arange(68.0), np.arange(68.0) + frame])
            path = ckformat.landmarks_path(root, seq.subject, seq.sequence, frame)
            ckformat.write_landmarks(path, points)
    label_frame = seq.label_frame if seq.label_frame is not None else frames[-1]
    if seq.emotion is not None:
        path = ckformat.emotion_path(root, seq.subject, seq.sequence, label_frame)
        ckformat.write_emotion(path, seq.emotion)  # type: ignore[arg-type]
    if seq.aus is not None:
        path = ckformat.facs_path(root, seq.subject, seq.sequence, label_frame)
        ckformat.write_facs(path, seq.aus)
    return images


def write_subjects_csv(root: Path, demographics: dict[str, tuple[int, str, str]]) -> Path:
    path = root / ckformat.SUBJECTS_FILE
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject", "age", "sex", "ethnicity"])
        for subject, (age, sex, ethnicity) in demographics.items():
            writer.writerow([subject, age, sex, ethnicity])
    return path


def write_ckplus(
    root: Path,
    sequences: Iterable[Seq] | None = None,
    *,
    demographics: dict[str, tuple[int, str, str]] | None = None,
    stray_files: bool = True,
) -> Path:
    """Write a CK+ tree under `root` (default: DEFAULT_SEQUENCES) and return `root`.

    `stray_files` adds the .DS_Store and ._* debris real CK+ copies from macOS carry.
    """
    root.mkdir(parents=True, exist_ok=True)
    seqs: Sequence[Seq] = tuple(DEFAULT_SEQUENCES if sequences is None else sequences)
    for seq in seqs:
        write_sequence(root, seq)
    if demographics is not None:
        write_subjects_csv(root, demographics)
    if stray_files and seqs:
        first = seqs[0]
        for folder in (
            root / ckformat.IMAGES_DIR,
            root / ckformat.IMAGES_DIR / first.subject,
            root / ckformat.IMAGES_DIR / first.subject / first.sequence,
            root / ckformat.EMOTION_DIR / first.subject / first.sequence,
        ):
            if folder.is_dir():
                (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        facs_dir = root / ckformat.FACS_DIR / first.subject / first.sequence
        if facs_dir.is_dir():
            (facs_dir / f"._{first.subject}_{first.sequence}_00000001_facs.txt").write_bytes(b"\x00\x05\x16\x07")
    return root


def peak_count(seqs: Iterable[Seq], peak_frames: int) -> int:
    """Rows the importer should produce: min(frames, peak_frames) per labelled sequence."""
    return sum(min(s.n_frames, peak_frames) for s in seqs if s.emotion is not None or s.aus is not None)
