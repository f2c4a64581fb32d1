"""The limitations and bias paragraph of a dataset description, written from its numbers.

Each caveat is one sentence built from counts the description holds (class imbalance,
demographic skew, near-duplicate frames of one sequence, unlabelled sequences, subjects in
more than one split), so a report never quotes a bias the data does not show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from ckrun.data.counts import label_column, sequence_keys
from ckrun.data.demographics import age_range

if TYPE_CHECKING:
    from ckrun.data.explore import DatasetDescription

# A demographic group above this share of subjects is called a skew in the limitations.
SKEW_SHARE = 60.0


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
    if desc.imbalance_ratio is None or desc.majority_class is None or desc.minority_class is None:
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
    seq = sequence_keys(manifest)
    if seq is None:
        return None
    labelled = seq[label_column(manifest, "emotion").notna()].dropna()
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
        no_emotion = (desc.counts["images"] or 0) - (desc.counts["images_with_emotion"] or 0)
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
