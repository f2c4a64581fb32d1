"""`ckrun data describe`: compute a manifest's description, draw it, and write it to a folder.

The folder holds ``summary.md`` (for a researcher, `ckrun.data.summary_md`), ``numbers.json``
(for scripts and reports) and the figures (`ckrun.figures.dataset`); `FILES` names them.
The numbers come from `ckrun.data.explore`; the report's dataset card calls `describe` too,
so it and the command never disagree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ckrun.config import TrainConfig

from ckrun import outdir
from ckrun.data.explore import DatasetDescription, compute_description
from ckrun.data.summary_md import render_summary
from ckrun.figures.dataset import (
    plot_au_correlation,
    plot_au_frequency,
    plot_emotion_au,
    plot_emotion_counts,
    plot_image_sizes,
)

FILES = {
    "summary": "summary.md",
    "numbers": "numbers.json",
    "emotion_counts": "emotion_counts.png",
    "image_sizes": "image_sizes.png",
    "au_frequency": "au_frequency.png",
    "au_correlation": "au_correlation.png",
    "emotion_au": "emotion_au.png",
}


def describe(
    manifest: pd.DataFrame,
    out_dir: Path,
    *,
    image_sample: int | None = None,
    progress: bool = False,
    faces: TrainConfig | None = None,
    faces_per_class: int = 6,
) -> DatasetDescription:
    """Write ``summary.md``, ``numbers.json`` and figures for `manifest` into `out_dir`.

    `image_sample` bounds how many image headers are read (a fixed random sample, so
    repeated runs agree); ``None`` reads them all, which is cheap since pixels are never
    decoded. With `faces` (a run config), it also draws sample faces per emotion as that
    config's model would see them, after its augmentation, and one CK+ sequence
    (`ckrun.data.face_grid`).
    """
    desc = compute_description(manifest, image_sample=image_sample, progress=progress)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    desc.files.update(_write_figures(desc, out_dir))
    if faces is not None and faces_per_class > 0:
        from ckrun.data.face_grid import write_face_grids

        desc.files.update(write_face_grids(manifest, faces, out_dir, per_class=faces_per_class))
    desc.files["numbers"] = out_dir / FILES["numbers"]
    desc.files["summary"] = out_dir / FILES["summary"]
    desc.files["numbers"].write_text(json.dumps(numbers_json(desc), indent=2, allow_nan=False) + "\n")
    desc.files["summary"].write_text(render_summary(desc))
    return desc


def describe_into(
    manifest: pd.DataFrame,
    out_dir: Path,
    *,
    progress: bool = False,
    faces: TrainConfig | None = None,
    faces_per_class: int = 6,
) -> DatasetDescription:
    """`ckrun data describe`: `describe` built aside and moved into `out_dir` whole.

    `out_dir` is the user's choice (``reports/dataset`` by default): like a report, it may hold
    their own files, so only the files the previous description listed are replaced, and a
    non-empty folder without that list is refused (`ckrun.outdir`).
    """
    out_dir = Path(out_dir)
    with outdir.staged(out_dir, outdir.DESCRIPTION) as staging:
        desc = describe(manifest, staging, progress=progress, faces=faces, faces_per_class=faces_per_class)
    desc.files = {key: out_dir / path.relative_to(staging) for key, path in desc.files.items()}
    return desc


def _write_figures(desc: DatasetDescription, out_dir: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    if desc.emotion_counts:
        files["emotion_counts"] = plot_emotion_counts(
            desc.emotion_counts,
            out_dir / FILES["emotion_counts"],
            fine_counts=desc.ck_emotion_counts or None,
        )
    if desc.images is not None and desc.images.sizes:
        files["image_sizes"] = plot_image_sizes(desc.images.sizes, desc.images.modes, out_dir / FILES["image_sizes"])
    if desc.au_frequency is not None:
        files["au_frequency"] = plot_au_frequency(desc.au_frequency["positives"], out_dir / FILES["au_frequency"])
    if desc.au_correlation is not None and desc.au_correlation.shape[0] > 1:
        files["au_correlation"] = plot_au_correlation(desc.au_correlation, out_dir / FILES["au_correlation"])
    if desc.emotion_au is not None:
        files["emotion_au"] = plot_emotion_au(desc.emotion_au, out_dir / FILES["emotion_au"])
    return files


# %% numbers.json


def numbers_json(desc: DatasetDescription) -> dict[str, Any]:
    """The numbers as plain JSON types (NaN becomes null) for ``numbers.json``."""
    pairs = desc.strongest_pairs
    return _jsonable(
        {
            "counts": desc.counts,
            "emotion_counts": desc.emotion_counts,
            "ck_emotion_counts": desc.ck_emotion_counts,
            "imbalance_ratio": desc.imbalance_ratio,
            "majority_class": desc.majority_class,
            "minority_class": desc.minority_class,
            "images": None if desc.images is None else vars(desc.images),
            "au_frequency": _frame_to_dict(desc.au_frequency),
            "au_correlation": _frame_to_dict(desc.au_correlation),
            "strongest_pairs": None
            if pairs is None
            else {
                "positive": pairs.positive.to_dict(orient="records"),
                "negative": pairs.negative.to_dict(orient="records"),
            },
            "emotion_au": _frame_to_dict(desc.emotion_au),
            "splits": _frame_to_dict(desc.splits),
            "split_subject_overlap": desc.split_subject_overlap,
            "demographics": {k: _frame_to_dict(v) for k, v in desc.demographics.items()},
            "limitations": desc.limitations,
            "notes": desc.notes,
            "files": {k: str(v) for k, v in desc.files.items()},
        }
    )


def _frame_to_dict(frame: pd.DataFrame | None) -> dict[str, Any] | None:
    """Row-keyed nested dict, the shape reports look numbers up by (``[row][column]``)."""
    if frame is None:
        return None
    return {str(k): v for k, v in frame.to_dict(orient="index").items()}


def _jsonable(value: Any) -> Any:
    """Recursively convert numpy/pandas scalars and NaN into plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    return value
