"""Explanations of a model's answers on individual faces: Grad-CAM maps and AU region shares.

For each face (as the model sees it: cropped, resized, before normalisation) this computes the
Grad-CAM map of the predicted emotion and of every AU output, and, where the image has CK+
landmarks, how much of each AU's map falls inside that AU's facial region. The share is read
beside the region's own share of the face (what an attribution spread evenly would give), so
a model that "detects AU12" from the forehead shows a share near zero against an area of ~10%.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ckrun.data import ckformat
from ckrun.data.pipeline import normalise
from ckrun.errors import DataError
from ckrun.explain.gradcam import AU_HEAD, EMOTION_HEAD, gradcam
from ckrun.explain.regions import au_shares, region_masks, to_face_coordinates

if TYPE_CHECKING:
    from ckrun.predict import Predictor

SHARE_COLUMNS = ("path", "au", "region", "predicted", "probability", "share", "region_area")


@dataclass
class FaceExplanation:
    path: str
    face: np.ndarray  # (S, S, C) uint8, what the model read
    emotion: str
    emotion_probability: float
    emotion_map: np.ndarray  # (S, S) Grad-CAM of the predicted class
    au_maps: dict[str, np.ndarray]  # every AU output's map
    au_probabilities: dict[str, float]
    predicted_aus: list[str]
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # region masks (empty without landmarks)
    shares: dict[str, tuple[str, float, float]] = field(default_factory=dict)  # AU -> (region, share, area)

    @property
    def stem(self) -> str:
        return Path(self.path).stem


def explain_faces(
    predictor: Predictor,
    faces: np.ndarray,
    paths: Sequence[str],
    points: Sequence[np.ndarray | None] | None = None,
) -> list[FaceExplanation]:
    """Explanations of uint8 `faces`; `points` are 68 landmarks per face in face pixels (or None)."""
    prep = predictor.prep
    if len(faces) == 0:
        return []
    probs = predictor.probabilities(faces)
    x = normalise(faces, prep).numpy()
    classes, aus = list(prep.classes), list(prep.aus)
    targets = [(EMOTION_HEAD, j) for j in range(len(classes))] + [(AU_HEAD, j) for j in range(len(aus))]
    maps = gradcam(predictor.model, x, targets)
    thresholds = np.asarray(prep.thresholds or [0.5] * len(aus), float)
    points = list(points) if points is not None else [None] * len(faces)
    out = []
    for i, path in enumerate(paths):
        top = int(np.argmax(probs["emotion"][i]))
        au_maps = {au: maps[i, len(classes) + j] for j, au in enumerate(aus)}
        au_probs = {au: float(probs["aus"][i, j]) for j, au in enumerate(aus)}
        explanation = FaceExplanation(
            path=str(path),
            face=np.asarray(faces[i])[..., : prep.channels],  # the face itself, not its neutral reference
            emotion=classes[top],
            emotion_probability=float(probs["emotion"][i, top]),
            emotion_map=maps[i, top],
            au_maps=au_maps,
            au_probabilities=au_probs,
            predicted_aus=[au for j, au in enumerate(aus) if au_probs[au] >= thresholds[j]],
        )
        if points[i] is not None:
            explanation.masks = region_masks(np.asarray(points[i]), prep.image_size)
            explanation.shares = au_shares(au_maps, explanation.masks)
        out.append(explanation)
    return out


def face_landmarks(files: Sequence[str | None], matrices: np.ndarray) -> list[np.ndarray | None]:
    """Landmarks of each image in face pixels (through its placement), None where there is no file."""
    out: list[np.ndarray | None] = []
    for file, matrix in zip(files, matrices, strict=True):
        if file is None or (not isinstance(file, str | Path)) or str(file) == "":
            out.append(None)
            continue
        try:
            points = ckformat.read_landmarks(Path(file))
        except (OSError, ValueError) as exc:
            raise DataError(f"{file}: unusable landmark file ({exc})") from None
        out.append(to_face_coordinates(points, matrix))
    return out


def explain_paths(
    predictor: Predictor,
    paths: Sequence[str | Path],
    landmarks: Sequence[str | None] | None = None,
    neutral: str | Path | None = None,
) -> list[FaceExplanation]:
    """Explanations of image files with the model's own crop; CK+ frames find their landmarks by path.

    A model trained with ``reference=neutral`` also needs the person's `neutral` image."""
    names = [str(p) for p in paths]
    faces, files, matrices = predictor.placed_faces(names, landmarks, neutral)
    return explain_faces(predictor, faces, names, face_landmarks(files, matrices))


def share_table(explanations: Sequence[FaceExplanation]) -> pd.DataFrame:
    """One row per (image, AU with a region): the region, whether predicted, and the shares."""
    rows: list[dict[str, Any]] = []
    for e in explanations:
        for au, (region, share, area) in e.shares.items():
            rows.append(
                dict(
                    path=e.path,
                    au=au,
                    region=region,
                    predicted=int(au in e.predicted_aus),
                    probability=e.au_probabilities[au],
                    share=share,
                    region_area=area,
                )
            )
    return pd.DataFrame(rows, columns=list(SHARE_COLUMNS))


def share_summary(table: pd.DataFrame) -> dict[str, Any]:
    """Per AU the mean share where it was predicted (and the region's mean area); their macro mean."""
    predicted = table.loc[(table["predicted"] == 1) & table["share"].notna()] if len(table) else table
    per_au: dict[str, dict[str, Any]] = {}
    for au, rows in predicted.groupby("au", sort=False):
        per_au[str(au)] = {
            "region": str(rows["region"].iloc[0]),
            "images": len(rows),
            "share": float(rows["share"].mean()),
            "region_area": float(rows["region_area"].mean()),
        }
    shares = [float(v["share"]) for v in per_au.values()]
    return {
        "per_au": per_au,
        "macro_share": float(np.mean(shares)) if shares else None,
        "images": int(table["path"].nunique()) if len(table) else 0,
    }
