"""The manifest: the one table every dataset format is imported into.

Everything downstream (split, pipeline, description, training) reads only this table, so
the three input formats (official CK+ layout, a manifest CSV, a folder per class) differ
only in `ckrun.data.importers`. `finalize_manifest` is the single place that fixes column
order and dtypes, which is what lets a saved manifest load back identical and lets readers
stay small.

This module owns the schema and nothing that reads files: the columns, their dtypes, the
two results of an import (a reader's `RawImport`, the importer's checked `ImportResult`)
and `save_manifest`. Loading a saved manifest goes through the CSV reader
(`ckrun.data.importers.load_manifest`), so that there is one parser to trust.

`peak_distance` (optional, Int64) is how many frames an image lies before its sequence's
labelled peak frame (0 = the peak); the CK+ reader writes it, a CSV may carry it, and a
dataset without it is all peaks. Training weights frames by it (`frame_weight_decay`).

Missing labels stay missing (``<NA>`` emotion, ``NaN`` AU): the loss masks them, so an
image with only AU codes or only an emotion is still used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ckrun.data import labels
from ckrun.outdir import replacing

__all__ = [
    "BASE_COLUMNS",
    "DEMOGRAPHIC_COLUMNS",
    "FORMATS",
    "NEUTRAL",
    "PEAK_DISTANCE",
    "SPLITS",
    "STRING",
    "Format",
    "ImportResult",
    "RawImport",
    "finalize_manifest",
    "save_manifest",
]

BASE_COLUMNS: tuple[str, ...] = (
    "path",
    "subject",
    "sequence",
    "frame",
    "ck_emotion",
    "emotion",
    "emotion_num",
    "landmarks",
)
DEMOGRAPHIC_COLUMNS: tuple[str, ...] = ("age", "sex", "ethnicity")
PEAK_DISTANCE = "peak_distance"
NEUTRAL = "neutral"  # optional: path of the image's neutral reference frame (`reference=neutral`)
SPLITS: tuple[str, ...] = ("train", "val", "test")
FORMATS: tuple[str, ...] = ("ckplus", "csv", "folders")

# pd.NA-backed strings, as the contract promises <NA> (not NaN) for missing text.
STRING = pd.StringDtype()
_STRING_COLUMNS = (
    *("path", "subject", "sequence", "ck_emotion", "emotion", "landmarks"),
    *("split", "sex", "ethnicity", NEUTRAL),
)

Format = Literal["ckplus", "csv", "folders"]


@dataclass
class ImportResult:
    """A manifest plus what the importer left out, so the user can see nothing vanished silently."""

    manifest: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)
    source_format: str = ""


@dataclass
class RawImport:
    """What one reader found, before the importer completes and checks it.

    Readers only parse: `rows` uses manifest column names (always path, subject, sequence
    and frame, other columns as the format provides them) in whatever order and dtype, and
    subjects may still be missing. The importer turns it into an `ImportResult`.

    Messages about a row name `path`, the file or folder the reader resolved; messages about
    the dataset as a whole ("no images left") name `source`: the CK+ root the reader found,
    or the CSV file or class-folder tree as the user gave it.
    """

    rows: pd.DataFrame
    skipped: list[tuple[str, str]]
    source_format: Format
    path: Path
    source: Path


def finalize_manifest(df: pd.DataFrame) -> pd.DataFrame:
    """Return `df` in the contract's column order and dtypes, dropping any other column.

    Readers fill in what they know; deciding order and dtypes here only is what makes every
    format, and a saved manifest read back, compare equal. `emotion_num` is always derived
    from `emotion`, so the two cannot disagree.
    """
    df = df.reset_index(drop=True)
    out = pd.DataFrame(index=df.index)
    for column in BASE_COLUMNS:
        out[column] = df[column] if column in df.columns else pd.NA
    out["sequence"] = out["sequence"].astype(STRING).fillna("")
    out["frame"] = pd.to_numeric(out["frame"]).astype("Int64")
    out["emotion_num"] = _emotion_numbers(out["emotion"].astype(STRING))
    if "split" in df.columns:
        out["split"] = df["split"]
    for column in DEMOGRAPHIC_COLUMNS:
        if column in df.columns:
            out[column] = _age_dtype(df[column]) if column == "age" else df[column]
    if PEAK_DISTANCE in df.columns:
        out[PEAK_DISTANCE] = pd.to_numeric(df[PEAK_DISTANCE]).astype("Int64")
    if NEUTRAL in df.columns:
        out[NEUTRAL] = df[NEUTRAL]
    for column in labels.au_columns(list(df.columns)):
        out[column] = pd.to_numeric(df[column]).astype("float64")
    for column in _STRING_COLUMNS:
        if column in out.columns:
            out[column] = out[column].astype(STRING)
    return out


def _emotion_numbers(emotion: pd.Series) -> pd.Series:
    index = {name: i for i, name in enumerate(labels.EMOTION_CLASSES)}
    return emotion.map(index).astype("Int64")


def _age_dtype(age: pd.Series) -> pd.Series:
    """Whole-year ages as Int64 (how CK+ reports them), anything finer as float."""
    numeric = pd.to_numeric(age).astype("float64")
    known = numeric.dropna()
    if (known == np.round(known)).all():
        return numeric.astype("Int64")
    return numeric


def save_manifest(df: pd.DataFrame, path: Path) -> Path:
    """Write the manifest as CSV; columns outside the contract are not kept.

    Written aside and renamed over `path` (`ckrun.outdir.replacing`): a manifest cut short by a
    full disk would no longer start with the schema's header, and `data import` would then
    refuse to replace the file it wrote itself.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        finalize_manifest(df).to_csv(tmp, index=False)
    return path
