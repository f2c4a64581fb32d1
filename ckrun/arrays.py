"""A dataset as model-ready arrays: which AUs to predict, faces and labels per split, loss weights.

Everything here is decided from the training split alone (AU selection, normalisation
statistics, class and AU weights), so validation and test never leak into a run. The ResNet
run and the linear baseline build their arrays the same way; the baseline just asks for
smaller grey faces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ckrun import names
from ckrun.config import TrainConfig
from ckrun.data.labels import au_code
from ckrun.data.loader import PreparedData
from ckrun.errors import ConfigError, DataError

if TYPE_CHECKING:
    from ckrun.data.pipeline import FaceCache, Preprocessing


@dataclass
class SplitArrays:
    images: np.ndarray
    labels: dict[str, np.ndarray]
    rows: pd.DataFrame | None = None  # the manifest rows behind the arrays (for per-image predictions)


def select_aus(train: pd.DataFrame, cfg: TrainConfig, available: Sequence[str]) -> list[str]:
    """AU outputs: the explicit list, or AUs with >= min_au_count positives in train."""
    if cfg.aus is not None:
        wanted = [f"AU{int(a)}" for a in cfg.aus]
        missing = [a for a in wanted if a not in available]
        if missing:
            raise ConfigError(f"aus: {', '.join(missing)} not in the data (it has {', '.join(available) or 'no AUs'})")
        return wanted
    counts = {c: int((pd.to_numeric(train[c], errors="coerce") > 0).sum()) for c in available}
    return sorted((c for c, n in counts.items() if n >= cfg.min_au_count), key=au_code)


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
    from ckrun.data.pipeline import Preprocessing, encode_labels, normalisation_stats

    size, chans = image_size or cfg.image_size, channels or cfg.channels
    prep = Preprocessing(size, chans, cfg.crop, cfg.crop_margin, aus=tuple(aus))
    images = face_cache.images(data.manifest, prep)
    arrays = {}
    for split in names.SPLITS:
        mask = (data.manifest["split"] == split).to_numpy()
        rows = data.manifest.loc[mask].reset_index(drop=True)
        arrays[split] = SplitArrays(np.asarray(images[mask]), encode_labels(rows, aus), rows)
    if len(arrays["train"].images) == 0 or len(arrays["val"].images) == 0:
        raise DataError("the train and val splits must both hold images")
    mean, std = normalisation_stats(arrays["train"].images)
    return arrays, Preprocessing(size, chans, cfg.crop, cfg.crop_margin, mean, std, aus=tuple(aus))


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
