"""Per-image predictions as a table: what every later judgement of a run is computed from.

Confidence intervals, `ckrun compare`, calibration, the EMFACS check and the report's
recomputations need, per test image, who it shows (subject, sequence), what is true and what
the model said (probabilities and the thresholds it applied). Logged as
``predictions/{split}.csv`` by every train, baseline and evaluate run, this table lets all of
them run without the model or the images, months later, on another machine.

Columns, in order (names as `ckrun predict` writes them, plus truth and identity):
``path, subject, sequence, frame, ck_emotion`` (identity; missing ones empty),
``emotion_true`` (class or empty), ``emotion`` (predicted class), ``p_<class>`` per class,
then per AU ``<AU>_true`` (1/0, empty when not coded), ``<AU>_prob``, ``<AU>`` (0/1 decision)
and ``<AU>_threshold`` (the threshold that decision used).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ckrun.data.labels import EMOTION_CLASSES, is_au_column
from ckrun.errors import DataError

IDENTITY_COLUMNS = ("path", "subject", "sequence", "frame", "ck_emotion")


def prediction_table(
    rows: pd.DataFrame,
    labels: dict[str, np.ndarray],
    probs: dict[str, np.ndarray],
    aus: Sequence[str],
    thresholds: Sequence[float] | np.ndarray,
) -> pd.DataFrame:
    """One row per image of `rows` (manifest rows in the order the arrays hold them)."""
    n = len(rows)
    out = pd.DataFrame(index=range(n))
    for column in IDENTITY_COLUMNS:
        out[column] = rows[column].to_numpy() if column in rows.columns else pd.NA
    onehot = np.asarray(labels["emotion"])
    known = onehot.sum(axis=1) > 0
    emotion = np.asarray(probs["emotion"], float)
    out["emotion_true"] = pd.array(
        [EMOTION_CLASSES[i] if k else pd.NA for i, k in zip(onehot.argmax(axis=1), known, strict=True)],
        dtype="string",
    )
    out["emotion"] = [EMOTION_CLASSES[i] for i in emotion.argmax(axis=1)] if n else []
    for j, name in enumerate(EMOTION_CLASSES):
        out[f"p_{name}"] = emotion[:, j]
    targets = np.asarray(labels["aus"])[:, : len(aus)]
    au_probs = np.asarray(probs["aus"], float)[:, : len(aus)]
    thresholds = np.asarray(thresholds, float)
    for j, au in enumerate(aus):
        out[f"{au}_true"] = pd.array(np.where(targets[:, j] >= 0, targets[:, j], np.nan)).astype("Int64")
        out[f"{au}_prob"] = au_probs[:, j]
        out[au] = (au_probs[:, j] >= thresholds[j]).astype("int64")
        out[f"{au}_threshold"] = float(thresholds[j])
    return out


@dataclass
class Predictions:
    """A predictions table read back as the arrays metrics take (masks as in the pipeline)."""

    frame: pd.DataFrame
    aus: list[str]
    emotion_targets: np.ndarray  # class index, -1 unknown
    emotion_probs: np.ndarray  # (n, classes)
    au_targets: np.ndarray  # (n, aus) 1/0, -1 unknown
    au_probs: np.ndarray  # (n, aus)
    thresholds: np.ndarray  # (aus,)

    @property
    def subjects(self) -> np.ndarray:
        """Subject per row; an image without a subject is its own group (never pooled with others)."""
        subject = self.frame["subject"].astype("string")
        fallback = "image:" + self.frame["path"].astype("string")
        return subject.fillna(fallback).to_numpy(dtype=str)

    @property
    def au_decisions(self) -> np.ndarray:
        return (self.au_probs >= self.thresholds[None, :]).astype(int)

    @property
    def emotion_predictions(self) -> np.ndarray:
        return self.emotion_probs.argmax(axis=1) if len(self.emotion_probs) else np.zeros(0, int)

    def labels(self) -> dict[str, np.ndarray]:
        """Labels in the pipeline's encoding (one-hot emotion, -1 masked AUs)."""
        onehot = np.zeros((len(self.frame), len(EMOTION_CLASSES)), np.float32)
        known = self.emotion_targets >= 0
        onehot[np.flatnonzero(known), self.emotion_targets[known]] = 1.0
        return {"emotion": onehot, "aus": self.au_targets.astype(np.float32)}

    def probs(self) -> dict[str, np.ndarray]:
        return {"emotion": self.emotion_probs, "aus": self.au_probs}

    def subset(self, aus: Sequence[str]) -> Predictions:
        """The same images with only `aus` (in that order), for comparing runs on shared AUs."""
        index = [self.aus.index(a) for a in aus]
        return Predictions(
            self.frame,
            list(aus),
            self.emotion_targets,
            self.emotion_probs,
            self.au_targets[:, index],
            self.au_probs[:, index],
            self.thresholds[index],
        )

    def reordered(self, paths: Sequence[str]) -> Predictions:
        """Rows in the order of `paths` (every path must be present once)."""
        position = pd.Series(np.arange(len(self.frame)), index=self.frame["path"].astype(str))
        order = position.loc[list(paths)].to_numpy()
        return Predictions(
            self.frame.iloc[order].reset_index(drop=True),
            self.aus,
            self.emotion_targets[order],
            self.emotion_probs[order],
            self.au_targets[order],
            self.au_probs[order],
            self.thresholds,
        )


def read_predictions(frame: pd.DataFrame, source: str = "predictions") -> Predictions:
    """Arrays from a table written by `prediction_table` (a CSV read back, or the frame itself)."""
    missing = [c for c in ("path", "subject", "emotion_true", *(f"p_{c}" for c in EMOTION_CLASSES)) if c not in frame]
    if missing:
        raise DataError(f"{source}: not a ckrun predictions table (missing {', '.join(missing)})")
    aus = [c.removesuffix("_prob") for c in frame.columns if c.endswith("_prob") and is_au_column(c[: -len("_prob")])]
    index = {name: i for i, name in enumerate(EMOTION_CLASSES)}
    truth = frame["emotion_true"].astype("string")
    emotion_targets = truth.map(index).fillna(-1).astype(int).to_numpy()
    emotion_probs = frame[[f"p_{c}" for c in EMOTION_CLASSES]].to_numpy(float)
    n = len(frame)
    au_targets = np.full((n, len(aus)), -1.0)
    au_probs = np.zeros((n, len(aus)))
    thresholds = np.full(len(aus), 0.5)
    for j, au in enumerate(aus):
        values = pd.to_numeric(frame[f"{au}_true"], errors="coerce").to_numpy(float)
        au_targets[:, j] = np.where(np.isnan(values), -1.0, (values > 0).astype(float))
        au_probs[:, j] = frame[f"{au}_prob"].to_numpy(float)
        if f"{au}_threshold" in frame and n:
            thresholds[j] = float(frame[f"{au}_threshold"].iloc[0])
    return Predictions(
        frame.reset_index(drop=True), aus, emotion_targets, emotion_probs, au_targets, au_probs, thresholds
    )


def read_predictions_csv(text: str, source: str) -> Predictions:
    import io

    frame = pd.read_csv(io.StringIO(text), dtype={"subject": "string", "sequence": "string", "path": "string"})
    return read_predictions(frame, source)
