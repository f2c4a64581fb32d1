"""How the dataset statistics count images, sequences and subjects, per class and per split.

CK+ sequence names ('001') repeat across subjects, so a sequence is keyed by subject and
sequence; labels are read as strings with <NA> where an image has none, and a missing column
counts as all-unlabelled rather than an error. The overview and split tables, and the
limitations that quote them, all count through these helpers, so their numbers agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ckrun.data.labels import CK_EMOTION_CODES, EMOTION_CLASSES

UNASSIGNED = "unassigned"  # split-table row for images without a split


def label_column(manifest: pd.DataFrame, column: str) -> pd.Series:
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


def ck_emotion_counts(ck_emotions: pd.Series) -> dict[str, int]:
    """Images per CK+ fine emotion present, in CK+ code order."""
    return _ordered(ck_emotions.dropna().value_counts(), list(CK_EMOTION_CODES.values()))


def imbalance(counts: Mapping[str, int]) -> tuple[str | None, str | None, float | None]:
    """(majority class, minority class, largest / smallest count); Nones below two classes."""
    if len(counts) < 2:
        return None, None, None
    majority = max(counts, key=lambda k: counts[k])
    minority = min(counts, key=lambda k: counts[k])
    return majority, minority, counts[majority] / counts[minority]


def sequence_keys(manifest: pd.DataFrame) -> pd.Series | None:
    """One key per (subject, sequence): sequence names like '001' repeat across subjects."""
    if "sequence" not in manifest.columns or manifest["sequence"].isna().all():
        return None
    subject = manifest["subject"].astype("string") if "subject" in manifest.columns else ""
    keys = subject + "/" + manifest["sequence"].astype("string")
    return keys.where(manifest["sequence"].notna())


def overview_counts(manifest: pd.DataFrame, emotions: pd.Series, au_cols: list[str]) -> dict[str, int | None]:
    """Images, sequences and subjects, with and without labels of each head."""
    seq = sequence_keys(manifest)
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
    seq = sequence_keys(manifest)
    emotions = label_column(manifest, "emotion")
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
