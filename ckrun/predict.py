"""Prediction with a trained model (or an ensemble) and its own preprocessing.

Given only the Keras models (and the `Preprocessing` logged with them), turn image files or
bytes into a labelled table: the emotion with its class probabilities, and per AU the
probability and the yes/no decision at the model's tuned threshold. Probabilities are the
mean over the ensemble's members and over the test-time augmentation views the
preprocessing names, so a run's own evaluation (`ckrun.scoring`), `ckrun predict`,
`ckrun evaluate` and the MLflow pyfunc wrapper (`mlflow models serve`) all give the same
numbers: they all come through `Predictor.probabilities`.

An ensemble is a list of models; members trained on other splits (the folds of a
cross-validation) bring their own normalisation and AU list (`member_preps`), and their
AU outputs are matched to the ensemble's AUs by name. The artifact layout of a logged
model (one Keras file per member) is written and read here, so the writer (`ckrun.tracking`)
and every reader agree.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ckrun import tta
from ckrun.calibration import apply_temperatures
from ckrun.data import faces, reference
from ckrun.data.decode import decode_faces
from ckrun.data.geometry import landmark_list, placements
from ckrun.data.pipeline import Preprocessing, normalise, pad_rows
from ckrun.errors import DataError
from ckrun.fusion import Fusion, fuse_all

KERAS_ARTIFACT = "keras_model"  # one model: keras_model; an ensemble: keras_model_0, keras_model_1, ...
PREPROCESSING_ARTIFACT = "preprocessing"
CONFIG_ARTIFACT = "config"
FUSION_ARTIFACT = "fusion"  # fusion.json (weights); the baselines as fusion_0.npz, fusion_1.npz, ...
_MEMBER = re.compile(r"^(keras_model|preprocessing)_(\d+)$")
_CHUNK = 256  # images normalised and augmented at a time (bounds memory for large presets)


class Predictor:
    """Keras two-headed model(s) plus the preprocessing they were trained with."""

    def __init__(
        self,
        models: Any,
        prep: Preprocessing,
        config: dict[str, Any] | None = None,
        member_preps: Sequence[Preprocessing] | None = None,
        fusions: Sequence[Fusion | None] | None = None,
    ) -> None:
        self.models = list(models) if isinstance(models, list | tuple) else [models]
        # Late fusion with linear baselines (`ckrun.fusion`): one entry per training split.
        self.fusions: list[Fusion | None] = list(fusions) if fusions and any(fusions) else []
        if not self.models:
            raise ValueError("a Predictor needs at least one model")
        self.prep, self.config = prep, config or {}
        self.member_preps = list(member_preps) if member_preps else [prep] * len(self.models)
        # Members trained on other splits (a CV's folds) were each calibrated on their own val
        # split, and their thresholds tuned on those calibrated outputs: each member's
        # temperatures scale its own outputs, before the mean, and the ensemble's are not used.
        self.own_calibration = any(m is not prep for m in self.member_preps)
        if len(self.member_preps) != len(self.models):
            raise ValueError(f"{len(self.models)} models but {len(self.member_preps)} member preprocessings")
        missing = [a for m in self.member_preps for a in prep.aus if a not in m.aus]
        if missing:
            raise ValueError(f"ensemble AU {missing[0]} is not an output of every member")
        unfused = [a for f in self.fusions if f for a in prep.aus if a not in f.baseline.aus]
        if unfused:
            raise ValueError(f"AU {unfused[0]} is not an output of every fused baseline")

    @property
    def model(self) -> Any:
        """The first (for a single model: the only) member."""
        return self.models[0]

    # ----------------------------------------------------------------------------------
    # Artifacts: one Keras file per member, the preprocessing, the config

    def write_artifacts(self, folder: Path, config_yaml: str) -> dict[str, str]:
        """Save the members and their preprocessing under `folder`; the artifact name -> file map."""
        folder.mkdir(parents=True, exist_ok=True)
        files: dict[str, str] = {}
        single = len(self.models) == 1
        for i, model in enumerate(self.models):
            name = KERAS_ARTIFACT if single else f"{KERAS_ARTIFACT}_{i}"
            model.save(folder / f"{name}.keras")
            files[name] = str(folder / f"{name}.keras")
        (folder / "preprocessing.json").write_text(self.prep.to_json())
        files[PREPROCESSING_ARTIFACT] = str(folder / "preprocessing.json")
        if any(m is not self.prep for m in self.member_preps):
            for i, member in enumerate(self.member_preps):
                (folder / f"preprocessing_{i}.json").write_text(member.to_json())
                files[f"{PREPROCESSING_ARTIFACT}_{i}"] = str(folder / f"preprocessing_{i}.json")
        (folder / "config.yaml").write_text(config_yaml)
        files[CONFIG_ARTIFACT] = str(folder / "config.yaml")
        if self.fusions:
            for i, fusion in enumerate(self.fusions):
                if fusion is not None:
                    fusion.baseline.save(folder / f"{FUSION_ARTIFACT}_{i}.npz")
                    files[f"{FUSION_ARTIFACT}_{i}"] = str(folder / f"{FUSION_ARTIFACT}_{i}.npz")
            weights = [None if f is None else {"weight": f.weight, "au_weight": f.weights["aus"]} for f in self.fusions]
            (folder / "fusion.json").write_text(json.dumps(weights))
            files[FUSION_ARTIFACT] = str(folder / "fusion.json")
        return files

    @classmethod
    def from_artifacts(cls, artifacts: Mapping[str, str]) -> Predictor:
        """Rebuild from the artifact map `write_artifacts` made (what the pyfunc context holds)."""
        members: dict[int, Path] = {}
        member_preps: dict[int, Path] = {}
        for name, file in artifacts.items():
            match = _MEMBER.match(name)
            if match:
                (members if match.group(1) == KERAS_ARTIFACT else member_preps)[int(match.group(2))] = Path(file)
        keras_files = [members[i] for i in sorted(members)] or [Path(artifacts[KERAS_ARTIFACT])]
        config = Path(artifacts[CONFIG_ARTIFACT]) if CONFIG_ARTIFACT in artifacts else None
        member_files = [member_preps[i] for i in sorted(member_preps)] or None
        fusions = _read_fusions(artifacts) if FUSION_ARTIFACT in artifacts else None
        return cls.from_files(keras_files, Path(artifacts[PREPROCESSING_ARTIFACT]), config, member_files, fusions)

    @classmethod
    def from_files(
        cls,
        keras_files: Path | Sequence[Path],
        preprocessing_file: Path,
        config_file: Path | None = None,
        member_preprocessing_files: Sequence[Path] | None = None,
        fusions: Sequence[Fusion | None] | None = None,
    ) -> Predictor:
        import keras
        import yaml

        import ckrun.model.losses
        import ckrun.model.objectives
        import ckrun.model.resnet  # noqa: F401

        files = [keras_files] if isinstance(keras_files, str | Path) else list(keras_files)
        models = [keras.saving.load_model(f, compile=False, safe_mode=True) for f in files]  # no lambdas from a file
        config = yaml.safe_load(Path(config_file).read_text()) if config_file else None
        prep = Preprocessing.from_json(Path(preprocessing_file).read_text())
        members = [Preprocessing.from_json(Path(f).read_text()) for f in member_preprocessing_files or []]
        return cls(models, prep, config, members or None, fusions)

    def landmark_files(
        self, paths: Sequence[str], landmarks: Sequence[str | Path | None] | None = None
    ) -> list[str | None]:
        """Each image's landmark file: as given, or found by path for CK+ frames; None where none."""
        missing = [p for p in paths if not Path(p).is_file()]
        if missing:
            raise DataError(f"image not found: {missing[0]}")
        geometry = self.prep.geometry
        if landmarks is None:
            uses_landmarks = geometry.crop in ("auto", "landmarks") or geometry.align != "none"
            landmarks = [faces.find_ckplus_landmarks(p) if uses_landmarks else None for p in paths]
        return landmark_list(list(landmarks))

    def place(self, paths: Sequence[str], landmarks: Sequence[str | None]) -> np.ndarray:
        """(N, 2, 3) matrices taking each image's pixels to the model input, as training placed them."""
        return placements(list(map(str, paths)), list(landmarks), self.prep.geometry, self.prep.image_size)

    def faces(
        self,
        paths: Sequence[str],
        landmarks: Sequence[str | Path | None] | None = None,
        neutral: str | Path | Sequence[str | Path] | None = None,
    ) -> np.ndarray:
        """Faces placed exactly as training placed them (same geometry, same decode).

        CK+ frames find their landmark file by path; an image without one is cropped by the
        detector and aligned as the training set's images without landmarks would be. A model
        trained with ``reference=neutral`` needs `neutral`: one image of the person's neutral
        face for all `paths`, or one per path (`ckrun.data.reference`).
        """
        return self.placed_faces(paths, landmarks, neutral)[0]

    def placed_faces(
        self,
        paths: Sequence[str],
        landmarks: Sequence[str | Path | None] | None = None,
        neutral: str | Path | Sequence[str | Path] | None = None,
    ) -> tuple[np.ndarray, list[str | None], np.ndarray]:
        """`faces`, with each image's landmark file and placement matrix (explanations need both)."""
        names = list(map(str, paths))
        neutral_names = reference.broadcast(neutral, len(names))
        if self.prep.reference != "neutral" and neutral_names is not None:
            raise DataError("this model reads each face alone (trained without reference=neutral): leave out --neutral")
        if self.prep.reference == "neutral" and neutral_names is None:
            raise DataError(
                "this model reads each face beside the person's neutral face (trained with reference=neutral): "
                "give it with --neutral IMAGE (or a `neutral` column)"
            )
        images, found, matrices = self._decoded(names, landmarks)
        if neutral_names is not None:
            images = reference.stack(images, self._decoded(neutral_names)[0])
        return images, found, matrices

    def _decoded(
        self, paths: list[str], landmarks: Sequence[str | Path | None] | None = None
    ) -> tuple[np.ndarray, list[str | None], np.ndarray]:
        found = self.landmark_files(paths, landmarks)
        matrices = self.place(paths, found)
        return decode_faces(paths, matrices, self.prep.image_size, self.prep.channels), found, matrices

    def faces_of(self, rows: pd.DataFrame) -> np.ndarray:
        """Faces of manifest rows, with each row's neutral frame when the model reads one."""
        landmarks = rows["landmarks"].tolist() if "landmarks" in rows.columns else None
        neutral = reference.neutral_paths(rows) if self.prep.reference == "neutral" else None
        return self.faces(rows["path"].astype(str).tolist(), landmarks, neutral)

    def probabilities(self, images: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
        """Head outputs for uint8 faces: the mean over members and test-time augmentation views,
        temperature-scaled when the model was calibrated."""
        if len(images) == 0:
            return {"emotion": np.zeros((0, len(self.prep.classes))), "aus": np.zeros((0, len(self.prep.aus)))}
        parts = [self._chunk(images[i : i + _CHUNK], batch_size) for i in range(0, len(images), _CHUNK)]
        probs = {key: np.concatenate([p[key] for p in parts]) for key in ("emotion", "aus")}
        if not self.own_calibration:
            probs = apply_temperatures(probs, self.prep.emotion_temperature, self.prep.au_temperatures)
        if self.fusions:
            probs = fuse_all(probs, self.fusions, images, self.prep.channels, self.prep.aus)
        return probs

    def _chunk(self, images: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
        emotion = np.zeros((len(images), len(self.prep.classes)))
        aus = np.zeros((len(images), len(self.prep.aus)))
        views = list(tta.views(images, self.prep.tta))
        for model, member in zip(self.models, self.member_preps, strict=True):
            cols = [member.aus.index(a) for a in self.prep.aus]
            outs = [_predict(model, normalise(view, member).numpy(), batch_size) for view in views]
            probs = {
                "emotion": np.mean([out["emotion"] for out in outs], axis=0),
                "aus": np.mean([out["aus"][:, cols] for out in outs], axis=0),
            }
            if self.own_calibration:
                temperatures = member.au_temperatures
                own = [temperatures[c] for c in cols] if len(temperatures) == len(member.aus) else []
                probs = apply_temperatures(probs, member.emotion_temperature, own)
            emotion += probs["emotion"]
            aus += probs["aus"]
        return {"emotion": emotion / len(self.models), "aus": aus / len(self.models)}

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

    def predict_paths(
        self,
        paths: Sequence[str | Path],
        landmarks: Sequence[str | None] | None = None,
        neutral: str | Path | Sequence[str | Path] | None = None,
    ) -> pd.DataFrame:
        names = [str(p) for p in paths]
        table = self.table(self.probabilities(self.faces(names, landmarks, neutral)))
        table.insert(0, "path", names)
        return table

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Pyfunc input: an ``image`` column of file paths or base64-encoded image bytes (and a
        ``neutral`` column alike for a model trained with ``reference=neutral``)."""
        if "image" not in frame.columns:
            raise DataError(f"input needs an 'image' column (path or base64 bytes); got {list(frame.columns)}")
        landmarks = frame["landmarks"].tolist() if "landmarks" in frame.columns else None
        with tempfile.TemporaryDirectory() as tmp:
            paths = [_as_path(value, Path(tmp), i) for i, value in enumerate(frame["image"].tolist())]
            neutral = None
            if "neutral" in frame.columns:
                neutral = [_as_path(v, Path(tmp), len(paths) + i) for i, v in enumerate(frame["neutral"].tolist())]
            return self.table(self.probabilities(self.faces(paths, landmarks, neutral)))


def _read_fusions(artifacts: Mapping[str, str]) -> list[Fusion | None]:
    from ckrun.baselines.export import LinearBaseline

    described = json.loads(Path(artifacts[FUSION_ARTIFACT]).read_text())
    return [
        None
        if entry is None
        else Fusion(
            LinearBaseline.load(Path(artifacts[f"{FUSION_ARTIFACT}_{i}"])),
            float(entry["weight"]),
            float(entry.get("au_weight", entry["weight"])),  # models logged before per-head weights have one
        )
        for i, entry in enumerate(described)
    ]


def _predict(model: Any, x: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """One model's outputs; under a multi-device strategy every batch must split evenly."""
    n = len(x)
    replicas = int(model.distribute_strategy.num_replicas_in_sync)
    if replicas > 1:
        batch_size = -(-batch_size // replicas) * replicas
        x, _ = pad_rows(x, {}, replicas)
    out = model.predict(x, batch_size=batch_size, verbose=0)
    return {"emotion": np.asarray(out["emotion"])[:n], "aus": np.asarray(out["aus"])[:n]}


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
