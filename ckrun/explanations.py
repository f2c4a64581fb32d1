"""Explanations as files: `ckrun explain` into a folder, and a few test faces at the end of a run.

Both write the same things (docs/architecture.md): one overlay PNG per image (the face as the
model sees it, the predicted emotion's Grad-CAM, one panel per predicted AU with its facial
region outlined), ``region_shares.csv`` (every image and AU with a region) and
``summary.json`` (per AU the mean share inside its region where it was predicted). A training
run logs them under ``explanations/`` and the macro share as ``test_gradcam_region_share``
with ``test_gradcam_region_share_<AU>`` per AU.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ckrun import tracking
from ckrun.data.labels import EMOTION_CLASSES
from ckrun.errors import DataError
from ckrun.explain.explainer import FaceExplanation, share_summary, share_table
from ckrun.outdir import taken

if TYPE_CHECKING:
    from ckrun.arrays import SplitArrays
    from ckrun.data.pipeline import Preprocessing

ARTIFACT_DIR = "explanations"
MAX_AU_PANELS = 8
SHARE_METRIC = "test_gradcam_region_share"


@dataclass
class ExplanationFiles:
    overlays: list[Path]
    shares_csv: Path
    summary_json: Path
    summary: dict[str, Any]


def _region_label(region: str) -> str:
    return region.replace("_", " ")


def _panels(e: FaceExplanation) -> list[tuple[str, np.ndarray | None, np.ndarray | None]]:
    panels: list[tuple[str, np.ndarray | None, np.ndarray | None]] = [
        ("face as the model sees it", None, None),
        (f"emotion: {e.emotion} {e.emotion_probability:.2f}", e.emotion_map, None),
    ]
    for au in sorted(e.predicted_aus, key=lambda a: -e.au_probabilities[a])[:MAX_AU_PANELS]:
        label = f"{au} {e.au_probabilities[au]:.2f}"
        mask = None
        if au in e.shares:
            region, share, area = e.shares[au]
            mask = e.masks.get(region)
            if not math.isnan(share):
                label += f"\n{share:.0%} in {_region_label(region)} (area {area:.0%})"
        panels.append((label, e.au_maps[au], mask))
    return panels


def overlay_names(explanations: Sequence[FaceExplanation]) -> list[str]:
    """``NN_<stem>.png`` per image: numbered so two images with one file name never collide."""
    return [f"{i:02d}_{e.stem}.png" for i, e in enumerate(explanations)]


def write_explanations(
    explanations: Sequence[FaceExplanation], out: Path, *, overwrite: bool = False
) -> ExplanationFiles:
    """Overlays, ``region_shares.csv`` and ``summary.json`` in `out`; refuses to replace a file unless told."""
    from ckrun.figures.images import plot_attribution_panels

    out = Path(out)
    names = overlay_names(explanations)
    targets = [out / n for n in names] + [out / "region_shares.csv", out / "summary.json"]
    existing = [t for t in targets if taken(t)]  # a dangling symlink too: writing would follow it
    if existing and not overwrite:
        raise DataError(f"{existing[0]}: already exists (choose another --out folder)")
    out.mkdir(parents=True, exist_ok=True)
    overlays = []
    try:
        for e, name in zip(explanations, names, strict=True):
            overlays.append(plot_attribution_panels(e.face, _panels(e), out / name, title=Path(e.path).name))
        table = share_table(explanations)
        table.to_csv(out / "region_shares.csv", index=False)
        summary = {**share_summary(table), "overlays": names}
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    except BaseException:
        # A write cut short (a signal, a full disk) takes back what it wrote, all of it new
        # (checked above unless `overwrite`): else a rerun into the same folder is refused.
        if not overwrite:
            for target in targets:
                target.unlink(missing_ok=True)
        raise
    return ExplanationFiles(overlays, out / "region_shares.csv", out / "summary.json", summary)


def explain_model_uri(
    model_uri: str, images: Sequence[Path], out: Path, neutral: Path | None = None
) -> ExplanationFiles:
    """`ckrun explain`: load the model, explain `images` with its own preprocessing, write to `out`."""
    from ckrun.explain.explainer import explain_paths

    predictor = tracking.load_predictor(model_uri)
    return write_explanations(explain_paths(predictor, [str(p) for p in images], neutral=neutral), out)


def select_examples(rows: pd.DataFrame, per_class: int) -> list[int]:
    """Row positions of up to `per_class` images per emotion class, from different subjects first."""
    chosen: list[int] = []
    rows = rows.reset_index(drop=True)
    for cls in EMOTION_CLASSES:
        candidates = rows.index[rows["emotion"].astype(str) == cls]
        picked: list[int] = []
        seen: set[str] = set()
        for i in candidates:  # one per subject, then fill
            subject = str(rows.at[i, "subject"])
            if subject not in seen and len(picked) < per_class:
                picked.append(int(i))
                seen.add(subject)
        picked += [int(i) for i in candidates if int(i) not in picked][: per_class - len(picked)]
        chosen += picked
    return chosen


def share_metrics(summary: dict[str, Any]) -> dict[str, float]:
    metrics = {}
    if summary.get("macro_share") is not None:
        metrics[SHARE_METRIC] = float(summary["macro_share"])
    for au, values in summary.get("per_au", {}).items():
        metrics[f"{SHARE_METRIC}_{au}"] = float(values["share"])
    return metrics


def log_run_explanations(models: Any, prep: Preprocessing, test: SplitArrays, per_class: int) -> dict[str, float]:
    """Explain `per_class` test faces per emotion inside the active run; returns the share metrics.

    Labels and probabilities are the run's (its ensemble and test-time augmentation included);
    the maps are the first member's, on the plain face.
    """
    from ckrun.data.geometry import landmark_list, placements
    from ckrun.explain.explainer import explain_faces, face_landmarks
    from ckrun.predict import Predictor

    if per_class <= 0 or test.rows is None or len(test.images) == 0:
        return {}
    picks = select_examples(test.rows, per_class)
    if not picks:
        return {}
    rows = test.rows.iloc[picks]
    paths = rows["path"].astype(str).tolist()
    files = landmark_list(rows["landmarks"].tolist() if "landmarks" in rows else [None] * len(paths))
    points = face_landmarks(files, placements(paths, files, prep.geometry, prep.image_size))
    explanations = explain_faces(Predictor(models, prep), test.images[picks], paths, points)
    with tempfile.TemporaryDirectory() as tmp:
        written = write_explanations(explanations, Path(tmp) / ARTIFACT_DIR)
        for file in [*written.overlays, written.shares_csv, written.summary_json]:
            tracking.log_artifact(file, ARTIFACT_DIR)
    return share_metrics(written.summary)
