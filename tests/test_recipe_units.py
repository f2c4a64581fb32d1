"""Recipe options (issue 11) at unit level: losses, mixup, stochastic depth, weight averaging,
epoch selection, test-time augmentation and ensembles in `Predictor`, config and search space.

Every expected number is computed by hand from the published formula, not by the code under
test; the fits that exercise the same pieces inside Keras's `fit` are in test_recipe_fit.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from ckrun import tta
from ckrun.config import TrainConfig, load_config
from ckrun.data.mixup import mix_batch
from ckrun.data.pipeline import Preprocessing, make_dataset
from ckrun.errors import ConfigError
from ckrun.model.averaging import WeightAveraging, refresh_batchnorm
from ckrun.model.losses import MaskedAsymmetricLoss, MaskedFocalLoss, au_loss
from ckrun.model.objectives import MaskedBinaryCrossentropy, MaskedCategoricalCrossentropy
from ckrun.model.resnet import ResidualBlock, build_model
from ckrun.model.selection import EpochSelection, smoothed_scores
from ckrun.predict import Predictor


def _loss(fn: keras.losses.Loss, y: list, p: list) -> float:
    return float(keras.ops.convert_to_numpy(fn(np.asarray(y, "float32"), np.asarray(p, "float32"))))


# %% config and search space


def test_recipe_defaults_keep_the_plain_recipe_and_are_logged_as_params() -> None:
    cfg = load_config(overrides=["preset=tiny"])  # the default preset adds its recipe (test_config)
    assert (cfg.label_smoothing, cfg.mixup, cfg.drop_path, cfg.weight_averaging) == (0.0, 0.0, 0.0, "none")
    assert (cfg.selection, cfg.au_loss, cfg.tta, cfg.ensemble_seeds) == ("best_epoch", "bce", "none", 1)
    params = load_config().params()
    for key in ("label_smoothing", "mixup", "drop_path", "weight_averaging", "ema_momentum", "swa_start",
                "selection", "selection_window", "au_loss", "focal_gamma", "asl_gamma_neg", "asl_gamma_pos",
                "asl_clip", "tta", "ensemble_seeds", "fusion", "fusion_weight"):  # fmt: skip
        assert key in params and TrainConfig.model_fields[key].description


BAD_VALUES = ["label_smoothing=1", "mixup=-0.1", "drop_path=1.0", "weight_averaging=polyak", "selection=median",
              "selection_window=0", "au_loss=dice", "tta=rotate", "ensemble_seeds=0", "asl_clip=0.5", "fusion=stack",
              "fusion_weight=1.5"]  # fmt: skip


@pytest.mark.parametrize("bad", BAD_VALUES)
def test_bad_recipe_values_name_the_key(bad: str) -> None:
    with pytest.raises(ConfigError, match=bad.split("=")[0]):
        load_config(overrides=[bad])


def test_search_space_accepts_the_recipe_keys(tmp_path: Path) -> None:
    from ckrun.tune.space import check_space, load_search_space

    space = tmp_path / "recipe.yaml"
    space.write_text(
        "params:\n"
        "  label_smoothing: {low: 0.0, high: 0.2}\n"
        "  mixup: {choices: [0.0, 0.2, 0.4]}\n"
        "  drop_path: {low: 0.0, high: 0.3}\n"
        "  weight_averaging: {choices: [none, ema, swa]}\n"
        "  selection: {choices: [best_epoch, smoothed, last]}\n"
        "  au_loss: {choices: [bce, focal, asl]}\n"
        "  au_sampling: {choices: [none, repeat]}\n"
        "  au_repeat_threshold: {low: 0.05, high: 0.3}\n"
        "  tta: {choices: [none, flip, flip_shift]}\n"
        "  ensemble_seeds: {low: 1, high: 3}\n"
        "  fusion: {choices: [none, baseline]}\n"
        "  fusion_heads: {choices: [shared, separate]}\n"
        "  backbone: {choices: [fer_xception, resnet]}\n"  # a space that searches the network may vary drop_path
    )
    check_space(load_search_space(space), load_config())
    space.write_text("params:\n  au_loss: {choices: [bce, dice]}\n")
    with pytest.raises(ConfigError, match="au_loss"):
        check_space(load_search_space(space), load_config())


# %% losses, against the formulas by hand


def test_label_smoothing_by_hand_with_masked_rows_and_class_weights() -> None:
    y = [[1, 0, 0], [0, 0, 0]]  # second row unlabelled
    p = [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]
    # eps = 0.3, K = 3: target (0.8, 0.1, 0.1) for the labelled row.
    row = -(0.8 * math.log(0.7) + 0.1 * math.log(0.2) + 0.1 * math.log(0.1))
    assert _loss(MaskedCategoricalCrossentropy(label_smoothing=0.3), y, p) == pytest.approx(row, rel=1e-5)
    assert _loss(MaskedCategoricalCrossentropy([2.0, 1.0, 1.0], label_smoothing=0.3), y, p) == pytest.approx(
        2 * row, rel=1e-5
    )
    # An unlabelled row contributes nothing, smoothing or not.
    assert _loss(MaskedCategoricalCrossentropy(label_smoothing=0.3), [[0, 0, 0]], [[0.1, 0.1, 0.8]]) == 0.0
    assert _loss(MaskedCategoricalCrossentropy(), y, p) == pytest.approx(-math.log(0.7), rel=1e-5)


def test_binary_cross_entropy_by_hand_with_positive_weights_and_mask() -> None:
    y = [[1, 0, -1], [0, 1, -1]]
    p = [[0.8, 0.3, 0.01], [0.4, 0.6, 0.99]]
    # AU1's positive weighs 2 and AU2's 1; AU3 is unknown in both rows: a mean over the 4 known entries.
    known = [-2.0 * math.log(0.8), -math.log(0.7), -math.log(0.6), -math.log(0.6)]
    expected = sum(known) / 4
    assert _loss(MaskedBinaryCrossentropy([2.0, 1.0, 5.0]), y, p) == pytest.approx(expected, rel=1e-5)
    clone = keras.losses.deserialize(keras.losses.serialize(MaskedBinaryCrossentropy([2.0, 1.0, 5.0])))
    assert type(clone) is MaskedBinaryCrossentropy and clone.pos_weights == [2.0, 1.0, 5.0]
    assert _loss(clone, y, p) == pytest.approx(expected, rel=1e-5)


def test_focal_loss_by_hand_with_positive_weights_and_mask() -> None:
    y = [[1, 0, -1]]
    p = [[0.8, 0.3, 0.01]]
    e0 = -2.0 * 0.2**2 * math.log(0.8)  # positive, weight 2: -(w (1-p)^2 log p)
    e1 = -(0.3**2) * math.log(0.7)  # negative: -(p^2 log(1-p))
    assert _loss(MaskedFocalLoss([2.0, 1.0, 1.0], gamma=2.0), y, p) == pytest.approx((e0 + e1) / 2, rel=1e-5)
    # gamma 0 is the weighted binary cross-entropy.
    y2, p2 = [[1, 0, -1], [0, 1, 1]], [[0.7, 0.2, 0.9], [0.4, 0.6, 0.3]]
    bce = _loss(MaskedBinaryCrossentropy([3.0, 1.0, 0.5]), y2, p2)
    assert _loss(MaskedFocalLoss([3.0, 1.0, 0.5], gamma=0.0), y2, p2) == pytest.approx(bce, rel=1e-5)


def test_asymmetric_loss_by_hand_discards_easy_negatives_and_masked_entries() -> None:
    y = [[1, 0, 0, -1]]
    p = [[0.6, 0.3, 0.04, 0.9]]
    e0 = -math.log(0.6)  # gamma_pos = 0: plain log-likelihood of the positive
    e1 = -(0.25**4) * math.log(0.75)  # p_m = 0.3 - 0.05
    e2 = 0.0  # p = 0.04 < clip: p_m = 0, no loss at all
    expected = (e0 + e1 + e2) / 3
    assert _loss(MaskedAsymmetricLoss(), y, p) == pytest.approx(expected, rel=1e-5)
    # The masked entry's prediction does not matter.
    assert _loss(MaskedAsymmetricLoss(), y, [[0.6, 0.3, 0.04, 0.01]]) == pytest.approx(expected, rel=1e-5)
    assert _loss(MaskedAsymmetricLoss([4.0, 1, 1, 1]), y, p) == pytest.approx((4 * e0 + e1) / 3, rel=1e-5)


def test_au_loss_factory_and_loss_configs_round_trip() -> None:
    cfg = load_config(overrides=["au_loss=asl", "asl_gamma_neg=3", "asl_clip=0.1"])
    loss = au_loss(cfg, [2.0])
    assert isinstance(loss, MaskedAsymmetricLoss) and (loss.gamma_neg, loss.clip, loss.pos_weights) == (3.0, 0.1, [2.0])
    assert isinstance(au_loss(cfg.updated(au_loss="focal"), None), MaskedFocalLoss)
    assert type(au_loss(cfg.updated(au_loss="bce"), None)) is MaskedBinaryCrossentropy
    clone = MaskedAsymmetricLoss.from_config(loss.get_config())
    assert (clone.gamma_neg, clone.gamma_pos, clone.clip, clone.pos_weights) == (3.0, 0.0, 0.1, [2.0])
    assert MaskedCategoricalCrossentropy.from_config(
        MaskedCategoricalCrossentropy(label_smoothing=0.2).get_config()
    ).label_smoothing == pytest.approx(0.2)


# %% mixup


def test_mixup_is_a_convex_combination_and_keeps_masks_masked() -> None:
    # Image i is the unit vector e_i, so each mixed image shows its lambda and its partner.
    images = np.eye(4, dtype="float32").reshape(4, 1, 1, 4)
    emotion = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1]], "float32")  # row 2 unlabelled
    aus = np.array([[1, 0], [0, -1], [1, 1], [0, 0]], "float32")
    weights = np.array([1.0, 2.0, 3.0, 4.0], "float32")
    seen_masked_partner = seen_lambda = 0
    for s in range(12):
        x, y, w = (t.numpy() if hasattr(t, "numpy") else t for t in mix_batch(
            (images, {"emotion": emotion, "aus": aus}, weights), tf.constant([s, 7]), 0.4))  # fmt: skip
        y = {k: v.numpy() for k, v in y.items()}
        for j in range(4):
            pixel = x[j, 0, 0]
            assert pixel.sum() == pytest.approx(1.0, abs=1e-6) and (pixel >= 0).all()  # convex
            others = [i for i in np.flatnonzero(pixel > 1e-7) if i != j]
            partner = others[0] if others else j
            lam = float(pixel[j]) if partner != j else 1.0
            seen_lambda += 0 < lam < 1
            both = emotion[j].sum() > 0 and emotion[partner].sum() > 0
            expected = lam * emotion[j] + (1 - lam) * emotion[partner] if both else np.zeros(3)
            np.testing.assert_allclose(y["emotion"][j], expected, atol=1e-6)
            known = (aus[j] >= 0) & (aus[partner] >= 0)
            np.testing.assert_allclose(
                y["aus"][j], np.where(known, lam * aus[j] + (1 - lam) * aus[partner], -1), atol=1e-6
            )
            assert w[j] == pytest.approx(lam * weights[j] + (1 - lam) * weights[partner], abs=1e-5)
            seen_masked_partner += not both
    assert seen_lambda and seen_masked_partner  # the cases above were exercised


def test_make_dataset_mixes_only_when_asked() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (8, 4, 4, 1)).astype("uint8")
    labels = {"emotion": np.eye(3, dtype="float32")[rng.integers(0, 3, 8)], "aus": np.ones((8, 2), "float32")}
    prep = Preprocessing(4, 1, "none", 0.0, (100.0,), (50.0,))
    plain = next(iter(make_dataset(images, labels, prep, batch_size=8, training=True)))
    assert set(np.unique(plain[1]["emotion"])) <= {0.0, 1.0}
    mixed = next(iter(make_dataset(images, labels, prep, batch_size=8, training=True, mixup=1.0)))
    assert not set(np.unique(mixed[1]["emotion"])) <= {0.0, 1.0}
    np.testing.assert_allclose(mixed[1]["emotion"].numpy().sum(axis=1), 1.0, atol=1e-6)


# %% stochastic depth


def test_drop_path_is_identity_at_inference_and_drops_whole_samples_in_training() -> None:
    x = np.random.default_rng(0).normal(size=(64, 5, 5, 4)).astype("float32")
    plain, dropping = ResidualBlock(4), ResidualBlock(4, drop_path=0.5)
    plain.build(x.shape)
    dropping.build(x.shape)
    dropping.set_weights(plain.get_weights())
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(dropping(x, training=False)), keras.ops.convert_to_numpy(plain(x, training=False))
    )
    out = keras.ops.convert_to_numpy(dropping(x, training=True))
    h = keras.ops.relu(plain.bn1(plain.conv1(x), training=True))
    branch = keras.ops.convert_to_numpy(plain.bn2(plain.conv2(h), training=True))
    kept = np.maximum(branch / 0.5 + x, 0)
    dropped = np.maximum(x, 0)  # identity shortcut alone
    is_kept = np.array([np.allclose(out[i], kept[i], atol=1e-5) for i in range(64)])
    is_dropped = np.array([np.allclose(out[i], dropped[i], atol=1e-6) for i in range(64)])
    assert (is_kept ^ is_dropped).all()  # every sample is exactly one of the two
    assert 10 < is_dropped.sum() < 54  # about half, by chance


def test_drop_path_rises_linearly_over_blocks_and_round_trips(tmp_path: Path) -> None:
    cfg = load_config(overrides=["preset=tiny", "blocks=[2,2]", "drop_path=0.2"])
    model = build_model(cfg, 3, 2)
    rates = [layer.drop_path for layer in model.layers if isinstance(layer, ResidualBlock)]
    assert rates == pytest.approx([0.05, 0.1, 0.15, 0.2])
    block = model.get_layer("stage2_block2")
    assert ResidualBlock.from_config(block.get_config()).get_config() == block.get_config()
    assert build_model(cfg.updated(drop_path=0.0), 3, 2).get_layer("stage1_block1").seed_generator is None
    x = np.random.default_rng(1).normal(size=(4, 32, 32, 1)).astype("float32")
    before = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    assert loaded.get_layer("stage2_block2").drop_path == pytest.approx(0.2)
    after = loaded.predict(x, verbose=0)
    for key in before:
        np.testing.assert_allclose(after[key], before[key], rtol=1e-6, atol=1e-7)


# %% weight averaging and epoch selection (callbacks driven by hand)


def _small_model() -> keras.Model:
    inputs = keras.Input((3,))
    x = keras.layers.Dense(2, name="dense")(inputs)
    return keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(x))


def _weights(model: keras.Model, value: float) -> list[np.ndarray]:
    return [np.full(w.shape, value, "float32") + i for i, w in enumerate(model.get_weights())]


def test_ema_averages_every_weight_step_by_step() -> None:
    model = _small_model()
    ema = WeightAveraging("ema", momentum=0.9)
    ema.set_model(model)
    ema.on_train_begin()
    steps = [_weights(model, v) for v in (1.0, 3.0, -2.0)]
    for step, weights in enumerate(steps):
        model.set_weights(weights)
        ema.on_train_batch_end(step)
    # avg1 = w1; avg2 = 0.9 avg1 + 0.1 w2; avg3 = 0.9 avg2 + 0.1 w3 (BatchNorm statistics included)
    expected = [0.81 * a + 0.09 * b + 0.1 * c for a, b, c in zip(*steps, strict=True)]
    for got, want in zip(ema.candidate(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    # Validation sees the average and training resumes from the raw weights.
    ema.on_test_begin()
    np.testing.assert_allclose(model.get_weights()[0], expected[0], rtol=1e-6)
    ema.on_test_end()
    np.testing.assert_array_equal(model.get_weights()[0], steps[-1][0])


def test_swa_averages_epoch_end_weights_from_its_start_epoch() -> None:
    model = _small_model()
    swa = WeightAveraging("swa", start_epoch=2)
    swa.set_model(model)
    swa.on_train_begin()
    epochs = [_weights(model, v) for v in (10.0, 1.0, 2.0, 6.0)]
    for epoch, weights in enumerate(epochs):
        swa.on_epoch_begin(epoch)
        model.set_weights(weights)
        if epoch == 0:
            swa.on_test_begin()
            np.testing.assert_array_equal(model.get_weights()[0], weights[0])  # nothing averaged yet
            assert swa.candidate() is None
            swa.on_test_end()
        swa.on_epoch_end(epoch)
    expected = [(b + c + d) / 3 for _, b, c, d in zip(*epochs, strict=True)]  # epochs 2..4
    for got, want in zip(swa.candidate(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_refresh_batchnorm_sets_the_mean_of_batch_statistics() -> None:
    inputs = keras.Input((2,))
    bn = keras.layers.BatchNormalization(momentum=0.9)
    model = keras.Model(inputs, bn(inputs))
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc, 1.0, (8, 2)).astype("float32") for loc in (0.0, 2.0, 5.0)]
    refresh_batchnorm(model, [(b, None) for b in batches])
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean([b.mean(axis=0) for b in batches], axis=0), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean([b.var(axis=0) for b in batches], axis=0), rtol=1e-4)
    assert bn.momentum == 0.9


def test_smoothed_scores_are_centred_means_truncated_at_the_ends() -> None:
    values = [0.5, 0.9, 0.4, 0.7]
    np.testing.assert_allclose(smoothed_scores(values, 3), [0.7, 0.6, 2.0 / 3, 0.55])
    np.testing.assert_allclose(smoothed_scores(values, 1), values)
    assert np.isnan(smoothed_scores([0.5, np.nan, 0.7], 3)[1])


VALUES = [0.5, 0.9, 0.4, 0.7, 0.75, 0.72, 0.3]  # best raw: epoch 2; best centred 3-mean: epoch 5 (0.723)


@pytest.mark.parametrize(
    ("rule", "epoch", "score"), [("best_epoch", 2, 0.9), ("smoothed", 5, 2.17 / 3), ("last", 7, 0.3)]
)
def test_selection_restores_the_weights_of_the_epoch_it_names(rule: str, epoch: int, score: float) -> None:
    model = _small_model()
    selection = EpochSelection(rule, window=3)
    selection.set_model(model)
    selection.on_train_begin()
    for i, value in enumerate(VALUES):
        model.set_weights(_weights(model, float(i + 1)))
        selection.on_epoch_end(i, {"val_objective": value})
    selection.on_train_end()
    assert (selection.selected_epoch, selection.selected_score) == (epoch, pytest.approx(score))
    for got, want in zip(model.get_weights(), _weights(model, float(epoch)), strict=True):
        np.testing.assert_array_equal(got, want)


def test_selection_keeps_the_candidate_weights_and_stops_on_patience() -> None:
    model = _small_model()
    averaged = _weights(model, -7.0)
    selection = EpochSelection("best_epoch", patience=2, candidate=lambda: averaged)
    selection.set_model(model)
    selection.on_train_begin()
    for i, value in enumerate([0.6, 0.5]):
        selection.on_epoch_end(i, {"val_objective": value})
    assert not getattr(model, "stop_training", False) and selection.stopped_epoch == 0  # one epoch without a better one
    selection.on_epoch_end(2, {"val_objective": 0.55})
    assert model.stop_training and selection.stopped_epoch == 3
    selection.on_train_end()
    np.testing.assert_array_equal(model.get_weights()[0], averaged[0])


# %% test-time augmentation and ensembles in Predictor


def test_tta_views_by_hand() -> None:
    image = np.arange(1, 10, dtype="uint8").reshape(1, 3, 3, 1)
    assert [len(list(tta.views(image, m))) for m in tta.MODES] == [1, 2, 10]
    flipped = list(tta.views(image, "flip"))[1][0, :, :, 0]
    np.testing.assert_array_equal(flipped, [[3, 2, 1], [6, 5, 4], [9, 8, 7]])
    down = tta.shift(image, 1, 0)[0, :, :, 0]  # moved down one row; the top row mirrors the edge
    np.testing.assert_array_equal(down, [[1, 2, 3], [1, 2, 3], [4, 5, 6]])
    left = tta.shift(image, 0, -1)[0, :, :, 0]
    np.testing.assert_array_equal(left, [[2, 3, 3], [5, 6, 6], [8, 9, 9]])
    with pytest.raises(ValueError, match="rotate"):
        list(tta.views(image, "rotate"))


def _tiny(seed: int, n_aus: int = 3) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return build_model(load_config(overrides=["preset=tiny", "image_size=16"]), 3, n_aus)


FACES = np.random.default_rng(3).integers(0, 255, (5, 16, 16, 1)).astype("uint8")


def _prep(**changes: object) -> Preprocessing:
    base = Preprocessing(16, 1, "none", 0.0, (120.0,), (60.0,), aus=("AU1", "AU2", "AU4"))
    return Preprocessing(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def _raw(model: keras.Model, images: np.ndarray, prep: Preprocessing) -> dict[str, np.ndarray]:
    x = (images.astype("float32") - prep.mean[0]) / prep.std[0]
    out = model.predict(x, verbose=0)
    return {k: np.asarray(v) for k, v in out.items()}


def test_flip_tta_is_the_mean_of_the_image_and_its_mirror() -> None:
    model = _tiny(0)
    got = Predictor(model, _prep(tta="flip")).probabilities(FACES)
    plain, mirrored = _raw(model, FACES, _prep()), _raw(model, FACES[:, :, ::-1], _prep())
    for key in ("emotion", "aus"):
        np.testing.assert_allclose(got[key], (plain[key] + mirrored[key]) / 2, rtol=1e-5, atol=1e-6)
    assert not np.allclose(plain["emotion"], mirrored["emotion"])  # the mirror really is another input
    ten = Predictor(model, _prep(tta="flip_shift")).probabilities(FACES)
    views = [_raw(model, v, _prep()) for v in tta.views(FACES, "flip_shift")]
    np.testing.assert_allclose(ten["aus"], np.mean([v["aus"] for v in views], axis=0), rtol=1e-5, atol=1e-6)


def test_ensemble_probabilities_are_the_mean_of_its_members(tmp_path: Path) -> None:
    a, b = _tiny(0), _tiny(1)
    prep = _prep()
    got = Predictor([a, b], prep).probabilities(FACES)
    one, two = _raw(a, FACES, prep), _raw(b, FACES, prep)
    for key in ("emotion", "aus"):
        np.testing.assert_allclose(got[key], (one[key] + two[key]) / 2, rtol=1e-5, atol=1e-6)
    # Members of other splits: own normalisation, own AU order, matched to the ensemble's AUs by name.
    other = _prep(mean=(90.0,), std=(30.0,), aus=("AU4", "AU1", "AU2", "AU9"))
    c = _tiny(2, n_aus=4)
    mixed = Predictor([a, c], _prep(aus=("AU1", "AU4")), member_preps=[prep, other]).probabilities(FACES)
    three = _raw(c, FACES, other)
    expected = (one["aus"][:, [0, 2]] + three["aus"][:, [1, 0]]) / 2
    np.testing.assert_allclose(mixed["aus"], expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="AU9"):
        Predictor([a], _prep(aus=("AU9",)), member_preps=[prep])
    # The artifact layout round-trips: one file per member, each member's preprocessing.
    files = Predictor([a, c], _prep(aus=("AU1", "AU4"), tta="flip"), member_preps=[prep, other]).write_artifacts(
        tmp_path / "ens", "seed: 0\n"
    )
    assert {"keras_model_0", "keras_model_1", "preprocessing_0", "preprocessing_1", "preprocessing"} <= set(files)
    loaded = Predictor.from_artifacts(files)
    assert len(loaded.models) == 2 and loaded.prep.tta == "flip" and loaded.config == {"seed": 0}
    flip = Predictor([a, c], _prep(aus=("AU1", "AU4"), tta="flip"), member_preps=[prep, other])
    np.testing.assert_allclose(loaded.probabilities(FACES)["aus"], flip.probabilities(FACES)["aus"], rtol=1e-5)
    single = Predictor(a, prep).write_artifacts(tmp_path / "one", "")
    assert "keras_model" in single and not any(k.startswith("keras_model_") or k.startswith("preprocessing_")
                                               for k in single)  # fmt: skip


def _calibrated(raw: dict[str, np.ndarray], emotion_t: float, au_t: list[float]) -> dict[str, np.ndarray]:
    """Temperature scaling written out: softmax(log p / T) and sigmoid(logit p / T) per AU."""
    z = np.log(raw["emotion"]) / emotion_t
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = raw["aus"]
    return {"emotion": e / e.sum(axis=1, keepdims=True), "aus": 1 / (1 + np.exp(-np.log(p / (1 - p)) / np.array(au_t)))}


def test_a_calibrated_fold_ensemble_scales_each_fold_model_by_its_own_temperatures(tmp_path: Path) -> None:
    """`--cv K --ensemble` with calibrate: each fold fitted temperatures to its own model on its own
    val split and tuned its thresholds on the scaled outputs, so the ensemble averages the scaled
    members. The folds keep different AUs, so the first fold's temperatures fit neither the other
    model nor the ensemble's AU list."""
    from types import SimpleNamespace

    from ckrun.ensemble import cv_ensemble

    a, c = _tiny(0, n_aus=4), _tiny(2, n_aus=4)
    fold_a = _prep(aus=("AU1", "AU2", "AU4", "AU6"), thresholds=(0.4, 0.5, 0.6, 0.5), emotion_temperature=2.0,
                   au_temperatures=(0.5, 3.0, 1.5, 2.5))  # fmt: skip
    fold_c = _prep(mean=(90.0,), std=(30.0,), aus=("AU4", "AU1", "AU2", "AU9"), thresholds=(0.3, 0.2, 0.5, 0.7),
                   emotion_temperature=0.5, au_temperatures=(2.0, 4.0, 1.0, 0.25))  # fmt: skip
    folds = [SimpleNamespace(models=[a], preprocessing=fold_a), SimpleNamespace(models=[c], preprocessing=fold_c)]
    models, prep, members = cv_ensemble(folds)  # type: ignore[arg-type]
    assert prep.aus == ("AU1", "AU2", "AU4")
    got = Predictor(models, prep, member_preps=members).probabilities(FACES)
    one = _calibrated(_raw(a, FACES, fold_a), 2.0, [0.5, 3.0, 1.5, 2.5])
    two = _calibrated(_raw(c, FACES, fold_c), 0.5, [2.0, 4.0, 1.0, 0.25])
    np.testing.assert_allclose(got["emotion"], (one["emotion"] + two["emotion"]) / 2, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got["aus"], (one["aus"][:, :3] + two["aus"][:, [1, 2, 0]]) / 2, rtol=1e-4, atol=1e-6)
    # What is logged predicts the same (the pyfunc, `ckrun predict` and `ckrun evaluate` load this).
    files = Predictor(models, prep, member_preps=members).write_artifacts(tmp_path / "cv", "")
    loaded = Predictor.from_artifacts(files).probabilities(FACES)
    np.testing.assert_allclose(loaded["aus"], got["aus"], rtol=1e-5, atol=1e-7)


def test_the_run_description_says_how_many_seeds_it_averages() -> None:
    """A seed ensemble's description in MLflow must not read as one model."""
    from types import SimpleNamespace

    import pandas as pd

    from ckrun.run_logging import describe_run

    data = SimpleNamespace(name="D", manifest=pd.DataFrame({"split": ["train"] * 3}), digest="abc")
    one = describe_run(load_config(), data)  # type: ignore[arg-type]
    two = describe_run(load_config(None, ["ensemble_seeds=2", "epochs=20"]), data)  # type: ignore[arg-type]
    assert "up to 40 epochs (stopping after 12 without a better val objective), on D (3 images" in one
    assert "seeds" not in one
    assert "20 epochs (stopping after 12 without a better val objective), 2 seeds averaged, on D" in two
    for plain_overrides in (["early_stopping=0"], ["epochs=12"]):  # no patience, or one the fit never reaches
        plain = describe_run(load_config(None, plain_overrides), data)  # type: ignore[arg-type]
        assert " epochs, on D (3 images" in plain and "stopping" not in plain and "up to" not in plain
