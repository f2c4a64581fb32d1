"""Frame weighting: distance from the peak in the manifest, decay weights, and their way into the loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ckplus_fixture import write_ckplus

from ckrun.arrays import SplitArrays, frame_weights
from ckrun.config import load_config
from ckrun.data.importers import import_dataset, load_manifest
from ckrun.data.manifest import PEAK_DISTANCE, save_manifest
from ckrun.errors import DataError

# %% manifest column


def test_ckplus_rows_count_frames_back_from_the_peak(tmp_path: Path) -> None:
    write_ckplus(tmp_path / "ck")
    manifest = import_dataset(tmp_path / "ck", peak_frames=3).manifest
    assert manifest[PEAK_DISTANCE].dtype == "Int64"
    for _, seq in manifest.groupby(["subject", "sequence"]):
        ordered = seq.sort_values("frame")
        expected = list(range(len(ordered) - 1, -1, -1))
        assert ordered[PEAK_DISTANCE].tolist() == expected  # ... 2, 1, 0 = the labelled peak
    assert (import_dataset(tmp_path / "ck", peak_frames=1).manifest[PEAK_DISTANCE] == 0).all()
    saved = load_manifest(save_manifest(manifest, tmp_path / "m.csv"))
    assert saved[PEAK_DISTANCE].tolist() == manifest[PEAK_DISTANCE].tolist()


def test_csv_peak_distance_is_optional_and_checked(tmp_path: Path) -> None:
    write_ckplus(tmp_path / "ck")
    paths = import_dataset(tmp_path / "ck").manifest["path"].tolist()[:3]
    base = pd.DataFrame({"path": paths, "emotion": ["happy"] * 3})
    base.to_csv(tmp_path / "plain.csv", index=False)
    assert PEAK_DISTANCE not in import_dataset(tmp_path / "plain.csv").manifest  # all peaks
    base.assign(peak_distance=[2, None, 0]).to_csv(tmp_path / "given.csv", index=False)
    assert import_dataset(tmp_path / "given.csv").manifest[PEAK_DISTANCE].tolist() == [2, 0, 0]
    base.assign(peak_distance=[1, -1, 0]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"bad\.csv: row 2 .*peak_distance .*negative"):
        import_dataset(tmp_path / "bad.csv")


# %% weights


def test_weights_fall_with_distance_and_average_one() -> None:
    part = pd.DataFrame({PEAK_DISTANCE: pd.array([0, 1, 2, 0, 1, 2], dtype="Int64")})
    weights = frame_weights(part, 0.5)
    assert weights is not None and weights.dtype == np.float32
    np.testing.assert_allclose(weights / weights[0], [1, 0.5, 0.25, 1, 0.5, 0.25])
    assert weights.mean() == pytest.approx(1.0)
    only_peak = frame_weights(part, 0.0)
    assert only_peak is not None and (only_peak[[1, 2, 4, 5]] == 0).all() and only_peak[0] == pytest.approx(3.0)
    assert frame_weights(part, 1.0) is None  # today's behaviour: every frame counts fully
    assert frame_weights(pd.DataFrame({"path": ["a"]}), 0.5) is None  # CSV/folder data: all peaks


def test_masked_losses_weight_labelled_rows_only() -> None:
    from ckrun.model.objectives import MaskedBinaryCrossentropy, MaskedCategoricalCrossentropy

    emotion = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1]], np.float32)  # row 2 unlabelled
    probs = np.array([[0.7, 0.2, 0.1], [0.3, 0.4, 0.3], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6]], np.float32)
    weights = np.array([2.0, 0.5, 100.0, 1.0], np.float32)
    per_row = -np.log((emotion * probs).sum(axis=1).clip(1e-7))
    labelled = emotion.sum(axis=1) > 0
    expected = (weights * per_row)[labelled].sum() / labelled.sum()
    loss = float(MaskedCategoricalCrossentropy()(emotion, probs, sample_weight=weights))
    assert loss == pytest.approx(expected, rel=1e-5)
    assert float(MaskedCategoricalCrossentropy()(emotion, probs)) == pytest.approx(per_row[labelled].mean(), rel=1e-5)

    aus = np.array([[1, -1], [0, 1], [-1, -1], [1, 0]], np.float32)  # -1 = unknown
    p = np.array([[0.8, 0.5], [0.3, 0.6], [0.9, 0.9], [0.4, 0.2]], np.float32)
    known = aus >= 0
    bce = -(np.maximum(aus, 0) * np.log(p) + (1 - np.maximum(aus, 0)) * np.log(1 - p)) * known
    expected = (weights * bce.sum(axis=1)).sum() / known.sum()
    assert float(MaskedBinaryCrossentropy()(aus, p, sample_weight=weights)) == pytest.approx(expected, rel=1e-5)


def test_training_dataset_carries_the_weights() -> None:
    from ckrun.data.pipeline import Preprocessing, make_dataset

    images = np.zeros((5, 8, 8, 1), np.uint8)
    labels = {"emotion": np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1]], "aus": np.zeros((5, 2), np.float32)}
    prep = Preprocessing(8, 1, "none", 0.1, mean=(0.0,), std=(1.0,))
    weights = np.arange(5, dtype=np.float32)
    batches = list(make_dataset(images, labels, prep, batch_size=5, weights=weights))
    assert len(batches[0]) == 3
    np.testing.assert_array_equal(batches[0][2].numpy(), weights)
    assert len(next(iter(make_dataset(images, labels, prep, batch_size=5)))) == 2


def test_fit_model_trains_on_the_frame_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    from ckrun.data import pipeline
    from ckrun.data.pipeline import Preprocessing
    from ckrun.train import fit_model

    seen: list[np.ndarray | None] = []

    class Stop(Exception):
        pass

    def capture(images, labels, prep, *, training=False, weights=None, **kwargs):  # type: ignore[no-untyped-def]
        if training:
            seen.append(weights)
            raise Stop
        raise AssertionError("the training set is built first")

    monkeypatch.setattr(pipeline, "make_dataset", capture)
    cfg = load_config(overrides=["preset=tiny", "epochs=1"])
    images = np.zeros((6, 32, 32, 1), np.uint8)
    labels = {"emotion": np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]], "aus": np.zeros((6, 0), np.float32)}
    weights = np.array([3, 0, 0, 3, 0, 0], np.float32)
    arrays = {"train": SplitArrays(images, labels, weights), "val": SplitArrays(images, labels)}
    with pytest.raises(Stop):
        fit_model(cfg, arrays, Preprocessing(32, 1, "none", 0.1, mean=(0.0,), std=(1.0,)), verbose=False)
    assert seen[0] is weights


def test_keras_applies_one_weight_per_image_to_both_heads() -> None:
    import keras

    from ckrun.data.pipeline import Preprocessing, make_dataset
    from ckrun.model.objectives import MaskedBinaryCrossentropy, MaskedCategoricalCrossentropy
    from ckrun.model.resnet import AU_HEAD, EMOTION_HEAD

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 1))
    flat = keras.layers.Flatten()(inputs)
    model = keras.Model(
        inputs,
        {
            EMOTION_HEAD: keras.layers.Dense(3, activation="softmax", name=EMOTION_HEAD)(flat),
            AU_HEAD: keras.layers.Dense(2, activation="sigmoid", name=AU_HEAD)(flat),
        },
    )
    model.compile(loss={EMOTION_HEAD: MaskedCategoricalCrossentropy(), AU_HEAD: MaskedBinaryCrossentropy()})
    rng = np.random.default_rng(0)
    n = 12
    images = rng.integers(0, 255, (n, 4, 4, 1)).astype(np.uint8)
    labels = {"emotion": np.eye(3, dtype=np.float32)[np.arange(n) % 3], "aus": (rng.random((n, 2)) > 0.5).astype("f4")}
    prep = Preprocessing(4, 1, "none", 0.1, mean=(127.0,), std=(70.0,))

    def loss(weights: np.ndarray | None) -> float:
        ds = make_dataset(images, labels, prep, batch_size=n, weights=weights)
        return float(model.evaluate(ds, verbose=0, return_dict=True)["loss"])

    def head_losses(weights: np.ndarray) -> float:
        probs = model.predict(make_dataset(images, labels, prep, batch_size=n), verbose=0)
        emo = MaskedCategoricalCrossentropy()(labels["emotion"], probs[EMOTION_HEAD], sample_weight=weights)
        au = MaskedBinaryCrossentropy()(labels["aus"], probs[AU_HEAD], sample_weight=weights)
        return float(emo) + float(au)

    peak_only = np.where(np.arange(n) % 3 == 0, 3.0, 0.0).astype(np.float32)
    assert loss(np.ones(n, np.float32)) == pytest.approx(loss(None), rel=1e-5)
    assert loss(peak_only) == pytest.approx(head_losses(peak_only), rel=1e-4)  # both heads weighted
    assert abs(loss(peak_only) - loss(None)) > 0.01 * loss(None)
