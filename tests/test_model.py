"""ResidualBlock, the two-headed ResNet per preset, save/load, and the masked losses and metrics."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from ckrun.config import load_config
from ckrun.model.objectives import (
    MaskedAccuracy,
    MaskedBinaryCrossentropy,
    MaskedCategoricalCrossentropy,
    MaskedMacroF1,
)
from ckrun.model.resnet import AU_HEAD, EMOTION_HEAD, ResidualBlock, build_model


def _block_output(block: ResidualBlock, x: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(block(x, training=False))


# %% ResidualBlock


def test_identity_shortcut_when_shape_is_kept() -> None:
    block = ResidualBlock(8, stride=1)
    block.build((None, 16, 16, 8))
    assert block.proj_conv is None and block.proj_bn is None
    # conv1, conv2 kernels + 4 variables for each of bn1, bn2.
    assert len(block.weights) == 10
    assert len(block.trainable_weights) == 6
    assert block.count_params() == 2 * (3 * 3 * 8 * 8) + 2 * (4 * 8)


@pytest.mark.parametrize(("c_in", "stride"), [(4, 1), (8, 2), (4, 2)])
def test_projection_when_stride_or_channels_change(c_in: int, stride: int) -> None:
    block = ResidualBlock(8, stride=stride)
    block.build((None, 16, 16, c_in))
    assert block.proj_conv is not None
    assert len(block.weights) == 15
    conv = 3 * 3 * c_in * 8 + 3 * 3 * 8 * 8 + 1 * 1 * c_in * 8
    assert block.count_params() == conv + 3 * (4 * 8)


def test_zeroed_block_passes_the_identity_shortcut_through() -> None:
    x = np.random.default_rng(0).uniform(0, 1, (2, 6, 6, 4)).astype("float32")
    block = ResidualBlock(4)
    block.build(x.shape)
    for conv in (block.conv1, block.conv2):
        conv.kernel.assign(np.zeros(conv.kernel.shape, "float32"))
    np.testing.assert_allclose(_block_output(block, x), x, atol=1e-6)  # relu(0 + x) = x for x >= 0


def test_block_output_shapes() -> None:
    x = np.random.default_rng(0).normal(size=(2, 15, 15, 3)).astype("float32")
    for stride, size in ((1, 15), (2, 8), (3, 5)):
        block = ResidualBlock(6, stride=stride)
        out = _block_output(block, x)
        assert out.shape == (2, size, size, 6)
        assert tuple(block.compute_output_shape((None, 15, 15, 3))) == (None, size, size, 6)
        assert out.min() >= 0.0  # ends in a ReLU


@pytest.mark.parametrize(
    ("kwargs", "quoted"),
    [
        (dict(filters=0), "Received: filters=0, stride=1"),
        (dict(filters=8, stride=0), "Received: filters=8, stride=0"),
        (dict(filters=8, l2=-0.1), "Received: l2=-0.1"),
    ],
)
def test_invalid_arguments_quote_the_received_values(kwargs: dict, quoted: str) -> None:
    with pytest.raises(ValueError, match=quoted):
        ResidualBlock(**kwargs)


def test_block_config_round_trip() -> None:
    block = ResidualBlock(12, stride=2, l2=1e-3, bn_momentum=0.8, name="my_block")
    config = block.get_config()
    assert {k: config[k] for k in ("filters", "stride", "l2", "bn_momentum", "name")} == {
        "filters": 12,
        "stride": 2,
        "l2": 1e-3,
        "bn_momentum": 0.8,
        "name": "my_block",
    }
    assert keras.saving.get_registered_name(ResidualBlock) == "ckrun>ResidualBlock"
    restored = keras.layers.deserialize(keras.layers.serialize(block))
    assert isinstance(restored, ResidualBlock)
    assert restored.get_config() == config
    assert ResidualBlock.from_config(config).get_config() == config
    assert restored.conv1.kernel_regularizer.l2 == pytest.approx(1e-3)


def test_l2_zero_means_no_regulariser() -> None:
    assert ResidualBlock(4, l2=0.0).conv1.kernel_regularizer is None
    block = ResidualBlock(4, l2=0.01)
    _block_output(block, np.ones((1, 4, 4, 2), "float32"))
    assert len(block.losses) == 3  # conv1, conv2 and the projection


# %% build_model


PRESET_CASES = [
    ("tiny", ["preset=tiny", "image_size=32"]),
    ("resnet", ["preset=resnet", "image_size=64"]),
    ("default with backbone=resnet", ["preset=default", "backbone=resnet"]),
    ("seed", ["preset=seed", "image_size=64", "blocks=[2,2]"]),
]


@pytest.mark.parametrize(("preset", "overrides"), PRESET_CASES, ids=[c[0] for c in PRESET_CASES])
def test_build_model_per_preset(preset: str, overrides: list[str]) -> None:
    cfg = load_config(None, overrides)
    model = build_model(cfg, n_classes=3, n_aus=5)
    assert {k: tuple(v.shape) for k, v in model.output.items()} == {EMOTION_HEAD: (None, 3), AU_HEAD: (None, 5)}
    assert tuple(model.input.shape) == (None, cfg.image_size, cfg.image_size, cfg.channels)
    # One ResidualBlock per configured block, named by stage.
    names = [layer.name for layer in model.layers if isinstance(layer, ResidualBlock)]
    assert names == [f"stage{s}_block{b}" for s, n in enumerate(cfg.blocks, start=1) for b in range(1, n + 1)]
    last = model.get_layer(names[-1])
    assert tuple(last.output.shape) == (None, cfg.final_feature_size, cfg.final_feature_size, cfg.filters[-1])
    # Downsampling only in the first block of a stage.
    assert [model.get_layer(n).stride for n in names if n.endswith("_block1")] == list(cfg.strides)
    assert all(model.get_layer(n).stride == 1 for n in names if not n.endswith("_block1"))

    x = np.random.default_rng(0).normal(size=(2, cfg.image_size, cfg.image_size, cfg.channels)).astype("float32")
    out = model(x, training=False)
    emotion, aus = (keras.ops.convert_to_numpy(out[k]) for k in (EMOTION_HEAD, AU_HEAD))
    assert emotion.shape == (2, 3) and aus.shape == (2, 5)
    assert np.isfinite(emotion).all() and np.isfinite(aus).all()
    np.testing.assert_allclose(emotion.sum(axis=1), 1.0, atol=1e-5)
    assert ((aus > 0) & (aus < 1)).all()


def test_seed_preset_final_feature_size_at_full_depth() -> None:
    cfg = load_config(None, ["preset=seed", "image_size=64"])
    assert cfg.blocks == (6, 6) and cfg.final_feature_size == 16
    model = build_model(cfg, 3, 4)
    assert tuple(model.get_layer("stage2_block6").output.shape) == (None, 16, 16, 256)
    assert tuple(model.get_layer("stage1_block1").output.shape) == (None, 32, 32, 64)


def test_stem_stride_and_pool_shrink_the_features() -> None:
    cfg = load_config(None, ["preset=tiny", "stem_stride=2", "stem_pool=true"])
    model = build_model(cfg, 3, 2)
    assert tuple(model.get_layer("stage2_block1").output.shape) == (None, 4, 4, 16)
    assert cfg.final_feature_size == 4


def test_dropout_l2_and_au_head_size() -> None:
    cfg = load_config(None, ["preset=tiny", "dropout=0", "l2=0"])
    model = build_model(cfg, 3, 0)
    assert "dropout" not in [layer.name for layer in model.layers]
    assert model.losses == []
    assert tuple(model.output[AU_HEAD].shape) == (None, 1)  # kept at one output when there are no AUs
    regularised = build_model(cfg.updated(dropout=0.3, l2=1e-3), 3, 2)
    assert regularised.get_layer("dropout").rate == 0.3
    # stem + 2 blocks x 2 convs + 1 projection (stage 2) + 2 heads
    assert len(regularised.losses) == 1 + 4 + 1 + 2


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # never fitted: nothing to load
def test_save_and_load_give_identical_predictions(tmp_path: Path) -> None:
    cfg = load_config(None, ["preset=tiny", "image_size=16"])
    model = build_model(cfg, 3, 4)
    model.compile(
        optimizer="adam",
        loss={EMOTION_HEAD: MaskedCategoricalCrossentropy([1.0, 2.0, 0.5]), AU_HEAD: MaskedBinaryCrossentropy()},
        metrics={EMOTION_HEAD: [MaskedMacroF1(False, 3)], AU_HEAD: [MaskedAccuracy(True, 4)]},
    )
    rng = np.random.default_rng(0)
    for weight in model.weights:  # every weight off its initial value, BN statistics included
        weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32") * (1 + weight.numpy()))
    x = rng.normal(size=(8, 16, 16, 1)).astype("float32")
    before = model.predict(x, verbose=0)
    assert np.isfinite(before[EMOTION_HEAD]).all() and np.isfinite(before[AU_HEAD]).all()

    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    after = loaded.predict(x, verbose=0)
    for key in (EMOTION_HEAD, AU_HEAD):
        np.testing.assert_allclose(after[key], before[key], rtol=1e-6, atol=1e-7)
    assert isinstance(loaded.get_layer("stage2_block1"), ResidualBlock)
    assert loaded.loss[EMOTION_HEAD].class_weights == [1.0, 2.0, 0.5]


# %% masked losses


def _probs(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    logits = rng.normal(size=(n, k))
    return (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype("float32")


def _loss(fn: keras.losses.Loss, y: np.ndarray, p: np.ndarray) -> float:
    return float(keras.ops.convert_to_numpy(fn(y.astype("float32"), p.astype("float32"))))


def test_masked_cce_ignores_unlabelled_rows() -> None:
    rng = np.random.default_rng(1)
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 6)]
    p = _probs(rng, 6, 3)
    loss = MaskedCategoricalCrossentropy()
    labelled_only = _loss(loss, y, p)
    expected = float(np.mean(-np.log((y * p).sum(axis=1))))
    assert labelled_only == pytest.approx(expected, rel=1e-5)
    assert labelled_only == pytest.approx(_loss(keras.losses.CategoricalCrossentropy(), y, p), rel=1e-5)
    # Unlabelled rows with arbitrary (even near-zero) predictions change nothing.
    y_mixed = np.concatenate([y, np.zeros((4, 3), "float32")])
    p_mixed = np.concatenate([p, np.array([[1e-9, 1e-9, 1.0]] * 2 + [[0.3, 0.3, 0.4]] * 2, "float32")])
    order = rng.permutation(10)
    assert _loss(loss, y_mixed[order], p_mixed[order]) == pytest.approx(labelled_only, rel=1e-5)
    assert _loss(loss, np.zeros((4, 3)), _probs(rng, 4, 3)) == 0.0


def test_class_weights_scale_the_cce_per_class() -> None:
    rng = np.random.default_rng(2)
    y = np.eye(3, dtype="float32")[[0, 0, 1, 2]]
    p = _probs(rng, 4, 3)
    plain = -np.log((y * p).sum(axis=1))
    weighted = _loss(MaskedCategoricalCrossentropy([2.0, 1.0, 0.5]), y, p)
    assert weighted == pytest.approx(float(np.mean(plain * [2.0, 2.0, 1.0, 0.5])), rel=1e-5)
    # Only class-0 rows: the loss doubles.
    y0, p0 = y[:2], p[:2]
    assert _loss(MaskedCategoricalCrossentropy([2.0, 1.0, 1.0]), y0, p0) == pytest.approx(
        2 * _loss(MaskedCategoricalCrossentropy(), y0, p0), rel=1e-5
    )


def test_masked_bce_ignores_unknown_entries() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, (6, 4)).astype("float32")
    p = rng.uniform(0.05, 0.95, (6, 4)).astype("float32")
    loss = MaskedBinaryCrossentropy()
    full = _loss(loss, y, p)
    assert full == pytest.approx(_loss(keras.losses.BinaryCrossentropy(), y, p), rel=1e-4)
    # Mask a third of the entries and give them terrible predictions.
    mask = rng.uniform(size=y.shape) < 0.33
    y_masked = np.where(mask, -1.0, y)
    p_bad = np.where(mask, np.where(y == 1, 1e-6, 1 - 1e-6), p)
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    expected = float(bce[~mask].mean())
    assert _loss(loss, y_masked, p_bad) == pytest.approx(expected, rel=1e-4)
    # The same value with whole unknown rows added.
    y_rows = np.concatenate([y_masked, -np.ones((3, 4))])
    p_rows = np.concatenate([p_bad, rng.uniform(size=(3, 4))])
    assert _loss(loss, y_rows, p_rows) == pytest.approx(expected, rel=1e-4)
    assert _loss(loss, -np.ones((3, 4)), rng.uniform(size=(3, 4))) == 0.0


def test_pos_weights_scale_only_positive_terms() -> None:
    y = np.array([[1, 0, -1], [0, 1, 1]], "float32")
    p = np.array([[0.7, 0.2, 0.9], [0.4, 0.6, 0.3]], "float32")
    weights = np.array([3.0, 1.0, 0.5])
    known = y >= 0
    t = np.maximum(y, 0)
    bce = -(weights * t * np.log(p) + (1 - t) * np.log(1 - p))
    expected = float(bce[known].sum() / known.sum())
    assert _loss(MaskedBinaryCrossentropy(list(weights)), y, p) == pytest.approx(expected, rel=1e-5)
    assert _loss(MaskedBinaryCrossentropy(list(weights)), y, p) > _loss(MaskedBinaryCrossentropy(), y, p)


def test_loss_configs_round_trip() -> None:
    cce = MaskedCategoricalCrossentropy([1.0, 2.0, 3.0])
    assert MaskedCategoricalCrossentropy.from_config(cce.get_config()).class_weights == [1.0, 2.0, 3.0]
    bce = MaskedBinaryCrossentropy([0.5, 4.0])
    assert MaskedBinaryCrossentropy.from_config(bce.get_config()).pos_weights == [0.5, 4.0]


# %% masked metrics vs scikit-learn


def _feed(metric: keras.metrics.Metric, y: np.ndarray, p: np.ndarray, batches: int = 3) -> float:
    metric.reset_state()
    for yb, pb in zip(np.array_split(y, batches), np.array_split(p, batches), strict=True):
        metric.update_state(yb.astype("float32"), pb.astype("float32"))
    return float(keras.ops.convert_to_numpy(metric.result()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multiclass_metrics_match_sklearn_on_labelled_rows(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 60
    target = rng.integers(0, 3, n)
    y = np.eye(3, dtype="float32")[target]
    unlabelled = rng.uniform(size=n) < 0.3
    y[unlabelled] = 0.0
    p = _probs(rng, n, 3)
    pred = p.argmax(axis=1)
    known = ~unlabelled
    f1 = _feed(MaskedMacroF1(False, 3), y, p)
    acc = _feed(MaskedAccuracy(False, 3), y, p)
    assert f1 == pytest.approx(f1_score(target[known], pred[known], average="macro"), abs=1e-6)
    assert acc == pytest.approx(accuracy_score(target[known], pred[known]), abs=1e-6)


def test_multiclass_f1_leaves_out_absent_classes_like_sklearn() -> None:
    y = np.eye(3, dtype="float32")[[0, 0, 1, 1, 0]]
    p = np.eye(3, dtype="float32")[[0, 1, 1, 1, 0]] * 0.8 + 0.1
    expected = f1_score([0, 0, 1, 1, 0], [0, 1, 1, 1, 0], average="macro")  # classes 0 and 1 only
    assert _feed(MaskedMacroF1(False, 3), y, p, batches=2) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_multilabel_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, (50, 5)).astype("float32")
    p = rng.uniform(size=(50, 5)).astype("float32")
    pred = (p > 0.5).astype(int)
    # Without a mask: scikit-learn's multilabel macro F1 and element-wise accuracy.
    assert _feed(MaskedMacroF1(True, 5), y, p) == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-6)
    assert _feed(MaskedAccuracy(True, 5), y, p) == pytest.approx(accuracy_score(y.ravel(), pred.ravel()), abs=1e-6)
    # With a mask: per-AU F1 on that AU's labelled entries, averaged.
    mask = rng.uniform(size=y.shape) < 0.3
    y_masked = np.where(mask, -1.0, y)
    per_au = [f1_score(y[~mask[:, j], j], pred[~mask[:, j], j]) for j in range(5)]
    assert _feed(MaskedMacroF1(True, 5), y_masked, p) == pytest.approx(np.mean(per_au), abs=1e-6)
    assert _feed(MaskedAccuracy(True, 5), y_masked, p) == pytest.approx((pred == y)[~mask].mean(), abs=1e-6)


def test_multilabel_f1_skips_an_au_never_present_nor_predicted() -> None:
    y = np.array([[1, 0], [0, 0], [1, 0], [-1, 0]], "float32")
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.3], [0.9, 0.9]], "float32")
    # AU 0 on rows 0-2: tp=1, fp=1, fn=1 -> F1 0.5; AU 1 has tp=fp=fn=0 until row 3 predicts it.
    assert _feed(MaskedMacroF1(True, 2), y[:3], p[:3], batches=1) == pytest.approx(0.5)
    assert _feed(MaskedMacroF1(True, 2), y, p, batches=2) == pytest.approx(0.25)  # AU 1: one fp -> F1 0


def test_metric_state_resets_and_config_round_trips() -> None:
    metric = MaskedMacroF1(True, 3, name="aus_f1")
    y = np.array([[1, 0, 1]], "float32")
    assert _feed(metric, y, np.array([[0.9, 0.1, 0.9]]), batches=1) == pytest.approx(1.0)
    metric.reset_state()
    assert float(keras.ops.convert_to_numpy(metric.result())) == 0.0
    clone = MaskedMacroF1.from_config(metric.get_config())
    assert (clone.name, clone.multilabel, clone.n_outputs) == ("aus_f1", True, 3)
    assert MaskedAccuracy.from_config(MaskedAccuracy(False, 3).get_config()).multilabel is False


@pytest.mark.parametrize(("image_size", "grid", "cells"), [(24, 3, [4, 4, 4]), (20, 3, [3, 4, 3])])
def test_grid_pooling_averages_each_cell_of_the_last_feature_map(
    image_size: int, grid: int, cells: list[int], tmp_path: Path
) -> None:
    # tiny ends on image_size / 2: 12 px splits into three 4 px cells; 10 px into 3, 4 and 3
    # (4 px cells, the 2 px short split between both edges, as "same" padding does).
    cfg = load_config(None, ["preset=tiny", f"image_size={image_size}", "pooling=grid", f"pool_grid={grid}"])
    model = build_model(cfg, 3, 2)
    last = model.get_layer("stage2_block1")
    probe = keras.Model(model.input, [last.output, model.get_layer("grid_flatten").output])
    x = np.random.default_rng(1).normal(size=(2, image_size, image_size, 1)).astype("float32")
    fmap, pooled = (keras.ops.convert_to_numpy(t) for t in probe(x, training=False))
    assert fmap.shape[1] == sum(cells) and pooled.shape == (2, grid * grid * cfg.filters[-1])

    edges = np.cumsum([0, *cells])
    expected = np.stack(
        [
            fmap[:, edges[i] : edges[i + 1], edges[j] : edges[j + 1], :].mean(axis=(1, 2))
            for i in range(grid)
            for j in range(grid)
        ],
        axis=1,
    ).reshape(2, -1)
    np.testing.assert_allclose(pooled, expected, rtol=1e-5, atol=1e-6)  # edge cells are not diluted by padding
    # Where a feature fired is what global pooling loses: the same cells' overall mean is its vector.
    weights = np.outer(cells, cells).reshape(1, grid * grid, 1) / sum(cells) ** 2
    np.testing.assert_allclose(
        (pooled.reshape(2, grid * grid, -1) * weights).sum(axis=1), fmap.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6
    )

    path = tmp_path / "grid.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0)[AU_HEAD], model.predict(x, verbose=0)[AU_HEAD], rtol=1e-6)


@pytest.mark.parametrize(
    ("pooling", "emotion_inputs", "au_inputs"), [("global", 1, 1), ("grid", 9, 9), ("grid_au", 1, 9)]
)
def test_each_head_reads_the_pooling_it_is_given(pooling: str, emotion_inputs: int, au_inputs: int) -> None:
    cfg = load_config(None, ["preset=tiny", f"pooling={pooling}"])
    model = build_model(cfg, 3, 2)
    width = cfg.filters[-1]
    assert tuple(model.get_layer(EMOTION_HEAD).kernel.shape) == (emotion_inputs * width, 3)
    assert tuple(model.get_layer(AU_HEAD).kernel.shape) == (au_inputs * width, 2)
    # Dropout on whatever a head reads, once per pooled vector.
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert len(dropouts) == len({emotion_inputs, au_inputs}) and all(d.rate == cfg.dropout for d in dropouts)


def test_the_default_reads_aus_from_the_grid_and_tiny_pools_globally() -> None:
    default = load_config(None, ["image_size=48"])
    assert (default.pooling, default.pool_cells) == ("grid_au", 3)
    layers = {layer.name: layer for layer in build_model(default, 3, 2).layers}
    assert tuple(layers["grid_pool"].output.shape) == (None, 3, 3, default.filters[-1])
    assert "grid_pool" not in [layer.name for layer in build_model(load_config(None, ["preset=tiny"]), 3, 2).layers]
