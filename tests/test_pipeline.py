"""tf.data pipeline: decoding and padding, the face cache, labels, normalisation, augmentation, datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from ckrun.data import pipeline
from ckrun.data.labels import EMOTION_CLASSES
from ckrun.data.pipeline import (
    Augmentation,
    FaceCache,
    Preprocessing,
    augment_batch,
    decode_faces,
    encode_labels,
    make_dataset,
    normalisation_stats,
)

NO_AUG = Augmentation(rotation=0, shift=0, zoom=0, flip=False, brightness=0, contrast=0)


@pytest.fixture
def images_dir(tmp_path: Path) -> Path:
    """A 40x20 grey PNG (left half black, right half white) and a red-orange 40x20 PNG and JPEG."""
    grey = np.zeros((20, 40), np.uint8)
    grey[:, 20:] = 255
    Image.fromarray(grey).save(tmp_path / "grey.png")
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[..., 0], rgb[..., 1] = 255, 100
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb).save(tmp_path / "rgb.jpg", quality=95)
    return tmp_path


def _random_images(n: int = 10, size: int = 16, channels: int = 1, low: int = 0, high: int = 256, seed: int = 0):
    return np.random.default_rng(seed).integers(low, high, (n, size, size, channels)).astype(np.uint8)


def _labels(n: int, n_aus: int = 2) -> dict[str, np.ndarray]:
    emotion = np.eye(3, dtype=np.float32)[np.arange(n) % 3]
    aus = (np.arange(n * n_aus).reshape(n, n_aus) % 2).astype(np.float32)
    return {"emotion": emotion, "aus": aus}


def _prep(size: int = 16, channels: int = 1, mean: float = 0.0, std: float = 1.0) -> Preprocessing:
    return Preprocessing(size, channels, "none", 0.1, mean=(mean,) * channels, std=(std,) * channels)


def _collect(ds: tf.data.Dataset) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    xs, ys = [], {"emotion": [], "aus": []}
    for x, y in ds:
        xs.append(x.numpy())
        for k in ys:
            ys[k].append(y[k].numpy())
    return np.concatenate(xs), {k: np.concatenate(v) for k, v in ys.items()}


# %% decoding


def test_decode_pads_out_of_bounds_boxes_with_black(images_dir: Path) -> None:
    # full_box(40, 20) = (-10, 0, 40): 10 black rows above and below the 20 image rows.
    out = decode_faces([str(images_dir / "grey.png")], np.array([[-10, 0, 40]]), 40, 1)
    assert out.shape == (1, 40, 40, 1) and out.dtype == np.uint8
    face = out[0, :, :, 0]
    assert (face[:10] == 0).all() and (face[30:] == 0).all()
    assert (face[10:30, :20] == 0).all() and (face[10:30, 20:] == 255).all()


def test_decode_crops_the_box(images_dir: Path) -> None:
    out = decode_faces([str(images_dir / "grey.png")] * 2, np.array([[0, 20, 20], [0, 0, 20]]), 20, 1)
    assert (out[0] == 255).all()
    assert (out[1] == 0).all()


def test_decode_resizes_to_the_image_size(images_dir: Path) -> None:
    out = decode_faces([str(images_dir / "rgb.png")], np.array([[-10, 0, 40]]), 20, 3)
    assert out.shape == (1, 20, 20, 3)
    red = out[0, :, 10, 0]
    assert (red[:4] == 0).all() and (red[16:] == 0).all()
    assert (red[6:14] == 255).all()
    assert (out[0, 6:14, :, 1] == 100).all()


@pytest.mark.parametrize("name", ["rgb.png", "rgb.jpg"])
def test_colour_to_grey_and_back(images_dir: Path, name: str) -> None:
    box = np.array([[0, 0, 20]])
    grey = decode_faces([str(images_dir / name)], box, 20, 1)
    colour = decode_faces([str(images_dir / name)], box, 20, 3)
    assert grey.shape == (1, 20, 20, 1) and colour.shape == (1, 20, 20, 3)
    luma = 0.299 * 255 + 0.587 * 100
    assert np.abs(grey.astype(float) - luma).max() <= 4
    assert np.abs(colour[0, 5:15, 5:15].astype(float).mean(axis=(0, 1)) - [255, 100, 0]).max() <= 4


def test_grey_png_decodes_to_three_equal_channels(images_dir: Path) -> None:
    out = decode_faces([str(images_dir / "grey.png")], np.array([[0, 10, 20]]), 20, 3)
    assert out.shape == (1, 20, 20, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    assert out[0, 0, 0, 0] == 0 and out[0, 0, 19, 0] == 255


def test_decode_nothing() -> None:
    out = decode_faces([], np.zeros((0, 3), np.int32), 12, 3)
    assert out.shape == (0, 12, 12, 3) and out.dtype == np.uint8


# %% face cache


def _manifest(paths: list[Path]) -> pd.DataFrame:
    return pd.DataFrame({"path": [str(p) for p in paths], "landmarks": [pd.NA] * len(paths)})


@pytest.fixture
def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = pipeline.decode_faces

    def counting(paths, *args, **kwargs):
        calls.append(len(paths))
        return real(paths, *args, **kwargs)

    monkeypatch.setattr(pipeline, "decode_faces", counting)
    return calls


def test_memory_cache_decodes_once(images_dir: Path, count_decodes: list[int]) -> None:
    manifest = _manifest([images_dir / "grey.png", images_dir / "rgb.png"])
    cache = FaceCache("memory")
    prep = Preprocessing(16, 1, "none", 0.1)
    first = cache.images(manifest, prep)
    second = cache.images(manifest, prep)
    assert first.shape == (2, 16, 16, 1)
    assert second is first
    assert count_decodes == [2]
    # Other decode settings or other rows are other entries.
    assert cache.images(manifest, Preprocessing(8, 1, "none", 0.1)).shape == (2, 8, 8, 1)
    assert cache.images(manifest.iloc[:1], prep).shape == (1, 16, 16, 1)
    assert count_decodes == [2, 2, 1]
    # Normalisation and labels do not change the decoded pixels.
    assert cache.images(manifest, Preprocessing(16, 1, "none", 0.1, mean=(5.0,), std=(2.0,))) is first
    assert count_decodes == [2, 2, 1]


def test_folder_cache_writes_npy_and_is_reused(tmp_path: Path, images_dir: Path, count_decodes: list[int]) -> None:
    manifest = _manifest([images_dir / "grey.png", images_dir / "rgb.jpg"])
    prep = Preprocessing(16, 3, "none", 0.1)
    folder = tmp_path / "cache"
    first = FaceCache(str(folder)).images(manifest, prep)
    files = list(folder.glob("faces-*.npy"))
    assert len(files) == 1 and not list(folder.glob("*.tmp*"))
    np.testing.assert_array_equal(np.load(files[0]), first)
    # A fresh cache object (another process, another trial) reads the file instead of decoding.
    again = FaceCache(str(folder)).images(manifest, prep)
    np.testing.assert_array_equal(again, first)
    assert count_decodes == [2]


def test_cache_uses_landmarks_when_present(tmp_path: Path, images_dir: Path) -> None:
    from ckrun.data import ckformat

    landmarks = tmp_path / "lm.txt"
    points = np.zeros((68, 2))
    points[:, 0] = np.linspace(22, 38, 68)  # x inside the white half
    points[:, 1] = np.linspace(2, 18, 68)
    ckformat.write_landmarks(landmarks, points)
    manifest = pd.DataFrame({"path": [str(images_dir / "grey.png")], "landmarks": [str(landmarks)]})
    faces = FaceCache().images(manifest, Preprocessing(8, 1, "landmarks", 0.0))
    assert (faces == 255).all()


# %% labels


def test_encode_labels_masks_missing_values() -> None:
    manifest = pd.DataFrame(
        {
            "emotion_num": pd.array([0, pd.NA, 2, 1], dtype="Int64"),
            "AU1": [1.0, 0.0, np.nan, 1.0],
            "AU12": [3.0, np.nan, 0.0, 0.0],  # intensities count as present
        }
    )
    labels = encode_labels(manifest, ["AU1", "AU12", "AU99"])
    assert set(labels) == {"emotion", "aus"}
    np.testing.assert_array_equal(labels["emotion"], [[1, 0, 0], [0, 0, 0], [0, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(
        labels["aus"], [[1, 1, -1], [0, -1, -1], [-1, 0, -1], [1, 0, -1]]
    )  # AU99 is not in the manifest: unknown everywhere
    assert labels["emotion"].dtype == np.float32 and labels["aus"].dtype == np.float32
    assert labels["emotion"].shape[1] == len(EMOTION_CLASSES)


def test_encode_labels_without_aus() -> None:
    labels = encode_labels(pd.DataFrame({"emotion_num": pd.array([1], dtype="Int64")}), [])
    assert labels["aus"].shape == (1, 0)


# %% normalisation


def test_normalisation_stats_per_channel_with_floor() -> None:
    images = np.zeros((2, 4, 4, 3), np.uint8)
    images[0, ..., 0], images[1, ..., 0] = 10, 30
    images[..., 1] = 50
    mean, std = normalisation_stats(images)
    assert mean == pytest.approx((20.0, 50.0, 0.0))
    assert std == pytest.approx((10.0, 1.0, 1.0))  # constant channels: std floored at 1


def test_make_dataset_normalises_with_the_given_stats() -> None:
    train = _random_images(12, low=40, high=100, seed=1)
    other = _random_images(12, low=180, high=250, seed=2)
    train_stats = normalisation_stats(train)
    all_stats = normalisation_stats(np.concatenate([train, other]))
    assert train_stats[0][0] < all_stats[0][0] - 50

    def out_mean_std(stats):
        prep = Preprocessing(16, 1, "none", 0.1, mean=stats[0], std=stats[1])
        x, _ = _collect(make_dataset(train, _labels(12), prep, batch_size=5))
        assert x.dtype == np.float32
        return float(x.mean()), float(x.std())

    mean, std = out_mean_std(train_stats)
    assert mean == pytest.approx(0.0, abs=1e-4) and std == pytest.approx(1.0, abs=1e-3)
    mean_all, _ = out_mean_std(all_stats)
    assert mean_all < -0.5


# %% augmentation


def _batch(n: int = 8, size: int = 16, channels: int = 1, low: int = 0, high: int = 256) -> tf.Tensor:
    return tf.constant(_random_images(n, size, channels, low, high).astype(np.float32))


def test_augment_keeps_shape_and_range() -> None:
    images = _batch(6, channels=3)
    strong = Augmentation(rotation=45, shift=0.5, zoom=0.5, flip=True, brightness=1.0, contrast=1.0)
    out = augment_batch(images, tf.constant([1, 2]), strong).numpy()
    assert out.shape == (6, 16, 16, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 255.0
    assert not np.allclose(out, images.numpy())


def test_augment_is_deterministic_per_seed() -> None:
    images = _batch()
    a = augment_batch(images, tf.constant([3, 4]), Augmentation()).numpy()
    b = augment_batch(images, tf.constant([3, 4]), Augmentation()).numpy()
    c = augment_batch(images, tf.constant([3, 5]), Augmentation()).numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 1.0


def test_augment_with_zero_strength_is_identity() -> None:
    images = _batch()
    assert not NO_AUG.enabled
    out = augment_batch(images, tf.constant([0, 1]), NO_AUG).numpy()
    np.testing.assert_allclose(out, images.numpy(), atol=1e-3)


def test_flip_only_mirrors_some_images_exactly() -> None:
    images = _batch(16).numpy()
    flip = Augmentation(rotation=0, shift=0, zoom=0, flip=True, brightness=0, contrast=0)
    out = augment_batch(tf.constant(images), tf.constant([7, 8]), flip).numpy()
    mirrored = [bool(np.allclose(o, i[:, ::-1], atol=1e-3)) for o, i in zip(out, images, strict=True)]
    kept = [bool(np.allclose(o, i, atol=1e-3)) for o, i in zip(out, images, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert any(mirrored) and any(kept)


def test_brightness_only_shifts_each_image_by_a_constant() -> None:
    images = _batch(8, low=100, high=150).numpy()  # away from the clip at 0 and 255
    bright = Augmentation(rotation=0, shift=0, zoom=0, flip=False, brightness=0.1, contrast=0)
    out = augment_batch(tf.constant(images), tf.constant([1, 1]), bright).numpy()
    delta = (out - images).reshape(8, -1)
    np.testing.assert_allclose(delta, delta[:, :1].repeat(delta.shape[1], axis=1), atol=1e-3)
    assert np.abs(delta[:, 0]).max() <= 0.1 * 255 + 1e-3
    assert len(np.unique(np.round(delta[:, 0], 3))) > 1


# %% datasets


def test_eval_dataset_shapes_order_and_keys() -> None:
    images, labels = _random_images(10), _labels(10, n_aus=4)
    ds = make_dataset(images, labels, _prep(), batch_size=4)
    batches = list(ds)
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.shape == (4, 16, 16, 1) and x.dtype == tf.float32
    assert set(y) == {"emotion", "aus"}
    assert y["emotion"].shape == (4, 3) and y["aus"].shape == (4, 4)
    xs, ys = _collect(ds)
    np.testing.assert_array_equal(xs, images.astype(np.float32))  # mean 0, std 1: raw pixels, in order
    np.testing.assert_array_equal(ys["emotion"], labels["emotion"])
    np.testing.assert_array_equal(ys["aus"], labels["aus"])


def test_eval_dataset_is_never_augmented() -> None:
    images, labels = _random_images(10), _labels(10)
    ds = make_dataset(images, labels, _prep(), batch_size=4, training=False, augmentation=Augmentation())
    first, second = _collect(ds)[0], _collect(ds)[0]
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, images.astype(np.float32))


def test_training_dataset_reshuffles_but_keeps_pairs() -> None:
    images = np.arange(12, dtype=np.uint8).reshape(12, 1, 1, 1).repeat(4, axis=1).repeat(4, axis=2)
    labels = {"emotion": np.eye(3, dtype=np.float32)[np.arange(12) % 3], "aus": np.arange(12.0)[:, None]}
    ds = make_dataset(images, labels, _prep(4), batch_size=5, training=True, seed=0)
    x1, y1 = _collect(ds)
    x2, _ = _collect(ds)
    order1, order2 = x1[:, 0, 0, 0].astype(int), x2[:, 0, 0, 0].astype(int)
    assert sorted(order1) == list(range(12))
    assert list(order1) != list(order2)  # reshuffled each epoch
    assert list(order1) != list(range(12))
    np.testing.assert_array_equal(y1["aus"][:, 0], order1)  # labels travel with their image
    np.testing.assert_array_equal(y1["emotion"].argmax(axis=1), order1 % 3)


def test_replicas_get_even_batches_padded_with_unlabelled_rows() -> None:
    """Under MirroredStrategy every batch must split evenly across devices."""
    images, labels = _random_images(11), _labels(11, n_aus=4)
    ds = make_dataset(images, labels, _prep(), batch_size=5, replicas=2)
    sizes = [b[0].shape[0] for b in ds]
    assert sizes == [6, 6] and all(n % 2 == 0 for n in sizes)  # batch rounded up to 6, 11 rows padded to 12
    xs, ys = _collect(ds)
    np.testing.assert_array_equal(xs[:11], images.astype(np.float32))
    assert not ys["emotion"][11:].any() and (ys["aus"][11:] == -1).all()  # masked: ignored by losses/metrics
    train = make_dataset(images, labels, _prep(), batch_size=4, training=True, replicas=2)
    assert [b[0].shape[0] for b in train] == [4, 4]  # the short last batch is dropped


def test_training_augmentation_differs_between_epochs_but_repeats_per_seed() -> None:
    images, labels = _random_images(10), _labels(10)

    def epochs(seed: int) -> tuple[np.ndarray, np.ndarray]:
        ds = make_dataset(images, labels, _prep(), batch_size=4, training=True, seed=seed, augmentation=Augmentation())
        return _collect(ds)[0], _collect(ds)[0]

    a1, a2 = epochs(0)
    b1, b2 = epochs(0)
    c1, _ = epochs(1)
    assert a1.shape == (10, 16, 16, 1)
    np.testing.assert_array_equal(a1, b1)  # same seed, same first epoch
    np.testing.assert_array_equal(a2, b2)
    assert not np.allclose(a1, a2)  # new transformations every epoch
    assert not np.allclose(a1, c1)
    assert not any(np.allclose(a, images.astype(np.float32)) for a in a1)  # every image is transformed


# %% preprocessing record


def test_preprocessing_json_round_trip() -> None:
    prep = Preprocessing(
        64,
        3,
        "landmarks",
        0.15,
        mean=(120.5, 110.0, 100.25),
        std=(50.0, 49.5, 48.0),
        aus=("AU1", "AU12"),
        thresholds=(0.4, 0.55),
    )
    back = Preprocessing.from_json(prep.to_json())
    assert back == prep
    assert isinstance(back.mean, tuple) and isinstance(back.classes, tuple)
    assert back.classes == EMOTION_CLASSES
    assert back.cache_key() == prep.cache_key()
    assert back.geometry == prep.geometry
