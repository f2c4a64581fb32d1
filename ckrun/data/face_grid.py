"""Look at the data: sample faces per emotion as the model sees them, augmented, and one sequence.

Faces are cut with the same decided crop and alignment a training run would use
(`FaceCache.resolve` → `geometry.placements` → `decode.decode_faces`, the one public path from
a file to model pixels), so the grid shows exactly what the network reads; the augmented grid
applies the training augmentation of the given config to those same faces. For CK+ data one
whole sequence (every frame from the neutral first to the apex, at most `SEQUENCE_FRAMES`
evenly spaced) shows the expression building up.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ckrun.data.labels import EMOTION_CLASSES

if TYPE_CHECKING:
    from ckrun.config import TrainConfig
    from ckrun.data.pipeline import Preprocessing

FILES = {
    "faces_by_class": "faces_by_class.png",
    "faces_augmented": "faces_augmented.png",
    "face_sequence": "face_sequence.png",
}
SEQUENCE_FRAMES = 10


def _preprocessing(manifest: pd.DataFrame, cfg: TrainConfig) -> Preprocessing:
    from ckrun.data.pipeline import FaceCache, Preprocessing

    prep = Preprocessing(cfg.image_size, cfg.channels, cfg.crop, cfg.crop_margin, align=cfg.align)
    return FaceCache("memory").resolve(manifest, prep)


def model_faces(rows: pd.DataFrame, prep: Preprocessing) -> np.ndarray:
    """(N, S, S, C) uint8 faces of `rows`, placed as training places them."""
    from ckrun.data.decode import decode_faces
    from ckrun.data.geometry import placements

    paths = rows["path"].astype(str).tolist()
    landmarks = rows["landmarks"].tolist() if "landmarks" in rows else [None] * len(paths)
    matrices = placements(paths, landmarks, prep.geometry, prep.image_size)
    return decode_faces(paths, matrices, prep.image_size, prep.channels)


def sample_rows(manifest: pd.DataFrame, per_class: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Up to `per_class` rows per emotion class, one per subject first (a fixed random draw)."""
    out = {}
    for cls in EMOTION_CLASSES:
        rows = manifest.loc[manifest["emotion"].astype("string") == cls]
        if rows.empty:
            continue
        rows = rows.sample(frac=1.0, random_state=seed)
        first = rows.drop_duplicates("subject") if "subject" in rows else rows
        out[cls] = pd.concat([first, rows.drop(first.index)]).head(per_class)
    return out


def augmented(faces: np.ndarray, cfg: TrainConfig, seed: int = 0) -> np.ndarray:
    """The training augmentation of `cfg` applied once to uint8 `faces` (unchanged if it is off)."""
    import tensorflow as tf

    from ckrun.data.pipeline import Augmentation, augment_batch

    aug = Augmentation(cfg.rotation, cfg.shift, cfg.zoom, cfg.flip, cfg.brightness, cfg.contrast)
    if not cfg.augment or not aug.enabled or len(faces) == 0:
        return faces
    out = augment_batch(tf.constant(faces, tf.float32), tf.constant([seed, 1], tf.int32), aug)
    return np.clip(np.round(out.numpy()), 0, 255).astype(np.uint8)


def _sequence_rows(manifest: pd.DataFrame) -> tuple[str, pd.DataFrame] | None:
    """The frames of one labelled CK+ sequence (the first of the best-represented class)."""
    from ckrun.data.sequences import sequence_frames

    if "sequence" not in manifest or (manifest["sequence"].astype(str) == "").all():
        return None
    labelled = manifest.loc[manifest["emotion"].notna() & (manifest["sequence"].astype(str) != "")]
    if labelled.empty:
        return None
    first = labelled.sort_values(["subject", "sequence", "frame"]).iloc[0]
    part = labelled.loc[(labelled["subject"] == first["subject"]) & (labelled["sequence"] == first["sequence"])]
    frames = sequence_frames(part)
    keep = np.unique(np.round(np.linspace(0, len(frames) - 1, min(SEQUENCE_FRAMES, len(frames)))).astype(int))
    label = f"{first['subject']}/{first['sequence']} ({first['emotion']})"
    return label, frames.iloc[keep]


def write_face_grids(manifest: pd.DataFrame, cfg: TrainConfig, out_dir: Path, *, per_class: int = 6) -> dict[str, Path]:
    """``faces_by_class.png``, ``faces_augmented.png`` and, for CK+, ``face_sequence.png`` in `out_dir`."""
    from ckrun.figures.images import plot_face_grid

    if per_class <= 0 or "emotion" not in manifest:
        return {}
    rows = sample_rows(manifest, per_class, cfg.seed)
    if not rows:
        return {}
    prep = _preprocessing(manifest, cfg)
    faces = {cls: model_faces(r, prep) for cls, r in rows.items()}
    size = f"{prep.image_size} px, crop {prep.crop}, align {prep.align}"
    files = {
        "faces_by_class": plot_face_grid(
            faces, Path(out_dir) / FILES["faces_by_class"], title=f"Faces as the model sees them ({size})"
        ),
        "faces_augmented": plot_face_grid(
            {cls: augmented(f, cfg, cfg.seed + i) for i, (cls, f) in enumerate(faces.items())},
            Path(out_dir) / FILES["faces_augmented"],
            title="The same faces after training augmentation" + ("" if cfg.augment else " (augment=false: none)"),
        ),
    }
    sequence = _sequence_rows(manifest)
    if sequence is not None:
        label, frames = sequence
        files["face_sequence"] = plot_face_grid(
            {label: list(model_faces(frames, prep))},
            Path(out_dir) / FILES["face_sequence"],
            title="One sequence, neutral (left) to apex (right)",
        )
    return files
