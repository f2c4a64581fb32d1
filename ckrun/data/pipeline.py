"""tf.data input pipeline: decode, crop or align, resize, cache, augment, normalise.

The crop and alignment are decided once per dataset (`crop_policy`), then decoding and
warping run once per image (`geometry`, `decode`) into a uint8 array that is cached in
memory or in a ``.npy`` file, keyed by everything the pixels depend on; training,
validation, tuning trials and the baseline all reuse it. Per-run datasets then only shuffle,
augment (training only), normalise with train-split statistics, batch and prefetch — the
cheap part, so an Optuna worker decodes its data once, not once per trial.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from ckrun.data import crop_policy
from ckrun.data.decode import decode_faces
from ckrun.data.geometry import FaceGeometry, placements
from ckrun.data.labels import EMOTION_CLASSES, FINE_EMOTIONS, ONE_HOT_LABELS
from ckrun.errors import ConfigError
from ckrun.outdir import replacing

AUTOTUNE = tf.data.AUTOTUNE
DECODE_VERSION = 2  # bump when the same settings would give other pixels (v2: OpenCV warp)
__all__ = ["FaceCache", "Preprocessing", "decode_faces", "make_dataset"]


# --------------------------------------------------------------------------------------
# Preprocessing shared by training and prediction


@dataclass(frozen=True)
class Preprocessing:
    """Everything needed to turn an image file into model input; travels with the model.

    `crop` and `align` hold what was decided for the training set (`crop_policy`), never
    `auto` once the face cache has resolved them, so `ckrun predict` repeats that decision on
    a new image instead of making its own. The geometry fields default to what models logged
    before alignment existed did, so their JSON still loads and predicts as before.
    """

    image_size: int
    channels: int
    crop: str
    crop_margin: float
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    classes: tuple[str, ...] = EMOTION_CLASSES
    aus: tuple[str, ...] = ()
    thresholds: tuple[float, ...] = field(default=())
    crop_fallback: tuple[float, ...] = ()
    align: str = "none"
    eye_targets: tuple[float, ...] = ()
    eye_fallback: tuple[float, ...] = ()
    tta: str = "none"  # test-time augmentation the model's predictions average over (ckrun.tta)
    # Temperature scaling fitted on val (`calibrate`); 1.0 / empty = the head's own probabilities.
    emotion_temperature: float = 1.0
    au_temperatures: tuple[float, ...] = field(default=())
    reference: str = "none"  # "neutral": the face's neutral frame is stacked beside it (ckrun.data.reference)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Preprocessing:
        data: dict[str, Any] = json.loads(text)
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**fields)

    @property
    def resolved(self) -> bool:
        """Whether this came out of a dataset decision (no `auto`, and what a decision adds)."""
        if "auto" in (self.crop, self.align):
            return False
        return (self.crop != "detector" or bool(self.crop_fallback)) and (
            self.align == "none" or bool(self.eye_targets)
        )

    @property
    def geometry(self) -> FaceGeometry:
        return FaceGeometry(
            self.crop, self.crop_margin, self.crop_fallback, self.align, self.eye_targets, self.eye_fallback
        )

    def with_geometry(self, geometry: FaceGeometry) -> Preprocessing:
        return replace(
            self,
            crop=geometry.crop,
            crop_margin=geometry.margin,
            crop_fallback=geometry.crop_fallback,
            align=geometry.align,
            eye_targets=geometry.eye_targets,
            eye_fallback=geometry.eye_fallback,
        )

    def cache_key(self) -> str:
        """What decoded pixels depend on (not normalisation or labels)."""
        return f"v{DECODE_VERSION}-{self.image_size}-{self.channels}-{self.geometry.key()}"


# --------------------------------------------------------------------------------------
# Decoded-image cache


class FaceCache:
    """Decoded faces of a manifest per preprocessing key, in memory or in a cache folder.

    It also remembers each dataset's crop decision, so the runs, trials and baseline that
    share one cache survey the dataset once and all crop it the same way.
    """

    def __init__(self, cache: str = "memory", *, progress: bool = False) -> None:
        self._memory: dict[str, np.ndarray] = {}
        self._decisions: dict[tuple[str, str, str, float], crop_policy.CropDecision] = {}
        self._folder = None if cache in ("", "memory") else Path(cache)
        self._progress = progress
        if self._folder is not None:  # made now: a path no folder can take fails before a run opens
            try:
                self._folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                reason = "a file is in the way" if isinstance(exc, FileExistsError | NotADirectoryError) else exc
                raise ConfigError(f"cache={cache}: cannot make the cache folder ({reason})") from None

    @staticmethod
    def _rows(manifest: pd.DataFrame) -> tuple[list[str], list[object], str]:
        paths = manifest["path"].astype(str).tolist()
        landmarks = manifest["landmarks"].tolist() if "landmarks" in manifest else [None] * len(paths)
        text = "\n".join(f"{p}\t{'' if pd.isna(lm) else lm}" for p, lm in zip(paths, landmarks, strict=True))
        return paths, landmarks, hashlib.sha256(text.encode()).hexdigest()[:16]

    def decide(self, manifest: pd.DataFrame, prep: Preprocessing) -> crop_policy.CropDecision:
        """The crop and alignment of this dataset for `prep`'s settings (surveyed once)."""
        paths, landmarks, digest = self._rows(manifest)
        key = (digest, prep.crop, prep.align, prep.crop_margin)
        if key not in self._decisions:
            self._decisions[key] = crop_policy.decide(paths, landmarks, prep.crop, prep.align, prep.crop_margin)
        return self._decisions[key]

    def resolve(self, manifest: pd.DataFrame, prep: Preprocessing) -> Preprocessing:
        """`prep` with `auto` crop and alignment replaced by the dataset's decision."""
        return prep if prep.resolved else prep.with_geometry(self.decide(manifest, prep).geometry)

    def images(self, manifest: pd.DataFrame, prep: Preprocessing) -> np.ndarray:
        """Faces for every row of `manifest`, in row order (`auto` settings resolved first)."""
        prep = self.resolve(manifest, prep)
        paths, landmarks, digest = self._rows(manifest)
        key = f"{prep.cache_key()}-{digest}"
        if key in self._memory:
            return self._memory[key]
        file = self._folder / f"faces-{key}.npy" if self._folder else None
        if file is not None and file.is_file():
            images = np.load(file, mmap_mode="r")
        else:
            matrices = placements(paths, landmarks, prep.geometry, prep.image_size, progress=self._progress)
            images = decode_faces(paths, matrices, prep.image_size, prep.channels)
            if file is not None:
                file.parent.mkdir(parents=True, exist_ok=True)
                # A temporary file of this process's own, removed if the save fails: a shared name
                # let two workers write one file at once, and a full disk left it behind.
                with replacing(file) as tmp, tmp.open("wb") as out:
                    np.save(out, images)
        self._memory[key] = images
        return images


# --------------------------------------------------------------------------------------
# Labels and normalisation


def encode_labels(manifest: pd.DataFrame, aus: Sequence[str], *, fine: bool = False) -> dict[str, np.ndarray]:
    """One-hot emotion (all zeros when missing) and multi-hot AUs (-1 when missing).

    The zero row and the -1 entries are the masks the losses and metrics read, so an image
    with only one kind of label still trains the other head's shared features. With `fine`,
    also one-hot CK+ emotions (`fine_emotion`, over FINE_EMOTIONS) from the `ck_emotion`
    column, all zeros where it is missing or neutral.
    """
    n = len(manifest)
    emotion = _one_hot_rows(manifest["emotion_num"].fillna(-1).astype(int).to_numpy(), len(EMOTION_CLASSES))
    au = np.full((n, len(aus)), -1.0, np.float32)
    for j, col in enumerate(aus):
        if col in manifest:
            values = pd.to_numeric(manifest[col], errors="coerce").to_numpy(dtype=float)
            au[:, j] = np.where(np.isnan(values), -1.0, (values > 0).astype(float))
    labels = {"emotion": emotion, "aus": au}
    if fine:
        names = manifest["ck_emotion"] if "ck_emotion" in manifest else pd.Series([None] * n)
        codes = np.asarray(pd.Categorical(names, categories=FINE_EMOTIONS).codes)  # -1: missing, neutral
        labels["fine_emotion"] = _one_hot_rows(codes, len(FINE_EMOTIONS))
    return labels


def _one_hot_rows(codes: np.ndarray, k: int) -> np.ndarray:
    """One-hot rows of integer class codes; -1 (unknown) gives the all-zero row the losses mask."""
    out = np.zeros((len(codes), k), np.float32)
    known = codes >= 0
    out[np.flatnonzero(known), codes[known]] = 1.0
    return out


def normalisation_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the (training) images, std floored to avoid blow-ups."""
    flat = images.reshape(-1, images.shape[-1]).astype(np.float64)
    mean = flat.mean(axis=0)
    std = np.maximum(flat.std(axis=0), 1.0)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def normalise(images: tf.Tensor, prep: Preprocessing) -> tf.Tensor:
    mean = tf.constant(prep.mean, tf.float32)
    std = tf.constant(prep.std, tf.float32)
    return (tf.cast(images, tf.float32) - mean) / std


# --------------------------------------------------------------------------------------
# Augmentation (training only)


@dataclass(frozen=True)
class Augmentation:
    rotation: float = 8.0  # degrees
    shift: float = 0.06  # fraction of the side
    zoom: float = 0.08  # fraction
    flip: bool = True
    brightness: float = 0.15  # fraction of 255
    contrast: float = 0.2  # fraction

    @property
    def enabled(self) -> bool:
        return bool(self.rotation or self.shift or self.zoom or self.flip or self.brightness or self.contrast)


def _uniform(seed: tf.Tensor, n: tf.Tensor, bound: float, salt: int) -> tf.Tensor:
    return tf.random.stateless_uniform([n], seed=seed + salt, minval=-bound, maxval=bound)


def augment_batch(images: tf.Tensor, seed: tf.Tensor, aug: Augmentation) -> tf.Tensor:
    """Random affine (rotate, shift, zoom, flip) and photometric change of a float batch.

    Stateless ops keyed by `seed`, so a run is reproducible from its seed while every
    epoch and batch still sees different transformations.
    """
    n = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)
    angle = _uniform(seed, n, math.radians(aug.rotation), 1)
    scale = 1.0 + _uniform(seed, n, aug.zoom, 2)
    tx = _uniform(seed, n, aug.shift, 3) * size
    ty = _uniform(seed, n, aug.shift, 4) * size
    flip = tf.random.stateless_uniform([n], seed=seed + 5) < 0.5 if aug.flip else tf.zeros([n], tf.bool)
    sx = tf.where(flip, -1.0, 1.0)
    # Inverse map output->input about the centre: x_in = A^-1 (x_out - c - t) + c.
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    c = (size - 1.0) / 2.0
    a0, a1 = cos * sx, sin
    b0, b1 = -sin * sx, cos
    ox = c - (c + tx) * a0 - (c + ty) * a1
    oy = c - (c + tx) * b0 - (c + ty) * b1
    zeros = tf.zeros([n])
    transforms = tf.stack([a0, a1, ox, b0, b1, oy, zeros, zeros], axis=1)
    images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )
    if aug.brightness:
        images = images + _uniform(seed, n, aug.brightness * 255.0, 6)[:, None, None, None]
    if aug.contrast:
        factor = 1.0 + _uniform(seed, n, aug.contrast, 7)[:, None, None, None]
        mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
        images = (images - mean) * factor + mean
    return tf.clip_by_value(images, 0.0, 255.0)


# --------------------------------------------------------------------------------------
# Datasets


def pad_rows(images: np.ndarray, labels: dict[str, np.ndarray], multiple: int) -> tuple[np.ndarray, dict]:
    """Pad to a multiple of `multiple` rows with blank images and unlabelled labels (see make_dataset)."""
    extra = -len(images) % multiple
    if extra == 0:
        return images, labels
    images = np.concatenate([images, np.zeros((extra, *images.shape[1:]), images.dtype)])
    labels = {  # an all-zero one-hot row = unlabelled; -1 = unknown AU
        key: np.concatenate(
            [value, np.full((extra, *value.shape[1:]), 0 if key in ONE_HOT_LABELS else -1, value.dtype)]
        )
        for key, value in labels.items()
    }
    return images, labels


def make_dataset(
    images: np.ndarray,
    labels: dict[str, np.ndarray],
    prep: Preprocessing,
    *,
    batch_size: int = 16,
    training: bool = False,
    seed: int = 0,
    augmentation: Augmentation | None = None,
    replicas: int = 1,
    weights: np.ndarray | None = None,
    mixup: float = 0.0,
) -> tf.data.Dataset:
    """Batches of (normalised image, {"emotion", "aus"}[, weight]) for fit/evaluate/predict.

    With `weights` (one per image) each element carries a third item, the sample weight
    Keras multiplies into both heads' losses (metrics ignore it).

    Training sets reshuffle every epoch and, with `augmentation`, transform each batch;
    evaluation sets keep row order and are never augmented.

    Under a strategy with several `replicas`, every batch must split evenly (TensorFlow fails
    on per-replica batches of different sizes): training drops the short last batch (a
    different remainder each epoch, as the set is reshuffled) and evaluation sets are padded
    with unlabelled blank rows, which the masked losses and metrics ignore; callers of
    predict drop the padded rows (`pad_rows`). `mixup` > 0 mixes training batches after
    augmentation (`ckrun.data.mixup`).
    """
    if replicas > 1 and not training:
        batch_size = -(-batch_size // replicas) * replicas
        images, labels = pad_rows(images, labels, replicas)
    n = len(images)
    if weights is not None:
        if replicas > 1 and not training:
            weights = np.concatenate([weights, np.zeros(len(images) - len(weights), weights.dtype)])
        ds = tf.data.Dataset.from_tensor_slices((images, labels, np.asarray(weights, np.float32)))
    else:
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if training:
        ds = ds.shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=training and replicas > 1)
    if training and augmentation is not None and augmentation.enabled:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda batch, s: (
                augment_batch(tf.cast(batch[0], tf.float32), tf.cast(s % (2**31), tf.int32), augmentation),
                *batch[1:],
            ),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
    if training and mixup > 0:
        from ckrun.data.mixup import mix_batch

        mix_seeds = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, mix_seeds).map(
            lambda batch, s: mix_batch(batch, tf.cast(s % (2**31), tf.int32), mixup),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
    ds = ds.map(lambda x, *rest: (normalise(x, prep), *rest), num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.prefetch(AUTOTUNE)
