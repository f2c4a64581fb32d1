"""Prediction with a trained model and its own preprocessing.

Given only a model (and the `Preprocessing` logged with it), turn image files or bytes into
a labelled table: the emotion with its class probabilities, and per AU the probability
and the yes/no decision at the model's tuned threshold. Used by `ckrun predict`, by the
MLflow pyfunc wrapper (so `mlflow models serve` gives the same answers) and by evaluation.
"""

from __future__ import annotations

import base64
import binascii
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ckrun.calibration import apply_temperatures
from ckrun.data import faces
from ckrun.data.pipeline import Preprocessing, decode_faces, normalise
from ckrun.errors import DataError


class Predictor:
    """A Keras two-headed model plus the preprocessing it was trained with."""

    def __init__(self, model: Any, prep: Preprocessing, config: dict[str, Any] | None = None) -> None:
        self.model, self.prep, self.config = model, prep, config or {}

    @classmethod
    def from_files(cls, keras_file: Path, preprocessing_file: Path, config_file: Path | None = None) -> Predictor:
        import keras
        import yaml

        import ckrun.model.objectives
        import ckrun.model.resnet  # noqa: F401

        model = keras.saving.load_model(keras_file, compile=False)
        config = yaml.safe_load(Path(config_file).read_text()) if config_file else None
        return cls(model, Preprocessing.from_json(Path(preprocessing_file).read_text()), config)

    def landmark_files(
        self, paths: Sequence[str], landmarks: Sequence[str | Path | None] | None = None
    ) -> list[str | None]:
        """The landmark file of each image: as given, or found by path for CK+ frames."""
        missing = [p for p in paths if not Path(p).is_file()]
        if missing:
            raise DataError(f"image not found: {missing[0]}")
        if landmarks is None:
            landmarks = [
                faces.find_ckplus_landmarks(p) if self.prep.crop in ("auto", "landmarks") else None for p in paths
            ]
        return [None if lm is None or pd.isna(lm) or str(lm) == "" else str(lm) for lm in landmarks]

    def boxes(self, paths: Sequence[str], landmarks: Sequence[str | None]) -> np.ndarray:
        """(N, 3) crop boxes (top, left, size) under the model's crop mode."""
        mode = self.prep.crop
        if mode == "landmarks" and any(lm is None for lm in landmarks):
            mode = "auto"  # a new image has no landmark file: fall back to the detector
        return faces.crop_boxes(list(map(str, paths)), list(landmarks), mode, self.prep.crop_margin)

    def faces(self, paths: Sequence[str], landmarks: Sequence[str | Path | None] | None = None) -> np.ndarray:
        """Cropped, resized uint8 faces; CK+ frames find their landmark file by path."""
        found = self.landmark_files(paths, landmarks)
        boxes = self.boxes(paths, found)
        return decode_faces(list(map(str, paths)), boxes, self.prep.image_size, self.prep.channels)

    def probabilities(self, images: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
        """Head outputs for uint8 faces (normalised here), temperature-scaled when the model was calibrated."""
        if len(images) == 0:
            return {"emotion": np.zeros((0, len(self.prep.classes))), "aus": np.zeros((0, len(self.prep.aus)))}
        x = normalise(images, self.prep).numpy()
        out = self.model.predict(x, batch_size=batch_size, verbose=0)
        probs = {"emotion": np.asarray(out["emotion"]), "aus": np.asarray(out["aus"])[:, : len(self.prep.aus)]}
        return apply_temperatures(probs, self.prep.emotion_temperature, self.prep.au_temperatures)

    def table(self, probs: dict[str, np.ndarray]) -> pd.DataFrame:
        """The documented output columns: emotion, p_<class>, <AU>_prob, <AU> (0/1)."""
        emotion = probs["emotion"]
        out = pd.DataFrame({"emotion": [self.prep.classes[i] for i in emotion.argmax(axis=1)]})
        for j, c in enumerate(self.prep.classes):
            out[f"p_{c}"] = emotion[:, j].astype(float)
        thresholds = np.asarray(self.prep.thresholds or [0.5] * len(self.prep.aus), float)
        for j, au in enumerate(self.prep.aus):
            out[f"{au}_prob"] = probs["aus"][:, j].astype(float)
            out[au] = (probs["aus"][:, j] >= thresholds[j]).astype("int64")
        return out

    def predict_paths(self, paths: Sequence[str | Path], landmarks: Sequence[str | None] | None = None) -> pd.DataFrame:
        names = [str(p) for p in paths]
        table = self.table(self.probabilities(self.faces(names, landmarks)))
        table.insert(0, "path", names)
        return table

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Pyfunc input: an ``image`` column of file paths or base64-encoded image bytes."""
        if "image" not in frame.columns:
            raise DataError(f"input needs an 'image' column (path or base64 bytes); got {list(frame.columns)}")
        landmarks = frame["landmarks"].tolist() if "landmarks" in frame.columns else None
        with tempfile.TemporaryDirectory() as tmp:
            paths = [_as_path(value, Path(tmp), i) for i, value in enumerate(frame["image"].tolist())]
            return self.table(self.probabilities(self.faces(paths, landmarks)))


def _as_path(value: Any, tmp: Path, index: int) -> str:
    """A file path as is; bytes or base64 text written to a temporary file."""
    if isinstance(value, bytes | bytearray):
        data = bytes(value)
    else:
        text = str(value)
        if len(text) < 4096 and _is_file(text):
            return text
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise DataError(f"row {index}: neither an existing image path nor base64 image bytes") from None
    file = tmp / f"image-{index}"
    file.write_bytes(data)
    return str(file)


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except OSError:
        return False
