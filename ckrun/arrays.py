"""A dataset as model-ready arrays: which AUs to predict, faces and labels per split, loss weights.

Everything here is decided from the training split alone (AU selection, normalisation
statistics, class and AU weights), so validation and test never leak into a run. The ResNet
run and the linear baseline build their arrays the same way; the baseline just asks for
smaller grey faces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ckrun import names
from ckrun.config import TrainConfig
from ckrun.data.labels import FINE_EMOTIONS, NEGATIVE_EMOTIONS, au_code
from ckrun.data.loader import PreparedData
from ckrun.data.manifest import PEAK_DISTANCE
from ckrun.errors import ConfigError, DataError

if TYPE_CHECKING:
    from ckrun.data.crop_policy import CropDecision
    from ckrun.data.pipeline import FaceCache, Preprocessing


@dataclass
class SplitArrays:
    images: np.ndarray
    labels: dict[str, np.ndarray]
    weights: np.ndarray | None = None  # per-image loss weights (training only; None = all 1)
    rows: pd.DataFrame | None = None  # the manifest rows behind the arrays (for per-image predictions)


def select_aus(train: pd.DataFrame, cfg: TrainConfig, available: Sequence[str]) -> list[str]:
    """AU outputs: the explicit list, or AUs with >= min_au_count positives in train.

    Called before a run opens, so it also refuses a train split that leaves a head nothing
    to learn (`check_learnable`): such a run would finish with scores that mean nothing.
    """
    if cfg.aus is not None:
        wanted = [f"AU{int(a)}" for a in cfg.aus]
        repeated = sorted({a for a in wanted if wanted.count(a) > 1}, key=au_code)
        if repeated:  # two outputs for one AU: its scores counted twice in every AU average
            raise ConfigError(f"aus: {', '.join(repeated)} listed more than once (received {list(cfg.aus)})")
        missing = [a for a in wanted if a not in available]
        if missing:
            raise ConfigError(f"aus: {', '.join(missing)} not in the data (it has {', '.join(available) or 'no AUs'})")
        check_learnable(train, cfg, wanted, available)
        return wanted
    counts = {c: int((pd.to_numeric(train[c], errors="coerce") > 0).sum()) for c in available}
    chosen = sorted((c for c, n in counts.items() if n >= cfg.min_au_count), key=au_code)
    check_learnable(train, cfg, chosen, available)
    return chosen


def check_learnable(train: pd.DataFrame, cfg: TrainConfig, aus: Sequence[str], available: Sequence[str]) -> None:
    """Refuse a train split with one emotion class, or with neither emotion nor AU labels to learn."""
    emotions = train["emotion"] if "emotion" in train else pd.Series(dtype=object)
    classes = sorted(str(c) for c in emotions.dropna().unique())
    learns_emotion = len(classes) > 1 and cfg.emotion_loss_weight > 0
    if len(classes) == 1 and cfg.emotion_loss_weight > 0:
        alone = "; or train the AU head alone with --set emotion_loss_weight=0" if aus else ""
        raise DataError(
            f"the train split has one emotion class ({classes[0]}, {len(train)} images): the emotion head needs "
            f"at least two; add images of other classes{alone}"
        )
    if not learns_emotion and not aus:
        why = "no emotion label" if not classes else "emotion_loss_weight=0"
        if available:
            au_why = f"no AU has min_au_count={cfg.min_au_count} positive images (lower it with --set min_au_count)"
        else:
            au_why = "no AU label"
        raise DataError(f"nothing to learn: the train split ({len(train)} images) has {why} and {au_why}")


def build_arrays(
    cfg: TrainConfig,
    data: PreparedData,
    aus: Sequence[str],
    face_cache: FaceCache,
    *,
    image_size: int | None = None,
    channels: int | None = None,
) -> tuple[dict[str, SplitArrays], Preprocessing]:
    """Decoded faces and labels per split, and the Preprocessing with train-split statistics."""
    from ckrun.data.pipeline import encode_labels, normalisation_stats

    size, chans = image_size or cfg.image_size, channels or cfg.channels
    geometry = face_decision(cfg, data, face_cache).geometry
    prep = _unresolved(cfg, size, chans).with_geometry(geometry)
    images = face_cache.images(data.manifest, prep)
    if prep.reference == "neutral":
        from ckrun.data import reference

        images = reference.stack(images, face_cache.images(reference.neutral_rows(data.manifest), prep))
    arrays = {}
    fine = cfg.fine_emotion_weight > 0 and fine_emotion_images(data.part("train")) > 0
    for split in names.SPLITS:
        mask = (data.manifest["split"] == split).to_numpy()
        rows = data.manifest.loc[mask].reset_index(drop=True)
        weights = frame_weights(rows, cfg.frame_weight_decay) if split == "train" else None
        labels = encode_labels(rows, aus, fine=fine)
        arrays[split] = SplitArrays(np.asarray(images[mask]), labels, weights=weights, rows=rows)
    if len(arrays["train"].images) == 0 or len(arrays["val"].images) == 0:
        raise DataError("the train and val splits must both hold images")
    mean, std = normalisation_stats(arrays["train"].images)
    return arrays, replace(prep, mean=mean, std=std, aus=tuple(aus))


def fine_emotion_images(part: pd.DataFrame) -> int:
    """Images of `part` a fine-emotion head learns from: those with a CK+ emotion name (not neutral).

    0 unless the names split the negative class (two of its five emotions or more): that is
    all the head adds to the three-class one. A manifest of the three classes names only
    `surprise`, a class and an emotion alike, and a head fed that would only echo the emotion head.
    """
    if "ck_emotion" not in part:
        return 0
    names = part["ck_emotion"]
    if names[names.isin(NEGATIVE_EMOTIONS)].nunique() < 2:
        return 0
    return int(names.isin(FINE_EMOTIONS).sum())


def _unresolved(cfg: TrainConfig, size: int, channels: int) -> Preprocessing:
    from ckrun.data.pipeline import Preprocessing

    return Preprocessing(size, channels, cfg.crop, cfg.crop_margin, align=cfg.align, reference=cfg.reference)


def face_decision(cfg: TrainConfig, data: PreparedData, face_cache: FaceCache) -> CropDecision:
    """How this dataset's faces are cropped and aligned under `cfg` (surveyed once per cache).

    The survey reads images of every split but no label, so it decides nothing a test label
    could influence (see `ckrun.data.crop_policy`).
    """
    return face_cache.decide(data.manifest, _unresolved(cfg, cfg.image_size, cfg.channels))


def frame_weights(part: pd.DataFrame, decay: float) -> np.ndarray | None:
    """decay**(frames before the peak) per image, scaled to mean 1; None when all would be 1.

    Mean 1 keeps the loss on the scale of an unweighted run, so learning rate and loss
    weights mean the same with or without frame weighting.
    """
    if decay == 1.0 or PEAK_DISTANCE not in part or part.empty:
        return None
    distance = pd.to_numeric(part[PEAK_DISTANCE]).fillna(0).to_numpy(dtype=float)
    weights = np.power(decay, distance)
    return (weights / weights.mean()).astype(np.float32)


def emotion_class_weights(onehot: np.ndarray) -> list[float]:
    """Inverse-frequency weights (mean 1 over present classes), 1 for absent classes."""
    counts = onehot.sum(axis=0)
    present = counts > 0
    weights = np.ones(len(counts))
    if present.any():
        weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return [float(w) for w in weights]


def au_positive_weights(au: np.ndarray) -> list[float]:
    """Negative/positive ratio per AU, clipped to [1, 10] so rare AUs are not ignored."""
    pos = (au == 1).sum(axis=0)
    neg = (au == 0).sum(axis=0)
    return [float(np.clip(n / max(p, 1), 1.0, 10.0)) for p, n in zip(pos, neg, strict=True)]


def au_repeat_factors(au: np.ndarray, threshold: float) -> np.ndarray:
    """Repeat-factor sampling (Gupta et al. 2019, LVIS) over AUs: how often each training image is seen.

    An AU present in a fraction f of the labelled images has r = max(1, sqrt(threshold / f)); an
    image's factor is the largest r of the AUs it shows (1 when it shows none or only common
    ones). The square root oversamples rare AUs without letting a handful of images dominate
    an epoch, which is why it beats plain inverse-frequency sampling on long-tailed labels.
    """
    au = np.asarray(au)
    if au.ndim != 2 or au.shape[1] == 0 or not len(au):
        return np.ones(len(au))
    known = (au >= 0).sum(axis=0)
    freq = np.divide((au == 1).sum(axis=0), known, out=np.zeros(au.shape[1]), where=known > 0)
    per_au = np.where(freq > 0, np.sqrt(threshold / np.maximum(freq, 1e-12)), 1.0).clip(min=1.0)
    return np.where(au == 1, per_au[None, :], 1.0).max(axis=1)


def repeat_counts(factors: np.ndarray, seed: int) -> np.ndarray:
    """Whole repeats per image: the factor's floor plus one with probability its fraction (mean = factor)."""
    factors = np.asarray(factors, float)
    whole = np.floor(factors)
    extra = np.random.default_rng(seed).random(len(factors)) < (factors - whole)
    return (whole + extra).astype(int)


def resampled(split: SplitArrays, counts: np.ndarray) -> SplitArrays:
    """`split` with image i repeated counts[i] times (labels and loss weights alike), for training only."""
    return SplitArrays(
        np.repeat(split.images, counts, axis=0),
        {k: np.repeat(v, counts, axis=0) for k, v in split.labels.items()},
        None if split.weights is None else np.repeat(split.weights, counts, axis=0),
    )
