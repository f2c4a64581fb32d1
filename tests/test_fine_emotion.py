"""fine_emotion_weight: an auxiliary training head over CK+'s seven emotions, dropped after the fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ckrun.arrays import SplitArrays, fine_emotion_images
from ckrun.config import load_config
from ckrun.data.labels import FINE_EMOTIONS
from ckrun.data.pipeline import encode_labels, pad_rows
from ckrun.errors import ConfigError


def test_fine_labels_are_one_hot_ck_emotions_and_masked_where_unknown_or_neutral() -> None:
    rows = pd.DataFrame(
        {"emotion_num": [0, None, None, 2, 0], "ck_emotion": ["anger", None, "neutral", "surprise", "contempt"]}
    )
    labels = encode_labels(rows, [], fine=True)
    fine = labels["fine_emotion"]
    assert fine.shape == (5, 7) and FINE_EMOTIONS[0] == "anger" and FINE_EMOTIONS[-1] == "surprise"
    assert fine.argmax(axis=1)[[0, 3, 4]].tolist() == [0, 6, 1]
    assert fine.sum(axis=1).tolist() == [1, 0, 0, 1, 1]  # missing and neutral rows are all zeros: masked
    assert "fine_emotion" not in encode_labels(rows, [])  # off unless asked for
    assert fine_emotion_images(rows) == 3
    assert fine_emotion_images(rows.drop(columns="ck_emotion")) == 0
    # A manifest of the three classes names `surprise` only (a class and an emotion alike), and
    # one negative emotion does not split the negative class: nothing for the head to learn.
    assert fine_emotion_images(pd.DataFrame({"ck_emotion": ["surprise", None, "surprise"]})) == 0
    assert fine_emotion_images(pd.DataFrame({"ck_emotion": ["surprise", "anger", "anger"]})) == 0
    assert fine_emotion_images(pd.DataFrame({"ck_emotion": ["surprise", "anger", "fear"]})) == 3


def test_fine_rows_stay_masked_when_padded_and_when_mixed() -> None:
    import tensorflow as tf

    from ckrun.data.mixup import mix_labels

    fine = np.eye(7, dtype=np.float32)[[0, 3]]
    fine[1] = 0  # second image: CK+ emotion unknown
    labels = {"emotion": np.eye(3, dtype=np.float32)[[0, 0]], "aus": np.ones((2, 1), np.float32), "fine_emotion": fine}
    _, padded = pad_rows(np.zeros((2, 4, 4, 1)), labels, 4)
    assert padded["fine_emotion"][2:].sum() == 0 and padded["aus"][2:].min() == -1
    mixed = mix_labels({k: tf.constant(v) for k, v in labels.items()}, tf.constant(0.7), tf.constant([1, 0]))
    assert float(tf.reduce_sum(mixed["fine_emotion"])) == 0.0  # one part unknown: the mix is unknown
    assert float(tf.reduce_sum(mixed["emotion"])) == pytest.approx(2.0)  # both known: a real mix


def test_the_auxiliary_head_is_built_on_request_and_dropped_with_weights_kept() -> None:
    from ckrun.model.resnet import build_model, two_headed

    cfg = load_config(overrides=["preset=tiny"])
    model = build_model(cfg, 3, 4, fine_classes=7)
    assert set(model.output) == {"emotion", "aus", "fine_emotion"} and model.output["fine_emotion"].shape[-1] == 7
    served = two_headed(model)
    assert set(served.output) == {"emotion", "aus"}
    x = np.random.default_rng(0).random((3, cfg.image_size, cfg.image_size, 1)).astype("float32")
    full, two = model.predict(x, verbose=0), served.predict(x, verbose=0)
    np.testing.assert_allclose(full["aus"], two["aus"], rtol=1e-6)
    np.testing.assert_allclose(full["emotion"], two["emotion"], rtol=1e-6)
    plain = build_model(cfg, 3, 4)
    assert set(plain.output) == {"emotion", "aus"} and two_headed(plain) is plain


def _arrays(fine: bool) -> dict[str, SplitArrays]:
    rng = np.random.default_rng(0)
    n = 48
    images = rng.integers(0, 255, (n, 32, 32, 1)).astype(np.uint8)
    labels = {
        "emotion": np.eye(3, dtype=np.float32)[np.arange(n) % 3],
        "aus": (rng.random((n, 2)) > 0.5).astype(np.float32),
    }
    if fine:
        labels["fine_emotion"] = np.eye(7, dtype=np.float32)[np.arange(n) % 7]
    return {
        "train": SplitArrays(images, labels),
        "val": SplitArrays(images[:16], {k: v[:16] for k, v in labels.items()}),
    }


def test_the_fit_trains_the_auxiliary_head_and_returns_the_served_two_heads() -> None:
    from ckrun.data.pipeline import Preprocessing
    from ckrun.train import fit_model

    prep = Preprocessing(32, 1, "none", 0.1, mean=(127.0,), std=(60.0,), aus=("AU1", "AU2"))
    cfg = load_config(overrides=["preset=tiny", "epochs=2", "fine_emotion_weight=1"])
    with_head = fit_model(cfg, _arrays(fine=True), prep, verbose=False)
    assert set(with_head.model.output) == {"emotion", "aus"}
    assert "fine_emotion" not in [layer.name for layer in with_head.model.layers]
    assert len(with_head.history["train_fine_emotion_loss"]) == 2 and "val_fine_emotion_loss" in with_head.history
    without = fit_model(cfg.updated(fine_emotion_weight=0.0), _arrays(fine=False), prep, verbose=False)
    assert "train_fine_emotion_loss" not in without.history
    # Same seed, data and initial weights: the auxiliary loss's gradient moves the shared layers,
    # and at weight 0 (the head still built) nothing moves at all.
    silent = fit_model(cfg.updated(fine_emotion_weight=0.0), _arrays(fine=True), prep, verbose=False)
    pairs = list(zip(with_head.model.weights, without.model.weights, silent.model.weights, strict=True))
    shared = [(a, b, c) for a, b, c in pairs if "emotion" not in a.path and "aus" not in a.path]
    assert shared and all(np.array_equal(b.numpy(), c.numpy()) for _, b, c in pairs)
    assert any(not np.allclose(a.numpy(), b.numpy()) for a, b, _ in shared)


@pytest.mark.parametrize("bad", ["fine_emotion_weight=-1", "fine_emotion_weight=11"])
def test_bad_weights_name_the_key(bad: str) -> None:
    with pytest.raises(ConfigError, match="fine_emotion_weight"):
        load_config(overrides=[bad])


@pytest.mark.slow
def test_a_run_with_the_head_logs_a_model_that_serves_three_classes(tmp_path, tiny_ckplus, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import mlflow
    from click.testing import CliRunner
    from conftest import use_store

    from ckrun import tracking
    from ckrun.cli import cli

    use_store(monkeypatch, tmp_path)
    tiny = ["preset=tiny", "epochs=1", "min_au_count=3", "threshold_min_positives=3", "explain_images_per_class=0"]
    sets = [a for kv in [*tiny, "fine_emotion_weight=1"] for a in ("--set", kv)]
    out = CliRunner().invoke(cli, ["train", "--data", str(tiny_ckplus), "--experiment", "fine", *sets])
    assert out.exit_code == 0, out.output
    run_id = out.output.split("run id: ")[1].split()[0]
    run = tracking.get_run(run_id)
    split = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="data/split.csv"))
    expected = int(split.loc[split["split"] == "train", "ck_emotion"].isin(FINE_EMOTIONS).sum())
    assert expected > 0 and run.data.metrics["fit_fine_emotion_images"] == expected
    assert f"fine emotion head: {expected} training images" in out.output
    assert "val_fine_emotion_loss" in run.data.metrics
    # The logged model is the two-headed network: evaluating it reproduces the run's test scores.
    evaluated = CliRunner().invoke(
        cli, ["evaluate", f"runs:/{run_id}/model", "--data", str(tiny_ckplus), "--experiment", "fine"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    scores = tracking.get_run(evaluated.output.strip().splitlines()[-1].split()[-1]).data.metrics
    for key in ("test_emotion_accuracy", "test_emotion_f1", "test_au_f1"):
        assert scores[key] == pytest.approx(run.data.metrics[key], abs=1e-6), key
    frame = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(pd.DataFrame({"image": split["path"].head(2)}))
    assert set(frame["emotion"]) <= {"negative", "positive", "surprise"} and "p_fine_emotion" not in " ".join(
        frame.columns
    )


@pytest.mark.slow
def test_without_ck_emotion_names_the_head_is_off_and_the_run_says_so(tmp_path, tiny_ckplus, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from conftest import use_store

    from ckrun.data.loader import prepare_for_config
    from ckrun.train import train

    use_store(monkeypatch, tmp_path)
    cfg = load_config(
        overrides=["preset=tiny", "epochs=1", "fine_emotion_weight=1", "explain_images_per_class=0", "log_model=false"]
    )
    data = prepare_for_config(tiny_ckplus, cfg, progress=False)
    # What a manifest of the three classes gives: `surprise` read as a CK+ name, nothing else.
    data.manifest["ck_emotion"] = data.manifest["ck_emotion"].where(data.manifest["ck_emotion"] == "surprise")
    assert (data.manifest["ck_emotion"] == "surprise").any()
    lines: list[str] = []
    monkeypatch.setattr("ckrun.train.echo", lines.append)
    result = train(cfg, data, experiment="fine-off")
    assert result.metrics["fit_fine_emotion_images"] == 0
    assert any(line.startswith("fine emotion head: off") for line in lines)
    assert "train_fine_emotion_loss" not in result.history
