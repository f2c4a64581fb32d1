"""Reader for manifest CSVs: hand-made, course-style or written by `save_manifest`.

A user's CSV is the format with the most ways to be wrong, so this reader checks every
cell it parses and names the row ("row 2 (line 3)") a user must fix. It does not fill in
missing subjects or open images: the importer does that for every format alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ckrun.data import labels
from ckrun.data.importers.tables import find_column, numeric_column, pick_demographics, read_table, row
from ckrun.data.manifest import NEUTRAL, PEAK_DISTANCE, SPLITS, RawImport
from ckrun.errors import DataError

__all__ = ["read_csv_manifest"]

_SPLIT_ALIASES = {"validation": "val", "valid": "val"}


@dataclass(frozen=True)
class _CsvColumns:
    """Which header of a user's CSV feeds which manifest column (None: not in the file)."""

    path: str
    emotion: str | None
    ck_emotion: str | None
    subject: str | None
    sequence: str | None
    frame: str | None
    landmarks: str | None
    split: str | None
    peak_distance: str | None
    neutral: str | None
    aus: dict[str, str]


def read_csv_manifest(
    csv_path: Path,
    *,
    path_column: str = "path",
    emotion_column: str = "emotion",
    subject_column: str = "subject",
    au_prefix: str = "AU",
) -> RawImport:
    """Read a manifest CSV (hand-made, course-style or written by `save_manifest`).

    Unknown columns are ignored so course CSVs with bookkeeping columns work unchanged;
    relative paths resolve against the CSV's folder so the CSV can travel with its images.
    """
    given = Path(csv_path)
    csv_path = given.resolve()
    table = read_table(csv_path)
    cols = _csv_columns(table, csv_path, path_column, emotion_column, subject_column, au_prefix)
    df = pd.DataFrame(index=table.index)
    df["path"] = _csv_paths(table[cols.path], csv_path, cols.path)
    df["ck_emotion"], df["emotion"] = _csv_emotions(table, cols, csv_path)
    df["subject"] = table[cols.subject] if cols.subject else pd.NA
    df["sequence"] = table[cols.sequence] if cols.sequence else pd.NA
    df["frame"] = _csv_frames(table[cols.frame], csv_path, cols.frame) if cols.frame else pd.NA
    if cols.landmarks:
        df["landmarks"] = _csv_paths(table[cols.landmarks], csv_path, cols.landmarks, True)
    if cols.split:
        df["split"] = _csv_splits(table[cols.split], csv_path)
    if cols.peak_distance:
        df[PEAK_DISTANCE] = _csv_peak_distances(table[cols.peak_distance], csv_path, cols.peak_distance)
    if cols.neutral:
        df[NEUTRAL] = _csv_paths(table[cols.neutral], csv_path, cols.neutral, True)
    for name, values in pick_demographics(table, csv_path).items():
        df[name] = values
    for column, au in cols.aus.items():
        df[au] = _csv_au_values(table[column], column, csv_path)
    return RawImport(df, [], "csv", csv_path, given)


def _csv_columns(
    table: pd.DataFrame,
    csv_path: Path,
    path_column: str,
    emotion_column: str,
    subject_column: str,
    au_prefix: str,
) -> _CsvColumns:
    """Match the CSV header to manifest columns, failing with what is missing and what exists."""
    path = find_column(table.columns, path_column)
    emotion = find_column(table.columns, emotion_column)
    aus = _au_header_map(table.columns, au_prefix, csv_path)
    missing = [] if path else [path_column]
    if emotion is None and not aus:
        missing.append(f"{emotion_column} and/or {au_prefix}<k>")
    if missing:
        raise DataError(
            f"{csv_path}: missing column(s) {', '.join(missing)}; found: {', '.join(table.columns) or 'none'}"
        )
    assert path is not None  # for type checkers: checked just above
    return _CsvColumns(
        path=path,
        emotion=emotion,
        ck_emotion=find_column(table.columns, "ck_emotion"),
        subject=find_column(table.columns, subject_column),
        sequence=find_column(table.columns, "sequence"),
        frame=find_column(table.columns, "frame"),
        landmarks=find_column(table.columns, "landmarks"),
        split=find_column(table.columns, "split"),
        peak_distance=find_column(table.columns, PEAK_DISTANCE),
        neutral=find_column(table.columns, NEUTRAL),
        aus=aus,
    )


def _au_header_map(columns: Iterable[str], prefix: str, csv_path: Path) -> dict[str, str]:
    """CSV header -> AU<k> for every `prefix<k>` column (e.g. FACS_12 -> AU12)."""
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)$", re.IGNORECASE)
    mapping: dict[str, str] = {}
    for column in columns:
        match = pattern.match(column)
        if match is None:
            continue
        au = labels.au_column(int(match.group(1)))
        if au in mapping.values():
            first = next(c for c, a in mapping.items() if a == au)
            raise DataError(f"{csv_path}: columns {first!r} and {column!r} both give {au}")
        mapping[column] = au
    return mapping


def _csv_frames(values: pd.Series, csv_path: Path, column: str) -> pd.Series:
    frames = numeric_column(values, column, csv_path)
    fractional = frames.notna() & (frames != np.round(frames))
    if fractional.any():
        i = int(np.flatnonzero(fractional.to_numpy())[0])
        raise DataError(f"{csv_path}: {row(i)}: {column} {values.iloc[i]!r} is not a whole number")
    return frames


def _csv_peak_distances(values: pd.Series, csv_path: Path, column: str) -> pd.Series:
    """Frames before the sequence's peak: whole numbers >= 0; an empty cell is a peak (0)."""
    distances = _csv_frames(values, csv_path, column)
    negative = distances < 0
    if negative.any():
        i = int(np.flatnonzero(negative.to_numpy())[0])
        raise DataError(f"{csv_path}: {row(i)}: {column} {values.iloc[i]!r} is negative")
    return distances.fillna(0)


def _csv_paths(values: pd.Series, csv_path: Path, column: str, optional: bool = False) -> list[Any]:
    if not optional and values.isna().any():
        i = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataError(f"{csv_path}: {row(i)}: empty {column}")
    base = csv_path.parent
    return [pd.NA if pd.isna(v) else _absolute(v, base) for v in values]


def _absolute(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    return str((path if path.is_absolute() else base / path).resolve())


def _csv_emotions(table: pd.DataFrame, cols: _CsvColumns, csv_path: Path) -> tuple[list[Any], list[Any]]:
    """(ck_emotion, emotion) per row, from `emotion` and, when present, `ck_emotion`.

    A saved manifest carries both; they must agree, or the file was edited inconsistently.
    """
    n = len(table)
    names = _parse_emotions(table[cols.emotion], csv_path) if cols.emotion else [(None, None)] * n
    if cols.ck_emotion is None:
        return [_na(c) for c, _ in names], [_na(e) for _, e in names]
    ck_names = _parse_emotions(table[cols.ck_emotion], csv_path)
    ck_out, cls_out = [], []
    for i, ((ck, cls), (ck2, _)) in enumerate(zip(names, ck_names, strict=True)):
        ck = ck2 or ck
        implied = labels.CK_TO_CLASS.get(ck) if ck else None
        if cls and implied and cls != implied:
            raise DataError(f"{csv_path}: {row(i)}: ck_emotion {ck!r} is {implied}, but emotion says {cls!r}")
        ck_out.append(_na(ck))
        cls_out.append(_na(cls or implied))
    return ck_out, cls_out


def _na(value: str | None) -> Any:
    return pd.NA if value is None else value


def _parse_emotions(values: pd.Series, csv_path: Path) -> list[tuple[str | None, str | None]]:
    """(ck_emotion, class) per cell, parsing each distinct spelling once."""
    parsed: dict[str, tuple[str | None, str | None]] = {}
    out: list[tuple[str | None, str | None]] = []
    for i, value in enumerate(values):
        if pd.isna(value) or value == "":
            out.append((None, None))
            continue
        if value not in parsed:
            try:
                parsed[value] = _parse_emotion(value)
            except ValueError as exc:
                raise DataError(f"{csv_path}: {row(i)}: {exc}") from None
        out.append(parsed[value])
    return out


def _parse_emotion(value: str) -> tuple[str | None, str | None]:
    """Neutral is a CK+ label without a 3-class emotion; everything else goes through labels."""
    if value.strip().lower() == "neutral":
        return "neutral", None
    return labels.normalise_emotion(value)


def _csv_splits(values: pd.Series, csv_path: Path) -> pd.Series:
    """A predefined split, checked: a typo would silently move images out of training."""
    splits = values.str.lower().replace(_SPLIT_ALIASES)
    bad = ~splits.isin(SPLITS) | splits.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        value = values.iloc[i]
        shown = "an empty split" if pd.isna(value) else f"invalid split {value!r}"
        raise DataError(f"{csv_path}: {row(i)}: {shown} (expected one of {', '.join(SPLITS)})")
    return splits


def _csv_au_values(values: pd.Series, column: str, csv_path: Path) -> pd.Series:
    """0/1 (any positive intensity counts as present); empty cells stay NaN = unknown."""
    numeric = numeric_column(values, column, csv_path)
    negative = numeric < 0
    if negative.any():
        i = int(np.flatnonzero(negative.to_numpy())[0])
        raise DataError(f"{csv_path}: {row(i)}: {column} {values.iloc[i]!r} is negative")
    return numeric.where(numeric.isna(), (numeric > 0).astype("float64"))
