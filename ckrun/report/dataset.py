"""The report's dataset card: `ckrun data describe` on the data the best run trained on.

All numbers come from `ckrun.data.describe.describe` (which also writes its own summary and
figures under ``dataset/``), so the report and `ckrun data describe` never disagree; this
module only chooses what a reader of a results report needs and in which order: balance,
images, action units, splits, demographics, then the limitations and bias paragraph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ckrun.data.describe import describe
from ckrun.data.explore import DatasetDescription
from ckrun.data.summary_md import OVERVIEW_LABELS
from ckrun.errors import CkrunError
from ckrun.report.analysis import fmt
from ckrun.report.document import Bullets, Figure, Heading, Paragraph, Table


def describe_data(
    manifest: pd.DataFrame, out_dir: Path, run_config: dict[str, Any] | None = None
) -> DatasetDescription:
    """Run the dataset description into `out_dir` (figures, summary.md, numbers.json), with face
    grids drawn as the best run's config (`run_config`, its logged ``config.yaml``) sees faces."""
    from ckrun.config import TrainConfig, build_config

    known = {k: v for k, v in (run_config or {}).items() if k in TrainConfig.model_fields}
    try:
        faces = build_config(known)
    except CkrunError:
        faces = build_config({})
    return describe(manifest, out_dir, faces=faces)


def _count_frame(counts: dict[str, int], key: str) -> pd.DataFrame:
    total = sum(counts.values()) or 1
    return pd.DataFrame(
        {
            key: list(counts),
            "images": [str(v) for v in counts.values()],
            "percent": [f"{100 * v / total:.1f}" for v in counts.values()],
        }
    )


def _fig(desc: DatasetDescription, key: str, caption: str) -> Figure | None:
    path = desc.files.get(key)
    return Figure(Path(path), caption) if path and Path(path).is_file() else None


def dataset_blocks(desc: DatasetDescription, *, source: str) -> list:
    """Blocks of the dataset section, every optional part skipped when the data lacks it."""
    blocks: list = [Heading(2, "Dataset"), Paragraph(f"Described from {source}.")]
    rows = [(label, str(desc.counts[k])) for k, label in OVERVIEW_LABELS.items() if desc.counts.get(k) is not None]
    blocks.append(Table(pd.DataFrame(rows, columns=["what", "count"])))
    blocks += _balance(desc)
    blocks += _faces(desc)
    blocks += _images(desc)
    blocks += _aus(desc)
    blocks += _splits(desc)
    blocks += _demographics(desc)
    blocks.append(Heading(3, "Limitations and bias"))
    blocks.append(Paragraph(" ".join(desc.limitations)))
    if desc.notes:
        blocks.append(Bullets(list(desc.notes)))
    return [b for b in blocks if b is not None]


def _faces(desc: DatasetDescription) -> list:
    figures = [
        _fig(
            desc, "faces_by_class", "Sample faces per emotion, as the best run's model sees them (crop, align, resize)"
        ),
        _fig(desc, "faces_augmented", "The same faces after the run's training augmentation"),
        _fig(desc, "face_sequence", "One CK+ sequence from the neutral first frame to the apex"),
    ]
    shown = [f for f in figures if f is not None]
    return [Heading(3, "Faces"), *shown] if shown else []


def _balance(desc: DatasetDescription) -> list:
    if not desc.emotion_counts:
        return []
    out: list = [Heading(3, "Class balance"), Table(_count_frame(desc.emotion_counts, "emotion class"))]
    if desc.imbalance_ratio is not None:
        out.append(
            Paragraph(
                f"Imbalance ratio (largest / smallest class): **{desc.imbalance_ratio:.2f}** "
                f"('{desc.majority_class}' vs '{desc.minority_class}')."
            )
        )
    out.append(_fig(desc, "emotion_counts", "Images per emotion class (and per CK+ emotion, coloured by class)"))
    return out


def _images(desc: DatasetDescription) -> list:
    img = desc.images
    if img is None or not img.sizes:
        return []
    scope = "all" if img.checked == img.total else f"a sample of {img.checked} of"
    sizes = ", ".join(f"{k} ({v})" for k, v in img.sizes.items())
    modes = ", ".join(f"{k} ({v})" for k, v in img.modes.items())
    formats = ", ".join(f"{k} ({v})" for k, v in img.formats.items())
    text = f"Headers of {scope} {img.total} images: sizes {sizes}; colour modes {modes}; formats {formats}."
    if img.unreadable:
        text += f" {len(img.unreadable)} image(s) could not be opened (e.g. `{img.unreadable[0]}`)."
    return [
        Heading(3, "Image sizes and modes"),
        Paragraph(text),
        _fig(desc, "image_sizes", "Image sizes and colour modes"),
    ]


def _aus(desc: DatasetDescription) -> list:
    if desc.au_frequency is None:
        return []
    freq = desc.au_frequency
    table = pd.DataFrame(
        {
            "action unit": freq["label"].tolist(),
            "positive images": [str(int(v)) for v in freq["positives"]],
            "positive rate": [fmt(v, 2) for v in freq["rate"]],
            "unknown": [str(int(v)) for v in freq["unknown"]],
        }
    )
    out: list = [
        Heading(3, "Action units"),
        Table(table, "Positive rate among images whose AU label is known."),
        _fig(desc, "au_frequency", "Images with each action unit present"),
    ]
    pairs = desc.strongest_pairs
    if pairs is not None:
        out.append(_fig(desc, "au_correlation", "Correlation between action units (Pearson r on 0/1 labels)"))
        for title, frame in (("positively", pairs.positive), ("negatively", pairs.negative)):
            if frame.empty:
                continue
            pair_table = pd.DataFrame(
                {"AU": frame["label_a"], "with AU": frame["label_b"], "r": [fmt(r, 2) for r in frame["r"]]}
            )
            out.append(Table(pair_table, f"Most {title} correlated AU pairs."))
        strongest = pairs.positive.head(3)
        if not strongest.empty:
            names = "; ".join(
                f"{a} with {b} (r = {r:.2f})"
                for a, b, r in zip(strongest["label_a"], strongest["label_b"], strongest["r"], strict=True)
            )
            out.append(Paragraph(f"Strongest co-occurrences: {names}."))
    if desc.emotion_au is not None:
        out.append(_fig(desc, "emotion_au", "Share of each emotion class's images showing each action unit"))
    return out


def _splits(desc: DatasetDescription) -> list:
    if desc.splits is None:
        return []
    table = desc.splits.reset_index().astype("object").where(desc.splits.reset_index().notna(), "–")
    table = table.astype(str)
    out: list = [
        Heading(3, "Subjects per split"),
        Table(table, "Images, sequences, subjects and images per class in each split."),
    ]
    if desc.split_subject_overlap is not None:
        verdict = (
            "none, the split is subject-exclusive"
            if desc.split_subject_overlap == 0
            else f"{desc.split_subject_overlap} (leakage!)"
        )
        out.append(Paragraph(f"Subjects in more than one split: {verdict}."))
    return out


def _demographics(desc: DatasetDescription) -> list:
    if not desc.demographics:
        return []
    out: list = [Heading(3, "Demographics"), Paragraph("Counted per subject, not per image.")]
    for column, table in desc.demographics.items():
        title = "age band" if column == "age" else column
        frame = pd.DataFrame(
            {
                title: [str(i) for i in table.index],
                "subjects": [str(int(v)) for v in table["subjects"]],
                "percent": [f"{v:.1f}" for v in table["percent"]],
            }
        )
        out.append(Table(frame, f"Subjects by {title}."))
    return out
