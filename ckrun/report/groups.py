"""Per-group test scores (sex, ethnicity, age band) of a logged model.

The dataset card can say that CK+ is 69% female; only predictions can say whether the
model is worse for the other 31%. The best run's logged model (with its own preprocessing
and thresholds) predicts the test split it was evaluated on, and the scores are grouped by
the demographic columns the data carries. Without demographics there is nothing to group,
and the section is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ckrun.data.demographics import DEMOGRAPHIC_COLUMNS, age_band
from ckrun.metrics import au_scores, emotion_scores, emotion_targets

if TYPE_CHECKING:
    from ckrun.predict import Predictor

ATTRIBUTE_NAMES = {"sex": "sex", "ethnicity": "ethnicity", "age": "age band"}
_SEX = {"f": "female", "female": "female", "m": "male", "male": "male"}


@dataclass
class GroupScores:
    """One table per attribute: group, subjects, images, emotion accuracy / macro-F1, AU macro-F1."""

    split: str
    tables: dict[str, pd.DataFrame]
    overall: dict[str, float]


def demographic_columns(manifest: pd.DataFrame) -> list[str]:
    """Demographic columns with at least one value (the per-group section needs one)."""
    return [c for c in DEMOGRAPHIC_COLUMNS if c in manifest.columns and manifest[c].notna().any()]


def group_labels(values: pd.Series, attribute: str) -> pd.Series:
    """Readable group per row: 'female', 'Euro-American', '25-34'; missing → 'unknown'."""
    if attribute == "age":
        ages = pd.to_numeric(values, errors="coerce")
        return ages.map(lambda a: "unknown" if pd.isna(a) else age_band(float(a)))
    if attribute == "sex":
        return values.map(lambda v: "unknown" if pd.isna(v) else _SEX.get(str(v).strip().lower(), str(v).strip()))
    return values.map(lambda v: "unknown" if pd.isna(v) else str(v))


def score_groups(
    part: pd.DataFrame,
    probs: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    aus: list[str],
    thresholds: np.ndarray,
    *,
    split: str = "test",
) -> GroupScores:
    """Scores per group from predictions already made for every row of `part`."""

    def scores(mask: np.ndarray) -> dict[str, float]:
        emo, _, _ = emotion_scores(emotion_targets(labels["emotion"][mask]), probs["emotion"][mask])
        au, _ = au_scores(labels["aus"][mask], probs["aus"][mask], thresholds, aus) if aus else ({}, None)
        return {
            "emotion_accuracy": emo.get("emotion_accuracy", np.nan),
            "emotion_f1": emo.get("emotion_f1", np.nan),
            "au_f1": au.get("au_f1", np.nan),
        }

    everything = np.ones(len(part), bool)
    tables = {}
    for attribute in demographic_columns(part):
        groups = group_labels(part[attribute], attribute).to_numpy()
        rows = []
        for group in _group_order(groups, attribute):
            mask = groups == group
            rows.append(
                {
                    "group": group,
                    "subjects": int(part.loc[mask, "subject"].nunique()) if "subject" in part else np.nan,
                    "images": int(mask.sum()),
                    **scores(mask),
                }
            )
        tables[attribute] = pd.DataFrame(rows)
    return GroupScores(split, tables, scores(everything))


def _group_order(groups: np.ndarray, attribute: str) -> list[str]:
    present = list(pd.Series(groups).value_counts().index)
    if attribute == "age":
        present.sort()
    return [g for g in present if g != "unknown"] + (["unknown"] if "unknown" in present else [])


def predict_groups(
    manifest: pd.DataFrame, load_predictor: Callable[[], Predictor], *, split: str = "test"
) -> GroupScores | None:
    """Predict `split` with the model from `load_predictor()` and score every group.

    None when the data has no demographic column or the split is empty, before the model
    is loaded (loading TensorFlow costs seconds).
    """
    from ckrun.data.pipeline import encode_labels

    part = manifest.loc[manifest["split"] == split].reset_index(drop=True)
    if part.empty or not demographic_columns(part):
        return None
    predictor = load_predictor()
    prep = predictor.prep
    images = predictor.faces_of(part)
    probs = predictor.probabilities(images)
    aus = list(prep.aus)
    labels = encode_labels(part, aus)
    labels = {"emotion": np.asarray(labels["emotion"]), "aus": np.asarray(labels["aus"])[:, : len(aus)]}
    thresholds = np.asarray(prep.thresholds or [0.5] * len(aus), float)
    return score_groups(part, probs, labels, aus, thresholds, split=split)
