"""Only train and val decide anything in a run: AU outputs, normalisation, thresholds, best epoch.

Two real `train()` runs on the tiny synthetic CK+ that differ only in the test split: in the
second, every test image is replaced by its negative and every test label is wrong (AUs
flipped, emotions rotated). So test and val disagree on everything a run could choose: the
test-optimal thresholds differ from the val-optimal ones, and statistics over all images differ
from those over the training images. Both runs share the same train/val data, in which one
frequent AU is hidden from the training split only, and the same seed.

The first epoch's validation objective is raised by 1 (the objective callback is wrapped), so
the best validation epoch is epoch 1 of 2, not the last, and restoring the last epoch's
weights cannot pass for restoring the best one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import use_store
from PIL import Image, ImageOps

from ckrun import tracking
from ckrun.config import load_config
from ckrun.data.labels import EMOTION_CLASSES
from ckrun.data.loader import PreparedData, manifest_digest, prepare_for_config
from ckrun.metrics import tune_thresholds
from ckrun.predict import Predictor

pytestmark = pytest.mark.slow

MIN_AU_COUNT, MIN_POSITIVES = 3, 3
CONFIG = ["preset=tiny", "epochs=2", "explain_images_per_class=0",
          f"min_au_count={MIN_AU_COUNT}", f"threshold_min_positives={MIN_POSITIVES}",
          "threshold_shrinkage=0", "log_model=false"]  # fmt: skip


def _hide_au_from_train(data: PreparedData) -> tuple[PreparedData, str]:
    """The most frequent AU of val+test, set to 0 on every training image."""
    manifest = data.manifest.copy()
    held_out = manifest["split"] != "train"
    hidden = max(data.au_columns, key=lambda au: int((manifest.loc[held_out, au] == 1).sum()))
    manifest.loc[manifest["split"] == "train", hidden] = 0.0
    return dataclasses.replace(data, manifest=manifest, digest=manifest_digest(manifest)), hidden


def _corrupt_test_split(data: PreparedData, folder: Path) -> PreparedData:
    """Test images replaced by their negatives, test AUs flipped and test emotions rotated."""
    manifest = data.manifest.copy()
    test = manifest["split"] == "test"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, path in enumerate(manifest.loc[test, "path"]):
        out = folder / f"{i:04d}_{Path(path).name}"
        with Image.open(path) as img:
            ImageOps.invert(img.convert("L")).save(out)
        paths.append(str(out))
    manifest.loc[test, "path"] = paths
    for au in data.au_columns:
        known = test & manifest[au].notna()
        manifest.loc[known, au] = 1.0 - manifest.loc[known, au]
    rotate = {c: EMOTION_CLASSES[(i + 1) % len(EMOTION_CLASSES)] for i, c in enumerate(EMOTION_CLASSES)}
    labelled = test & manifest["emotion"].notna()
    manifest.loc[labelled, "emotion"] = manifest.loc[labelled, "emotion"].map(rotate)
    manifest.loc[labelled, "emotion_num"] = manifest.loc[labelled, "emotion"].map(EMOTION_CLASSES.index)
    return dataclasses.replace(data, manifest=manifest, digest=manifest_digest(manifest))


def _train(cfg: Any, data: PreparedData, name: str) -> SimpleNamespace:
    """One run, with the weights of every epoch recorded."""
    import keras

    from ckrun.train import train

    weights: list[list[np.ndarray]] = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: weights.append([w.copy() for w in record.model.get_weights()])
    )
    result = train(cfg, data, experiment="val-only", run_name=name, callbacks=[record], verbose=False)
    return SimpleNamespace(result=result, data=data, weights=weights, run=tracking.get_run(result.run_id))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_ckplus: Path) -> SimpleNamespace:
    from ckrun.model import callbacks

    class FirstEpochBest(callbacks.ObjectiveAndRate):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            super().on_epoch_end(epoch, logs)
            if logs is not None and epoch == 0:
                logs["val_objective"] += 1.0

    root = tmp_path_factory.mktemp("val_only")
    cfg = load_config(overrides=CONFIG)
    with pytest.MonkeyPatch.context() as mp:
        use_store(mp, root)
        mp.setattr(callbacks, "ObjectiveAndRate", FirstEpochBest)
        clean, hidden = _hide_au_from_train(prepare_for_config(tiny_ckplus, cfg, progress=False))
        corrupt = _corrupt_test_split(clean, root / "negatives")
        yield SimpleNamespace(
            cfg=cfg, hidden=hidden, clean=_train(cfg, clean, "clean-test"), corrupt=_train(cfg, corrupt, "bad-test")
        )


def _au_targets(part: pd.DataFrame, aus: list[str]) -> np.ndarray:
    return np.stack([part[au].fillna(-1).to_numpy(float) for au in aus], axis=1)


def _probabilities(run: SimpleNamespace, split: str) -> np.ndarray:
    part = run.data.part(split)
    predictor = Predictor(run.result.model, run.result.preprocessing)
    return predictor.probabilities(predictor.faces(part["path"].tolist(), part["landmarks"].tolist()))["aus"]


def test_au_outputs_are_the_aus_frequent_in_the_training_split(runs) -> None:
    train = runs.clean.data.part("train")
    held_out = runs.clean.data.manifest.query("split != 'train'")
    expected = [au for au in runs.clean.data.au_columns if (train[au] == 1).sum() >= MIN_AU_COUNT]
    assert int((held_out[runs.hidden] == 1).sum()) >= MIN_AU_COUNT  # frequent outside train ...
    assert runs.hidden not in expected  # ... absent from train
    for run in (runs.clean, runs.corrupt):
        assert run.run.data.params["au_list"] == ",".join(expected)
        assert list(run.result.preprocessing.aus) == expected


def test_normalisation_statistics_are_those_of_the_training_images(runs) -> None:
    run = runs.corrupt
    manifest = run.data.manifest
    faces = Predictor(run.result.model, run.result.preprocessing).faces(
        manifest["path"].tolist(), manifest["landmarks"].tolist()
    )
    pixels = faces.reshape(-1, faces.shape[-1]).astype(np.float64)
    train = np.repeat((manifest["split"] == "train").to_numpy(), faces[0].size // faces.shape[-1])
    prep = run.result.preprocessing
    assert prep.mean == pytest.approx(tuple(pixels[train].mean(axis=0)), rel=1e-9)
    assert prep.std == pytest.approx(tuple(pixels[train].std(axis=0)), rel=1e-9)
    assert abs(pixels.mean(axis=0)[0] - prep.mean[0]) > 1  # the negated test images would move them
    assert (prep.mean, prep.std) == (runs.clean.result.preprocessing.mean, runs.clean.result.preprocessing.std)


def test_au_thresholds_are_tuned_on_val_and_logged_as_such(runs, tmp_path: Path) -> None:
    run = runs.corrupt
    aus = list(run.result.preprocessing.aus)

    def tuned(split: str) -> np.ndarray:
        targets = _au_targets(run.data.part(split), aus)
        return tune_thresholds(targets, _probabilities(run, split), min_positives=MIN_POSITIVES, shrinkage=0.0)

    on_val, on_test = tuned("val"), tuned("test")
    assert not np.allclose(on_val, on_test)  # the construction: test would choose differently
    assert np.asarray(run.result.preprocessing.thresholds) == pytest.approx(on_val)
    for split in ("val", "test"):
        per_au = pd.read_json(tracking.download_artifact(run.result.run_id, f"au/per_au_{split}.json", tmp_path))
        assert list(per_au["au"]) == aus and per_au["threshold"].to_numpy() == pytest.approx(on_val)
    assert runs.clean.result.preprocessing.thresholds == run.result.preprocessing.thresholds


def test_the_best_val_epoch_is_logged_and_its_weights_are_restored(runs) -> None:
    for run in (runs.clean, runs.corrupt):
        curve = [v for _, v in tracking.metric_history(run.result.run_id, "val_objective")][: runs.cfg.epochs]
        assert len(curve) == runs.cfg.epochs == len(run.weights)
        assert int(np.argmax(curve)) + 1 == 1 == run.run.data.metrics["best_epoch"] == run.result.best_epoch
        model = run.result.model
        restored = model.get_weights()
        assert all(np.array_equal(a, b) for a, b in zip(restored, run.weights[0], strict=True))
        assert not all(np.array_equal(a, b) for a, b in zip(restored, run.weights[-1], strict=True))
        # The predictions the run's scores come from are those of the epoch-1 weights.
        part = run.data.part("val")
        predictor = Predictor(model, run.result.preprocessing)
        faces = predictor.faces(part["path"].tolist(), part["landmarks"].tolist())
        try:
            by_epoch = []
            for weights in run.weights:
                model.set_weights(weights)
                by_epoch.append(predictor.probabilities(faces)["emotion"])
        finally:
            model.set_weights(restored)
        final = predictor.probabilities(faces)["emotion"]
        assert np.allclose(final, by_epoch[0], atol=1e-6) and not np.allclose(final, by_epoch[-1], atol=1e-6)


def test_the_test_split_changes_nothing_but_the_test_scores(runs) -> None:
    clean, corrupt = runs.clean, runs.corrupt
    for a, b in zip(clean.weights, corrupt.weights, strict=True):  # every epoch trained the same
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert clean.result.history == corrupt.result.history
    for split in ("train", "val"):
        mine = {k: v for k, v in clean.result.metrics.items() if k.startswith(f"{split}_")}
        assert mine and mine == {k: corrupt.result.metrics[k] for k in mine}
    assert clean.result.metrics["objective"] == corrupt.result.metrics["objective"]
    assert clean.result.diagnosis.verdict == corrupt.result.diagnosis.verdict
    test_keys = [f"test_{m}" for m in ("emotion_accuracy", "emotion_f1", "au_f1")]
    assert all(clean.result.metrics[k] != corrupt.result.metrics[k] for k in test_keys)
