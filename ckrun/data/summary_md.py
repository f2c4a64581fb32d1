"""``summary.md`` of a dataset description: the numbers as a document a researcher reads.

Overview first, caveats last, and a skipped section becomes a note rather than an empty
heading. The report's dataset card (`ckrun.report.dataset`) reuses `OVERVIEW_LABELS`, so
both name the counts alike.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ckrun.data.au_stats import MIN_PAIR_POSITIVES, StrongestPairs
from ckrun.data.explore import DatasetDescription
from ckrun.data.labels import CK_TO_CLASS
from ckrun.markdown import markdown_table


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
    """A link relative to summary.md, which `describe` writes next to its figures."""
    return f"![{alt}]({desc.files[key].name})" if key in desc.files else ""


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
