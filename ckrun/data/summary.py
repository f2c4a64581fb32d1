"""The import summary: the counts a user checks after `ckrun data import`.

Kept apart from the schema (`ckrun.data.manifest`) because it only reports on a finished
import: is everything there, how skewed is it, and what was left out and why.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd

from ckrun.data import labels
from ckrun.data.manifest import SPLITS, STRING, ImportResult

__all__ = ["format_summary", "summarize"]


def summarize(result: ImportResult) -> dict[str, Any]:
    """Counts a user checks after an import: is everything there, and how skewed is it?"""
    df = result.manifest
    sequences = df.loc[df["sequence"] != "", ["subject", "sequence"]].drop_duplicates()
    au_cols = labels.au_columns(list(df.columns))
    emotion = df["emotion"].astype(STRING)
    ck_counts = df["ck_emotion"].astype(STRING).value_counts()
    summary: dict[str, Any] = {
        "source_format": result.source_format,
        "images": len(df),
        "sequences": len(sequences) if len(sequences) else None,
        "subjects": int(df["subject"].nunique()),
        "emotion_counts": {c: int((emotion == c).sum()) for c in labels.EMOTION_CLASSES},
        "emotion_missing": int(emotion.isna().sum()),
        "ck_emotion_counts": {
            name: int(ck_counts.get(name, 0)) for name in labels.CK_EMOTION_CODES.values() if name in ck_counts.index
        },
        "au_positive": {c: int((df[c] == 1.0).sum()) for c in au_cols},
        "au_labelled": {c: int(df[c].notna().sum()) for c in au_cols},
        "split_counts": _split_counts(df),
        "skipped": len(result.skipped),
        "skipped_reasons": dict(Counter(reason for _, reason in result.skipped)),
    }
    return summary


def _split_counts(df: pd.DataFrame) -> dict[str, int] | None:
    if "split" not in df.columns:
        return None
    return {s: int((df["split"] == s).sum()) for s in SPLITS}


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as the few lines the CLI prints after `ckrun data import`."""
    lines = [_headline(summary), "emotion (3-class):"]
    images = max(summary["images"], 1)
    for name, count in summary["emotion_counts"].items():
        lines.append(f"  {name:<10} {count:>7,}  {100 * count / images:5.1f}%")
    missing = summary["emotion_missing"]
    lines.append(f"  {'(none)':<10} {missing:>7,}  {100 * missing / images:5.1f}%  AU-only or neutral")
    if summary["ck_emotion_counts"]:
        parts = ", ".join(f"{k} {v:,}" for k, v in summary["ck_emotion_counts"].items())
        lines.append(f"CK+ emotion: {parts}")
    lines += _au_lines(summary)
    if summary.get("split_counts"):
        parts = ", ".join(f"{k} {v:,}" for k, v in summary["split_counts"].items())
        lines.append(f"predefined split: {parts}")
    lines.append(f"skipped: {summary['skipped']:,}")
    for reason, count in summary["skipped_reasons"].items():
        lines.append(f"  {count:>7,}  {reason}")
    return "\n".join(lines)


def _headline(summary: dict[str, Any]) -> str:
    sequences = summary["sequences"]
    seq_text = f"{sequences:,} sequences, " if sequences else ""
    return (
        f"imported {summary['images']:,} images ({summary['source_format']}): "
        f"{seq_text}{summary['subjects']:,} subjects"
    )


def _au_lines(summary: dict[str, Any]) -> list[str]:
    if not summary["au_positive"]:
        return ["action units: none"]
    lines = ["action units (positive / labelled):"]
    for column, positive in summary["au_positive"].items():
        labelled = summary["au_labelled"][column]
        lines.append(f"  {labels.au_label(column):<28} {positive:>7,} / {labelled:,}")
    return lines
