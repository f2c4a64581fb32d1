"""Grad-CAM and AU region shares: map shapes, and attribution that follows a known region.

The region test builds a Keras model by hand whose AU12 output reads only the pixels around
the mouth corners and whose AU1 output reads only the brows (in the model's input, i.e. after
the landmark crop and resize, computed here from the crop contract independently of
`ckrun.explain.regions`), then checks that the shares `ckrun explain` reports put each AU's
attribution in its own region and not in the other's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ckrun.data import ckformat
from ckrun.data.pipeline import Preprocessing

S = 48
MARGIN = 0.15


@pytest.fixture(scope="module")
def one_face(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(image, landmark file) of the apex frame of a one-subject synthetic CK+."""
    from ckrun.data.synth import SynthParams, generate_synthetic_ckplus

    root = tmp_path_factory.mktemp("explain_ck") / "CK+"
    params = SynthParams(sequences_per_subject=(1, 1), frames_per_sequence=(3, 3))
    generate_synthetic_ckplus(root, subjects=1, seed=3, workers=1, progress=False, params=params)
    image = sorted((root / ckformat.IMAGES_DIR).rglob("*.png"))[-1]
    landmarks = sorted((root / ckformat.LANDMARKS_DIR).rglob("*.txt"))[-1]
    assert landmarks.stem.startswith(image.stem)
    return image, landmarks


def _model_points(landmarks: Path) -> np.ndarray:
    """Landmarks in model-input pixels, by the crop contract: a square around the points grown
    by MARGIN on each side, resized to S (pixel centres: x_out + 0.5 = S / side * (x + 0.5 - left))."""
    points = ckformat.read_landmarks(landmarks)
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    size = round(max(x1 - x0, y1 - y0) * (1 + 2 * MARGIN))
    top, left = round((y0 + y1) / 2 - size / 2), round((x0 + x1) / 2 - size / 2)
    return (points + 0.5 - [left, top]) * (S / size) - 0.5


def _disks(centres: np.ndarray, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0:S, 0:S]
    mask = np.zeros((S, S), bool)
    for cx, cy in centres:
        mask |= (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
    return mask


def _region_model(mouth: np.ndarray, brows: np.ndarray):
    """AU1 = f(brow pixels), AU12 = f(mouth-corner pixels), emotion from both: a two-channel
    1x1 conv after fixed masks, global pooling, fixed Dense heads named like ckrun's."""
    import keras

    masks = np.stack([mouth, brows], axis=-1)[None].astype("float32")
    inputs = keras.Input((S, S, 1))
    masked = keras.layers.Lambda(lambda t: t * keras.ops.convert_to_tensor(masks))(inputs)
    features = keras.layers.Conv2D(2, 1, use_bias=False, name="features")(masked)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    emotion = keras.layers.Dense(3, activation="softmax", name="emotion")(pooled)
    aus = keras.layers.Dense(2, activation="sigmoid", name="aus")(pooled)
    model = keras.Model(inputs, {"emotion": emotion, "aus": aus})
    model.get_layer("features").set_weights([np.eye(2, dtype="float32").reshape(1, 1, 2, 2)])
    # Output 0 is AU1 (reads channel 1, the brows); output 1 is AU12 (channel 0, the mouth).
    model.get_layer("aus").set_weights([np.array([[0.0, 1.0], [1.0, 0.0]], "float32"), np.zeros(2, "float32")])
    model.get_layer("emotion").set_weights([np.ones((2, 3), "float32"), np.zeros(3, "float32")])
    return model


def _prep() -> Preprocessing:
    # mean -1 makes every input pixel positive, so a masked region is never blank.
    return Preprocessing(S, 1, "landmarks", MARGIN, (-1.0,), (255.0,), aus=("AU1", "AU12"), thresholds=(0.0, 0.0))


def test_gradcam_gives_one_unit_map_per_image_and_target() -> None:
    from ckrun.config import load_config
    from ckrun.explain.gradcam import gradcam
    from ckrun.model.resnet import build_model

    cfg = load_config(overrides=["preset=tiny"])
    model = build_model(cfg, 3, 4)
    x = np.random.default_rng(0).normal(size=(5, cfg.image_size, cfg.image_size, cfg.channels)).astype("float32")
    maps = gradcam(model, x, [("emotion", 0), ("emotion", 2), ("aus", 3)])
    assert maps.shape == (5, 3, cfg.image_size, cfg.image_size)
    assert maps.min() >= 0.0 and maps.max() <= 1.0 + 1e-6
    peaks = maps.reshape(5, 3, -1).max(axis=-1)
    assert np.all((np.abs(peaks - 1.0) < 1e-5) | (peaks == 0.0))  # each map scaled to its own peak
    assert not np.allclose(maps[:, 0], maps[:, 1])  # different outputs, different maps


def test_attribution_share_follows_the_region_the_output_reads(one_face: tuple[Path, Path]) -> None:
    from ckrun.explain.explainer import explain_paths, share_table
    from ckrun.predict import Predictor

    image, landmarks = one_face
    points = _model_points(landmarks)
    iod = np.linalg.norm(points[36:42].mean(axis=0) - points[42:48].mean(axis=0))
    mouth = _disks(points[[48, 54]], 0.2 * iod)
    brows = _disks(points[17:27], 0.08 * iod)
    model = _region_model(mouth, brows)
    [e] = explain_paths(Predictor(model, _prep()), [image], [str(landmarks)])
    assert set(e.predicted_aus) == {"AU1", "AU12"}
    assert e.shares["AU12"][0] == "mouth_corners" and e.shares["AU1"][0] == "brows"
    assert e.shares["AU12"][1] > 0.9, e.shares
    assert e.shares["AU1"][1] > 0.9, e.shares
    # ... and not in the other region: attribution moves with the region the output reads.
    assert e.au_maps["AU12"][e.masks["brows"]].sum() < 0.05 * e.au_maps["AU12"].sum()
    assert e.au_maps["AU1"][e.masks["mouth_corners"]].sum() < 0.05 * e.au_maps["AU1"].sum()
    table = share_table([e])
    assert set(table["au"]) == {"AU1", "AU12"} and table["predicted"].tolist() == [1, 1]
    assert (table["share"] > table["region_area"]).all()


def test_region_masks_cover_their_landmarks_and_unmapped_aus_have_none(one_face: tuple[Path, Path]) -> None:
    from ckrun.explain.regions import region_masks, region_of

    points = _model_points(one_face[1])
    masks = region_masks(points, S)
    for region, index in (("brows", 19), ("eyes", 37), ("nose", 30), ("mouth_corners", 48), ("chin", 8)):
        x, y = np.round(points[index]).astype(int)
        assert masks[region][y, x], region
        assert 0 < masks[region].mean() < 0.4, region
    assert not masks["brows"][np.round(points[57, 1]).astype(int), np.round(points[57, 0]).astype(int)]
    assert region_of("AU12") == "mouth_corners" and region_of("AU4") == "brows" and region_of("AU31") is None


def test_gradcam_of_a_grid_pooled_model_reads_the_last_block_not_the_grid() -> None:
    from ckrun.config import load_config
    from ckrun.explain.gradcam import gradcam, last_feature_layer
    from ckrun.model.resnet import build_model

    cfg = load_config(overrides=["preset=tiny", "pooling=grid", "pool_grid=2"])
    model = build_model(cfg, 3, 2)
    assert last_feature_layer(model).name == "stage2_block1"
    x = np.random.default_rng(0).normal(size=(2, cfg.image_size, cfg.image_size, 1)).astype("float32")
    maps = gradcam(model, x, [("aus", 1)])
    assert maps.shape == (2, 1, cfg.image_size, cfg.image_size)
    assert np.isfinite(maps).all() and maps.max() == pytest.approx(1.0)
