"""The numbers of a dataset description: what is there, how it is skewed, what it hides.

`compute_description` turns a manifest into a `DatasetDescription`: counts per class, split
and sequence (`ckrun.data.counts`), image headers (here), action-unit frequency and
co-occurrence (`ckrun.data.au_stats`), subjects per demographic group
(`ckrun.data.demographics`) and the caveats those numbers imply (`ckrun.data.limitations`).
The numbers behind the CK+ bias discussion (class imbalance, demographic skew, shared
peak-frame labels, AU co-occurrence) are computed here rather than written by hand, so a
report never quotes numbers the data does not support. `ckrun.data.describe` writes them
out as ``summary.md``, ``numbers.json`` and figures.

Every section is optional: a folder-per-class set has no AUs, an AU-only set has no
emotions, most sets have no demographics; a missing section becomes a note, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ckrun.data.au_stats import (
    MIN_PAIR_POSITIVES,
    StrongestPairs,
    au_correlation,
    au_frequency,
    emotion_au_rates,
    strongest_pairs,
)
from ckrun.data.counts import ck_emotion_counts, class_counts, imbalance, label_column, overview_counts, split_table
from ckrun.data.demographics import DEMOGRAPHIC_COLUMNS, demographic_tables
from ckrun.data.labels import EMOTION_CLASSES, au_columns
from ckrun.data.limitations import limitations
from ckrun.errors import DataError


@dataclass
class ImageStats:
    """Header facts about the images (size as ``"WxH"``, PIL mode, file format)."""

    checked: int
    total: int
    sizes: dict[str, int]
    modes: dict[str, int]
    formats: dict[str, int]
    unreadable: list[str] = field(default_factory=list)


@dataclass
class DatasetDescription:
    """Every number `describe` found, and the files it wrote, for reports to reuse.

    Optional sections are ``None`` (or empty) when the manifest cannot support them;
    `notes` says why.
    """

    counts: dict[str, int | None]
    emotion_counts: dict[str, int]
    ck_emotion_counts: dict[str, int]
    imbalance_ratio: float | None
    majority_class: str | None
    minority_class: str | None
    images: ImageStats | None
    au_frequency: pd.DataFrame | None
    au_correlation: pd.DataFrame | None
    strongest_pairs: StrongestPairs | None
    emotion_au: pd.DataFrame | None
    splits: pd.DataFrame | None
    split_subject_overlap: int | None
    demographics: dict[str, pd.DataFrame]
    limitations: list[str]
    notes: list[str]
    files: dict[str, Path] = field(default_factory=dict)


def compute_description(
    manifest: pd.DataFrame,
    *,
    image_sample: int | None = None,
    progress: bool = False,
) -> DatasetDescription:
    """All numbers of `describe` without writing anything (reports call this directly)."""
    if len(manifest) == 0:
        raise DataError("the manifest is empty: no images to describe")
    notes: list[str] = []
    emotions = label_column(manifest, "emotion")
    emotion_counts = class_counts(emotions)
    ck_counts = ck_emotion_counts(label_column(manifest, "ck_emotion"))
    majority, minority, ratio = imbalance(emotion_counts)
    if not emotion_counts:
        notes.append("No image has an emotion label (AU-only set): emotion sections skipped.")
    missing = [c for c in EMOTION_CLASSES if emotion_counts and c not in emotion_counts]
    if missing:
        notes.append(f"No images of class {', '.join(missing)}.")

    au_cols = au_columns(list(manifest.columns))
    au_freq = corr = pairs = emotion_au = None
    if au_cols and manifest[au_cols].isna().all().all():
        notes.append("Every AU value is unknown (emotion-only set): action-unit sections skipped.")
    elif au_cols:
        aus = manifest[au_cols].astype(float)
        au_freq = au_frequency(aus)
        corr = au_correlation(aus)
        pairs = strongest_pairs(corr, au_freq["positives"], min_positives=MIN_PAIR_POSITIVES)
        emotion_au = emotion_au_rates(aus, emotions)
    else:
        notes.append("The manifest has no AU columns: action-unit sections skipped.")

    splits, overlap = split_table(manifest)
    if splits is None:
        notes.append("The manifest has no split column: per-split tables skipped.")
    demographics = demographic_tables(manifest)
    absent = [c for c in DEMOGRAPHIC_COLUMNS if c not in demographics]
    if absent:
        notes.append(f"No demographic data for: {', '.join(absent)}.")

    images = image_stats(manifest, sample=image_sample, progress=progress)
    if images is None:
        notes.append("The manifest has no path column: image sizes skipped.")
    elif images.unreadable:
        notes.append(f"{len(images.unreadable)} image(s) could not be opened, e.g. {images.unreadable[0]}.")

    desc = DatasetDescription(
        counts=overview_counts(manifest, emotions, au_cols),
        emotion_counts=emotion_counts,
        ck_emotion_counts=ck_counts,
        imbalance_ratio=ratio,
        majority_class=majority,
        minority_class=minority,
        images=images,
        au_frequency=au_freq,
        au_correlation=corr,
        strongest_pairs=pairs,
        emotion_au=emotion_au,
        splits=splits,
        split_subject_overlap=overlap,
        demographics=demographics,
        limitations=[],
        notes=notes,
    )
    desc.limitations = limitations(desc, manifest)
    return desc


# %% Images


def image_stats(manifest: pd.DataFrame, *, sample: int | None = None, progress: bool = False) -> ImageStats | None:
    """Sizes, modes and formats from image headers; unreadable files are listed, not fatal.

    PIL's ``open`` parses only the header, so reading every image stays fast.
    """
    if "path" not in manifest.columns:
        return None
    from PIL import Image
    from tqdm import tqdm

    paths = manifest["path"].dropna().astype(str)
    total = len(paths)
    if sample is not None and sample < total:
        paths = paths.sample(n=max(sample, 0), random_state=0)
    sizes: dict[str, int] = {}
    modes: dict[str, int] = {}
    formats: dict[str, int] = {}
    unreadable: list[str] = []
    for path in tqdm(paths, desc="image headers", disable=not progress, unit="img"):
        try:
            with Image.open(path) as img:
                size, mode, fmt = f"{img.width}x{img.height}", img.mode, str(img.format)
        except (OSError, ValueError):
            unreadable.append(path)
            continue
        sizes[size] = sizes.get(size, 0) + 1
        modes[mode] = modes.get(mode, 0) + 1
        formats[fmt] = formats.get(fmt, 0) + 1
    return ImageStats(
        checked=len(paths),
        total=total,
        sizes=_by_count(sizes),
        modes=_by_count(modes),
        formats=_by_count(formats),
        unreadable=unreadable,
    )


def _by_count(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
