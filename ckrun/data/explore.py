"""Describe a manifest before training on it: what is there, how it is skewed, what it hides.

`describe` turns a manifest into ``summary.md`` (for a researcher), ``numbers.json`` (for
scripts and reports) and figures. The numbers behind the CK+ bias discussion (class
imbalance, demographic skew, shared peak-frame labels, AU co-occurrence) are computed here
rather than written by hand, so a report never quotes numbers the data does not support.

Every section is optional: a folder-per-class set has no AUs, an AU-only set has no
emotions, most sets have no demographics; a missing section becomes a note, never an error.
The figure functions and `strongest_pairs` are public because the report generator reuses
them on other tables.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ckrun.data.labels import CK_EMOTION_CODES, CK_TO_CLASS, EMOTION_CLASSES, au_columns, au_label
from ckrun.errors import DataError

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
CLASS_COLOURS: dict[str, str] = {
    "negative": "#D55E00",
    "positive": "#009E73",
    "surprise": "#0072B2",
}
_OTHER_COLOUR = "#999999"

DPI = 150
DEMOGRAPHIC_COLUMNS: tuple[str, ...] = ("sex", "ethnicity", "age")
# (label, lowest age, highest age) inclusive; CK+ participants are 18-50.
AGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("18-24", 18, 24),
    ("25-34", 25, 34),
    ("35-50", 35, 50),
)
UNASSIGNED = "unassigned"  # split-table row for images without a split
# A demographic group above this share of subjects is called a skew in the limitations.
SKEW_SHARE = 60.0
# AUs with fewer positives are left out of the strongest-pair lists (chance correlations).
MIN_PAIR_POSITIVES = 3
# Annotate heatmap cells only while the numbers stay legible.
_ANNOTATE_MAX_AUS = 12
_ANNOTATE_MAX_AUS_EMOTION = 40

FILES = {
    "summary": "summary.md",
    "numbers": "numbers.json",
    "emotion_counts": "emotion_counts.png",
    "image_sizes": "image_sizes.png",
    "au_frequency": "au_frequency.png",
    "au_correlation": "au_correlation.png",
    "emotion_au": "emotion_au.png",
}


class StrongestPairs(NamedTuple):
    """Most positively and most negatively correlated AU pairs, strongest first.

    Each frame has columns ``au_a, au_b, label_a, label_b, r``.
    """

    positive: pd.DataFrame
    negative: pd.DataFrame


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

    def to_json(self) -> dict[str, Any]:
        """The numbers as plain JSON types (NaN becomes null) for ``numbers.json``."""
        pairs = self.strongest_pairs
        return _jsonable(
            {
                "counts": self.counts,
                "emotion_counts": self.emotion_counts,
                "ck_emotion_counts": self.ck_emotion_counts,
                "imbalance_ratio": self.imbalance_ratio,
                "majority_class": self.majority_class,
                "minority_class": self.minority_class,
                "images": None if self.images is None else vars(self.images),
                "au_frequency": _frame_to_dict(self.au_frequency),
                "au_correlation": _frame_to_dict(self.au_correlation),
                "strongest_pairs": None
                if pairs is None
                else {
                    "positive": pairs.positive.to_dict(orient="records"),
                    "negative": pairs.negative.to_dict(orient="records"),
                },
                "emotion_au": _frame_to_dict(self.emotion_au),
                "splits": _frame_to_dict(self.splits),
                "split_subject_overlap": self.split_subject_overlap,
                "demographics": {k: _frame_to_dict(v) for k, v in self.demographics.items()},
                "limitations": self.limitations,
                "notes": self.notes,
                "files": {k: str(v) for k, v in self.files.items()},
            }
        )


# %% Entry point


def describe(
    manifest: pd.DataFrame,
    out_dir: Path,
    *,
    image_sample: int | None = None,
    progress: bool = False,
) -> DatasetDescription:
    """Write ``summary.md``, ``numbers.json`` and figures for `manifest` into `out_dir`.

    `image_sample` bounds how many image headers are read (a fixed random sample, so
    repeated runs agree); ``None`` reads them all, which is cheap since pixels are never
    decoded.
    """
    desc = compute_description(manifest, image_sample=image_sample, progress=progress)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    desc.files.update(_write_figures(desc, out_dir))
    desc.files["numbers"] = out_dir / FILES["numbers"]
    desc.files["summary"] = out_dir / FILES["summary"]
    desc.files["numbers"].write_text(json.dumps(desc.to_json(), indent=2, allow_nan=False) + "\n")
    desc.files["summary"].write_text(render_summary(desc))
    return desc


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
    emotions = _labels(manifest, "emotion")
    emotion_counts = class_counts(emotions)
    ck_counts = _ck_counts(_labels(manifest, "ck_emotion"))
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


# %% Counts


def _labels(manifest: pd.DataFrame, column: str) -> pd.Series:
    """`column` as strings with <NA> where unlabelled; all-NA when the column is absent."""
    if column not in manifest.columns:
        return pd.Series(pd.NA, index=manifest.index, dtype="string")
    return manifest[column].astype("string")


def _ordered(counts: pd.Series, order: Sequence[str]) -> dict[str, int]:
    """Counts as a dict in a fixed order (known names first), so tables and plots line up."""
    known = [k for k in order if k in counts.index]
    rest = sorted(k for k in counts.index if k not in order)
    return {str(k): int(counts[k]) for k in [*known, *rest]}


def class_counts(emotions: pd.Series) -> dict[str, int]:
    """Images per high-level class present, in the emotion head's order."""
    return _ordered(emotions.dropna().value_counts(), EMOTION_CLASSES)


def _ck_counts(ck_emotions: pd.Series) -> dict[str, int]:
    return _ordered(ck_emotions.dropna().value_counts(), list(CK_EMOTION_CODES.values()))


def imbalance(counts: Mapping[str, int]) -> tuple[str | None, str | None, float | None]:
    """(majority class, minority class, largest / smallest count); Nones below two classes."""
    if len(counts) < 2:
        return None, None, None
    majority = max(counts, key=lambda k: counts[k])
    minority = min(counts, key=lambda k: counts[k])
    return majority, minority, counts[majority] / counts[minority]


def _sequence_keys(manifest: pd.DataFrame) -> pd.Series | None:
    """One key per (subject, sequence): sequence names like '001' repeat across subjects."""
    if "sequence" not in manifest.columns or manifest["sequence"].isna().all():
        return None
    subject = manifest["subject"] if "subject" in manifest.columns else ""
    keys = subject.astype("string") + "/" + manifest["sequence"].astype("string")
    return keys.where(manifest["sequence"].notna())


def overview_counts(manifest: pd.DataFrame, emotions: pd.Series, au_cols: list[str]) -> dict[str, int | None]:
    """Images, sequences and subjects, with and without labels of each head."""
    seq = _sequence_keys(manifest)
    has_emotion = emotions.notna()
    counts: dict[str, int | None] = {
        "images": len(manifest),
        "images_with_emotion": int(has_emotion.sum()),
        "images_with_aus": int(manifest[au_cols].notna().any(axis=1).sum()) if au_cols else 0,
        "subjects": int(manifest["subject"].nunique()) if "subject" in manifest.columns else None,
        "sequences": None,
        "sequences_with_emotion": None,
        "sequences_without_emotion": None,
    }
    if seq is not None:
        labelled = seq[has_emotion].dropna().unique()
        counts["sequences"] = int(seq.nunique())
        counts["sequences_with_emotion"] = len(labelled)
        counts["sequences_without_emotion"] = int(seq.nunique()) - len(labelled)
    return counts


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


# %% Action units


def au_frequency(aus: pd.DataFrame) -> pd.DataFrame:
    """Per AU: positives, negatives, unknown, and the positive rate among known rows."""
    positives = (aus == 1).sum()
    negatives = (aus == 0).sum()
    known = aus.notna().sum()
    rate = positives / known.where(known > 0)
    frame = pd.DataFrame(
        {
            "label": [au_label(c) for c in aus.columns],
            "positives": positives.astype(int),
            "negatives": negatives.astype(int),
            "unknown": (len(aus) - known).astype(int),
            "rate": rate.astype(float),
        },
        index=pd.Index(aus.columns, name="au"),
    )
    return frame


def au_correlation(aus: pd.DataFrame) -> pd.DataFrame:
    """Pearson (phi on 0/1) between AUs over rows where both are known.

    Constant AUs (never or always present) have no defined correlation and stay NaN.
    """
    return aus.astype(float).corr(method="pearson", min_periods=2)


def strongest_pairs(
    corr: pd.DataFrame,
    positives: Mapping[str, int] | pd.Series | None = None,
    *,
    n: int = 5,
    min_positives: int = MIN_PAIR_POSITIVES,
) -> StrongestPairs:
    """Top `n` positive and negative AU pairs of `corr`, skipping rare AUs.

    An AU seen only once or twice correlates perfectly with whatever co-occurred by
    chance; `min_positives` (needs `positives`, counts per AU) keeps those out.
    """
    cols = list(corr.columns)
    if positives is not None:
        cols = [c for c in cols if int(positives.get(c, 0)) >= min_positives]
    rows = []
    for i, a in enumerate(cols):
        for b in cols[i + 1 :]:
            r = corr.at[a, b]
            if pd.notna(r):
                rows.append((a, b, au_label(a), au_label(b), float(r)))
    pairs = pd.DataFrame(rows, columns=["au_a", "au_b", "label_a", "label_b", "r"])
    pos = pairs[pairs["r"] > 0].sort_values("r", ascending=False, kind="stable")
    neg = pairs[pairs["r"] < 0].sort_values("r", ascending=True, kind="stable")
    return StrongestPairs(pos.head(n).reset_index(drop=True), neg.head(n).reset_index(drop=True))


def emotion_au_rates(aus: pd.DataFrame, emotions: pd.Series) -> pd.DataFrame | None:
    """Positive rate of each AU within each class (rows: classes, plus an ``images`` column).

    Rates are over images whose AU is known, so AU-unknown rows do not dilute them.
    """
    mask = emotions.notna() & aus.notna().any(axis=1)
    if not mask.any():
        return None
    rates = aus[mask].groupby(emotions[mask].astype(str)).mean()
    rates.insert(0, "images", aus[mask].groupby(emotions[mask].astype(str)).size())
    order = [c for c in EMOTION_CLASSES if c in rates.index]
    order += sorted(c for c in rates.index if c not in order)
    rates = rates.loc[order]
    rates.index.name = "emotion"
    return rates


# %% Splits and demographics


def split_table(manifest: pd.DataFrame) -> tuple[pd.DataFrame | None, int | None]:
    """Images, sequences, subjects and class counts per split, and subjects in >1 split.

    The overlap count is a leakage check: a subject in two splits inflates test scores.
    """
    if "split" not in manifest.columns or manifest["split"].isna().all():
        return None, None
    split = manifest["split"].astype("string")
    order = [s for s in ("train", "val", "test") if s in set(split.dropna())]
    order += sorted(s for s in split.dropna().unique() if s not in order)
    if split.isna().any():
        order.append(UNASSIGNED)
    rows = {}
    for name in order:
        sel = split.isna() if name == UNASSIGNED else (split == name).fillna(False)
        rows[name] = _split_row(manifest, sel.to_numpy(dtype=bool))
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "split"
    overlap = None
    if "subject" in manifest.columns:
        per_subject = manifest.groupby("subject")["split"].nunique()
        overlap = int((per_subject > 1).sum())
    return table, overlap


def _split_row(manifest: pd.DataFrame, sel: np.ndarray) -> dict[str, int | None]:
    """One split's images, sequences, subjects and images per class (all classes listed)."""
    seq = _sequence_keys(manifest)
    emotions = _labels(manifest, "emotion")
    row: dict[str, int | None] = {
        "images": int(sel.sum()),
        "sequences": None if seq is None else int(seq[sel].nunique()),
        "subjects": int(manifest.loc[sel, "subject"].nunique()) if "subject" in manifest.columns else None,
    }
    counts = emotions[sel].dropna().value_counts()
    for cls in class_counts(emotions):
        row[cls] = int(counts.get(cls, 0))
    row["no_emotion"] = int(emotions[sel].isna().sum())
    return row


def _per_subject(manifest: pd.DataFrame, column: str) -> pd.Series:
    """One value per subject: demographics describe people, not images."""
    if "subject" not in manifest.columns:
        return manifest[column]
    return manifest.groupby("subject", sort=True)[column].agg(
        lambda s: s.dropna().iloc[0] if s.notna().any() else pd.NA
    )


_SEX_NAMES = {"f": "female", "female": "female", "m": "male", "male": "male"}


def _normalise_sex(value: object) -> object:
    if pd.isna(value):
        return value
    return _SEX_NAMES.get(str(value).strip().lower(), str(value).strip())


def age_band(age: float) -> str:
    """CK+-style age band of an age in years; anything outside 18-50 is 'other'."""
    for label, low, high in AGE_BANDS:
        if low <= age < high + 1:
            return label
    return "other"


def demographic_tables(manifest: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Subjects per sex / ethnicity / age band, with the % of all subjects.

    Only columns with at least one value get a table; missing values form an 'unknown' row.
    """
    tables: dict[str, pd.DataFrame] = {}
    for column in DEMOGRAPHIC_COLUMNS:
        if column not in manifest.columns or manifest[column].isna().all():
            continue
        values = _per_subject(manifest, column)
        if column == "age":
            ages = pd.to_numeric(values, errors="coerce")
            values = ages.map(lambda a: pd.NA if pd.isna(a) else age_band(float(a)))
            order = [b[0] for b in AGE_BANDS] + ["other"]
        else:
            if column == "sex":
                values = values.map(_normalise_sex)
            values = values.map(lambda v: v if pd.isna(v) else str(v))
            order = list(values.dropna().value_counts().index)
        tables[column] = _share_table(values, order)
    return tables


def _share_table(values: pd.Series, order: list[str]) -> pd.DataFrame:
    counts = values.dropna().value_counts()
    rows = {k: int(counts.get(k, 0)) for k in order if counts.get(k, 0) > 0}
    unknown = int(values.isna().sum())
    if unknown:
        rows["unknown"] = unknown
    table = pd.DataFrame({"subjects": pd.Series(rows, dtype=int)})
    table["percent"] = 100.0 * table["subjects"] / len(values)
    table.index.name = "group"
    return table


def age_range(manifest: pd.DataFrame) -> tuple[float, float, float] | None:
    """(youngest, median, oldest) subject age, or None without ages."""
    if "age" not in manifest.columns:
        return None
    ages = pd.to_numeric(_per_subject(manifest, "age"), errors="coerce").dropna()
    if ages.empty:
        return None
    return float(ages.min()), float(ages.median()), float(ages.max())


# %% Limitations


def limitations(desc: DatasetDescription, manifest: pd.DataFrame) -> list[str]:
    """Data-driven caveats, one sentence each, in the order a reader should weigh them."""
    lines = [
        _imbalance_sentence(desc),
        *_demographic_sentences(desc, manifest),
        _dependence_sentence(manifest),
        _unlabelled_sentence(desc),
        _leakage_sentence(desc),
    ]
    lines.append(
        "CK+ expressions are posed on instruction (a few smiles excepted) and mostly frontal, "
        "so scores here overstate what to expect on spontaneous expressions or other views."
    )
    return [line for line in lines if line]


def _imbalance_sentence(desc: DatasetDescription) -> str | None:
    if desc.imbalance_ratio is None or desc.majority_class is None:
        return None
    counts = desc.emotion_counts
    total = sum(counts.values())
    share = 100.0 * counts[desc.majority_class] / total
    return (
        f"Class imbalance: '{desc.majority_class}' has {counts[desc.majority_class]} of "
        f"{total} emotion-labelled images ({share:.0f}%), {desc.imbalance_ratio:.1f}x as many "
        f"as '{desc.minority_class}' ({counts[desc.minority_class]}); always predicting "
        f"'{desc.majority_class}' already scores {share:.0f}% accuracy, so report macro F1."
    )


def _demographic_sentences(desc: DatasetDescription, manifest: pd.DataFrame) -> list[str]:
    lines = []
    for column in ("ethnicity", "sex"):
        table = desc.demographics.get(column)
        if table is None:
            continue
        known = table.drop(index="unknown", errors="ignore")
        top = str(known["subjects"].idxmax())
        share = 100.0 * known.at[top, "subjects"] / known["subjects"].sum()
        n = int(known["subjects"].sum())
        if len(known) == 1:
            lines.append(f"No diversity by {column}: all {n} subjects with a recorded {column} are {top}.")
            continue
        word = "Skew" if share >= SKEW_SHARE else "Balance"
        lines.append(
            f"{word} by {column}: {share:.0f}% of the {n} subjects with a recorded {column} "
            f"are {top}, {100 - share:.0f}% belong to other groups."
        )
    ages = age_range(manifest)
    if ages is not None:
        lines.append(_age_sentence(*ages))
    return lines


def _age_sentence(low: float, median: float, high: float) -> str:
    """Which age groups a model trained here has never seen."""
    unseen = [g for g, absent in (("children", low >= 18), ("older adults", high <= 60)) if absent]
    tail = f"; {' and '.join(unseen)} are not represented." if unseen else "."
    return f"Subjects' ages span {low:g}-{high:g} (median {median:g}){tail}"


def _dependence_sentence(manifest: pd.DataFrame) -> str | None:
    """How many images share one sequence's peak-frame label (they are near-duplicates)."""
    seq = _sequence_keys(manifest)
    if seq is None:
        return None
    labelled = seq[_labels(manifest, "emotion").notna()].dropna()
    if labelled.empty:
        return None
    per_seq = labelled.value_counts()
    if per_seq.max() <= 1:
        return None
    return (
        f"Images are not independent: {len(labelled)} emotion-labelled images come from "
        f"{len(per_seq)} sequences ({per_seq.mean():.1f} per sequence, up to {per_seq.max()}), "
        "and frames of one sequence share its peak-frame label; the effective sample size "
        "is closer to the number of sequences, and splits must keep subjects apart."
    )


def _unlabelled_sentence(desc: DatasetDescription) -> str | None:
    without = desc.counts.get("sequences_without_emotion")
    total = desc.counts.get("sequences")
    if without and total:
        no_emotion = desc.counts["images"] - desc.counts["images_with_emotion"]
        return (
            f"{without} of {total} sequences ({no_emotion} images) carry no emotion label; they train the AU head only."
        )
    return None


def _leakage_sentence(desc: DatasetDescription) -> str | None:
    if desc.split_subject_overlap:
        return (
            f"Leakage: {desc.split_subject_overlap} subject(s) appear in more than one split, "
            "which inflates validation and test scores."
        )
    return None


# %% Figures


def _new_figure(width: float, height: float) -> Any:
    """A pyplot-free figure: no global backend or state, safe in threads and servers."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def _class_colour(name: str) -> str:
    return CLASS_COLOURS.get(name, CLASS_COLOURS.get(CK_TO_CLASS.get(name, ""), _OTHER_COLOUR))


def _bar_panel(ax: Any, counts: Mapping[str, int], title: str, xlabel: str) -> None:
    names = list(counts)
    values = [counts[k] for k in names]
    bars = ax.bar(names, values, color=[_class_colour(k) for k in names], edgecolor="black")
    ax.bar_label(bars, padding=2, fontsize=8)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    ax.margins(y=0.12)
    ax.tick_params(axis="x", labelrotation=30 if len(names) > 4 else 0)


def plot_emotion_counts(counts: Mapping[str, int], path: Path, *, fine_counts: Mapping[str, int] | None = None) -> Path:
    """Images per class, plus CK+ fine emotions coloured by their class when given."""
    panels = 2 if fine_counts else 1
    fig = _new_figure(5.0 * panels + (1.5 if fine_counts else 0), 4.0)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    _bar_panel(axes[0], counts, "Images per emotion class", "emotion class")
    if fine_counts:
        _bar_panel(axes[1], fine_counts, "Images per CK+ emotion", "CK+ emotion (colour = class)")
    return _save(fig, path)


def plot_au_frequency(positives: Mapping[str, int] | pd.Series, path: Path) -> Path:
    """Positive images per AU as horizontal bars, AU names readable on the y axis."""
    cols = list(positives.keys())
    values = [int(positives[c]) for c in cols]
    fig = _new_figure(7.0, max(2.5, 0.28 * len(cols) + 1.2))
    ax = fig.subplots()
    bars = ax.barh([au_label(c) for c in cols], values, color="#4C72B0")
    ax.bar_label(bars, padding=2, fontsize=7)
    ax.invert_yaxis()
    ax.set_title("Images with each action unit present")
    ax.set_xlabel("positive images")
    ax.set_ylabel("action unit")
    ax.margins(x=0.12)
    return _save(fig, path)


def _heatmap(
    fig: Any,
    ax: Any,
    values: pd.DataFrame,
    *,
    cmap: str,
    vmin: float,
    vmax: float,
    annotate: bool,
    cbar_label: str,
) -> None:
    import matplotlib as mpl

    data = np.ma.masked_invalid(values.to_numpy(dtype=float))
    colours = mpl.colormaps[cmap].with_extremes(bad="#DDDDDD")
    image = ax.imshow(data, cmap=colours, vmin=vmin, vmax=vmax, aspect="auto")
    fig.colorbar(image, ax=ax, label=cbar_label, shrink=0.8)
    ax.set_xticks(range(values.shape[1]))
    ax.set_yticks(range(values.shape[0]))
    if annotate:
        fontsize = 7 if values.shape[1] <= 20 else 5.5
        for (i, j), v in np.ndenumerate(values.to_numpy(dtype=float)):
            if not math.isnan(v):
                dark = abs(v - (vmin + vmax) / 2) > 0.3 * (vmax - vmin)
                colour = "white" if dark else "black"
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=fontsize, color=colour)


def plot_au_correlation(corr: pd.DataFrame, path: Path) -> Path:
    """AU-AU correlation heatmap, diverging around 0; grey cells have no defined r."""
    labels = [au_label(c) for c in corr.columns]
    size = max(4.5, 0.32 * len(labels) + 3.0)
    fig = _new_figure(size + 1.0, size)
    ax = fig.subplots()
    _heatmap(
        fig,
        ax,
        corr,
        cmap="RdBu_r",
        vmin=-1.0,
        vmax=1.0,
        annotate=len(labels) <= _ANNOTATE_MAX_AUS,
        cbar_label="Pearson r",
    )
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_title("Action-unit correlation (rows with AU labels)")
    return _save(fig, path)


def plot_emotion_au(rates: pd.DataFrame, path: Path) -> Path:
    """Share of each class's images showing each AU: which AUs define which class."""
    values = rates.drop(columns=["images"], errors="ignore")
    fig = _new_figure(max(6.0, 0.35 * values.shape[1] + 3.0), 1.0 + 0.6 * len(values) + 2.2)
    ax = fig.subplots()
    _heatmap(
        fig,
        ax,
        values,
        cmap="viridis",
        vmin=0.0,
        vmax=1.0,
        annotate=values.shape[1] <= _ANNOTATE_MAX_AUS_EMOTION,
        cbar_label="positive rate",
    )
    ax.set_xticklabels([au_label(c) for c in values.columns], rotation=90, fontsize=7)
    ax.set_yticklabels(list(values.index))
    ax.set_xlabel("action unit")
    ax.set_ylabel("emotion class")
    ax.set_title("Action-unit positive rate per emotion class")
    return _save(fig, path)


def plot_image_sizes(sizes: Mapping[str, int], modes: Mapping[str, int], path: Path) -> Path:
    """Image sizes and colour modes side by side: what the pipeline must crop and convert."""
    fig = _new_figure(9.0, 3.6)
    axes = fig.subplots(1, 2)
    for ax, counts, title, xlabel in (
        (axes[0], sizes, "Image sizes", "width x height (px)"),
        (axes[1], modes, "Colour modes", "PIL mode"),
    ):
        bars = ax.bar(list(counts), list(counts.values()), color="#4C72B0", edgecolor="black")
        ax.bar_label(bars, padding=2, fontsize=8)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("images")
        ax.margins(y=0.12)
    return _save(fig, path)


def _write_figures(desc: DatasetDescription, out_dir: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    if desc.emotion_counts:
        files["emotion_counts"] = plot_emotion_counts(
            desc.emotion_counts,
            out_dir / FILES["emotion_counts"],
            fine_counts=desc.ck_emotion_counts or None,
        )
    if desc.images is not None and desc.images.sizes:
        files["image_sizes"] = plot_image_sizes(desc.images.sizes, desc.images.modes, out_dir / FILES["image_sizes"])
    if desc.au_frequency is not None:
        files["au_frequency"] = plot_au_frequency(desc.au_frequency["positives"], out_dir / FILES["au_frequency"])
    if desc.au_correlation is not None and desc.au_correlation.shape[0] > 1:
        files["au_correlation"] = plot_au_correlation(desc.au_correlation, out_dir / FILES["au_correlation"])
    if desc.emotion_au is not None:
        files["emotion_au"] = plot_emotion_au(desc.emotion_au, out_dir / FILES["emotion_au"])
    return files


# %% Markdown


def markdown_table(frame: pd.DataFrame, *, index: bool = True, floatfmt: str = ".2f") -> str:
    """A GitHub Markdown table (pandas' own needs the optional tabulate package)."""
    data = frame.reset_index() if index else frame
    header = [str(c) for c in data.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in data.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v, floatfmt) for v in row) + " |")
    return "\n".join(lines)


def _cell(value: object, floatfmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "–"
    if isinstance(value, (float, np.floating)):
        return format(float(value), floatfmt)
    return str(value).replace("|", "\\|")


def _count_table(counts: Mapping[str, int], key: str) -> pd.DataFrame:
    total = sum(counts.values())
    frame = pd.DataFrame({"images": pd.Series(counts, dtype=int)})
    frame["percent"] = 100.0 * frame["images"] / total
    frame.index.name = key
    return frame


def render_summary(desc: DatasetDescription) -> str:
    """The whole ``summary.md``: overview first, caveats last, skipped sections noted."""
    sections = [
        "# Dataset description",
        _overview_md(desc),
        _emotions_md(desc),
        _images_md(desc),
        _aus_md(desc),
        _splits_md(desc),
        _demographics_md(desc),
        _section("Limitations and bias", "\n".join(f"- {line}" for line in desc.limitations)),
        _section("Notes", "\n".join(f"- {n}" for n in desc.notes)) if desc.notes else "",
    ]
    return "\n\n".join(s for s in sections if s).rstrip() + "\n"


def _section(title: str, *parts: str) -> str:
    return "\n\n".join([f"## {title}", *(p for p in parts if p)])


def _figure(desc: DatasetDescription, key: str, alt: str) -> str:
    return f"![{alt}]({FILES[key]})" if key in desc.files else ""


# Row labels of the overview counts, shared with the report's dataset section.
OVERVIEW_LABELS = {
    "images": "images",
    "images_with_emotion": "images with an emotion label",
    "images_with_aus": "images with AU labels",
    "subjects": "subjects",
    "sequences": "sequences",
    "sequences_with_emotion": "sequences with an emotion label",
    "sequences_without_emotion": "sequences without an emotion label",
}


def _overview_md(desc: DatasetDescription) -> str:
    c = desc.counts
    rows = [f"| {OVERVIEW_LABELS[k]} | {v} |" for k, v in c.items() if v is not None]
    return _section("Overview", "\n".join(["| what | count |", "|---|---|", *rows]))


def _emotions_md(desc: DatasetDescription) -> str:
    if not desc.emotion_counts:
        return ""
    parts = [markdown_table(_count_table(desc.emotion_counts, "emotion"), floatfmt=".1f")]
    if desc.imbalance_ratio is not None:
        parts.append(
            f"Imbalance ratio (largest / smallest class): **{desc.imbalance_ratio:.2f}** "
            f"('{desc.majority_class}' vs '{desc.minority_class}')."
        )
    if desc.ck_emotion_counts:
        table = _count_table(desc.ck_emotion_counts, "CK+ emotion")
        table.insert(0, "class", [CK_TO_CLASS.get(k, "–") for k in table.index])
        parts += ["CK+ emotions:", markdown_table(table, floatfmt=".1f")]
    parts.append(_figure(desc, "emotion_counts", "images per emotion"))
    return _section("Emotions", *parts)


def _images_md(desc: DatasetDescription) -> str:
    img = desc.images
    if img is None:
        return ""
    scope = "all" if img.checked == img.total else f"a random sample of {img.checked} of"
    parts = [f"Read the headers of {scope} {img.total} images."]
    for title, counts in (("size", img.sizes), ("mode", img.modes), ("format", img.formats)):
        if counts:
            parts.append(markdown_table(_count_table(counts, title), floatfmt=".1f"))
    if img.unreadable:
        shown = ", ".join(f"`{p}`" for p in img.unreadable[:5])
        parts.append(f"{len(img.unreadable)} unreadable: {shown}.")
    parts.append(_figure(desc, "image_sizes", "image sizes and modes"))
    return _section("Images", *parts)


def _aus_md(desc: DatasetDescription) -> str:
    if desc.au_frequency is None:
        return ""
    freq = desc.au_frequency.reset_index(drop=True).set_index("label")
    freq = freq.rename(columns={"rate": "positive rate (of known)"})
    freq.index.name = "action unit"
    parts = [
        markdown_table(freq, floatfmt=".2f"),
        _figure(desc, "au_frequency", "AU frequency"),
        _figure(desc, "au_correlation", "AU correlation"),
    ]
    if desc.strongest_pairs is not None:
        parts.append(_pairs_md(desc.strongest_pairs))
    if desc.emotion_au is not None:
        parts += ["Positive rate of each AU per emotion class:", markdown_table(desc.emotion_au)]
        parts.append(_figure(desc, "emotion_au", "AU rate per emotion"))
    return _section("Action units", *parts)


def _pairs_md(pairs: StrongestPairs) -> str:
    parts = []
    for title, frame in (("positive", pairs.positive), ("negative", pairs.negative)):
        if frame.empty:
            parts.append(f"No {title} correlations between AUs with at least {MIN_PAIR_POSITIVES} positives.")
            continue
        table = frame[["label_a", "label_b", "r"]].rename(columns={"label_a": "AU", "label_b": "with AU"})
        parts += [f"Strongest {title} pairs:", markdown_table(table, index=False)]
    return "\n\n".join(parts)


def _splits_md(desc: DatasetDescription) -> str:
    if desc.splits is None:
        return ""
    parts = [markdown_table(desc.splits.astype("object"))]
    if desc.split_subject_overlap is not None:
        parts.append(f"Subjects in more than one split: **{desc.split_subject_overlap}**.")
    return _section("Splits", *parts)


def _demographics_md(desc: DatasetDescription) -> str:
    if not desc.demographics:
        return ""
    parts = ["Counted per subject, not per image."]
    for column, table in desc.demographics.items():
        title = "age band" if column == "age" else column
        parts += [f"By {title}:", markdown_table(table.rename_axis(title), floatfmt=".1f")]
    return _section("Demographics", *parts)


# %% JSON


def _frame_to_dict(frame: pd.DataFrame | None) -> dict[str, Any] | None:
    """Row-keyed nested dict, the shape reports look numbers up by (``[row][column]``)."""
    if frame is None:
        return None
    return {str(k): v for k, v in frame.to_dict(orient="index").items()}


def _jsonable(value: Any) -> Any:
    """Recursively convert numpy/pandas scalars and NaN into plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    return value
