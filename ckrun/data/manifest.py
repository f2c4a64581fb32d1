"""The manifest: the one table every dataset format is imported into.

Everything downstream (split, pipeline, description, training) reads only this table, so
the three input formats (official CK+ layout, a manifest CSV, a folder per class) differ
only here. `finalize_manifest` is the single place that fixes column order and dtypes,
which is what lets a saved manifest load back identical and lets readers stay small.

Missing labels stay missing (``<NA>`` emotion, ``NaN`` AU): the loss masks them, so an
image with only AU codes or only an emotion is still used.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ckrun.data import labels
from ckrun.data.ckformat import IMAGES_DIR
from ckrun.errors import ConfigError, DataError

__all__ = [
    "BASE_COLUMNS",
    "DEMOGRAPHIC_COLUMNS",
    "FORMATS",
    "IMAGE_SUFFIXES",
    "SPLITS",
    "ImportResult",
    "detect_format",
    "drop_without_emotion",
    "finalize_manifest",
    "find_ckplus_root",
    "format_summary",
    "image_problem",
    "import_dataset",
    "is_hidden",
    "load_manifest",
    "parse_ck_filename",
    "pick_demographics",
    "read_class_folders",
    "read_csv_manifest",
    "read_demographics",
    "require_rows",
    "save_manifest",
    "summarize",
    "validate_images",
    "visible_dirs",
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
SPLITS: tuple[str, ...] = ("train", "val", "test")
FORMATS: tuple[str, ...] = ("ckplus", "csv", "folders")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})

# pd.NA-backed strings, as the contract promises <NA> (not NaN) for missing text.
STRING = pd.StringDtype()
_STRING_COLUMNS = (
    *("path", "subject", "sequence", "ck_emotion", "emotion", "landmarks"),
    *("split", "sex", "ethnicity"),
)

# Accepted header spellings of the demographic columns (first match wins).
_DEMOGRAPHIC_ALIASES: dict[str, tuple[str, ...]] = {
    "age": ("age",),
    "sex": ("sex", "gender"),
    "ethnicity": ("ethnicity", "race"),
}
_SPLIT_ALIASES = {"validation": "val", "valid": "val"}

# CK+ frame file stems: S005_001_00000011 -> subject, sequence, frame.
_CK_STEM = re.compile(r"^(S\d+)_(\d+)_(\d+)$", re.IGNORECASE)

NEUTRAL_FOLDER_REASON = "neutral folder (not part of the 3-class task)"
NO_EMOTION_REASON = "no 3-class emotion label (dropped by require_emotion)"
BAD_IMAGE_REASON = "corrupt or unreadable image"
OUTSIDE_CLASS_REASON = "image outside any class folder"

Format = Literal["ckplus", "csv", "folders"]
BadImagePolicy = Literal["error", "skip"]


@dataclass
class ImportResult:
    """A manifest plus what the importer left out, so the user can see nothing vanished silently."""

    manifest: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)
    source_format: str = ""


# %% schema


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


def parse_ck_filename(path: str | Path) -> tuple[str, str, int] | None:
    """(subject, sequence, frame) of a CK+-style file name like S005_001_00000011.png, else None.

    CK+ encodes the person in every file name, which is what lets a flat CSV or a class
    folder still be split subject-exclusively.
    """
    match = _CK_STEM.match(Path(path).stem)
    if match is None:
        return None
    return match.group(1), match.group(2), int(match.group(3))


def is_hidden(path: Path) -> bool:
    """macOS and zip debris (.DS_Store, ._*, __MACOSX) that real CK+ copies carry."""
    return path.name.startswith(".") or path.name == "__MACOSX"


def visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not is_hidden(p))


def _iter_images(folder: Path) -> Iterator[Path]:
    """Image files anywhere below `folder`, sorted, skipping hidden files and folders."""
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") or part == "__MACOSX" for part in relative.parts):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            yield path


def read_demographics(csv_path: Path) -> pd.DataFrame:
    """A subject -> (age, sex, ethnicity) table, such as CK+'s optional subjects.csv."""
    table = _read_table(csv_path)
    subject = _find_column(table.columns, "subject")
    if subject is None:
        raise DataError(f"{csv_path}: missing column subject; found: {', '.join(table.columns)}")
    if table[subject].isna().any():
        i = int(np.flatnonzero(table[subject].isna().to_numpy())[0])
        raise DataError(f"{csv_path}: {_row(i)}: empty subject")
    duplicated = table[subject].duplicated()
    if duplicated.any():
        i = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise DataError(f"{csv_path}: {_row(i)}: subject {table[subject].iloc[i]!r} repeated")
    found = pick_demographics(table, csv_path)
    demographics = pd.DataFrame(found, index=table.index)
    return demographics.set_axis(pd.Index(table[subject], name="subject"))


def pick_demographics(table: pd.DataFrame, source: Path) -> dict[str, pd.Series]:
    """The demographic columns of `table` under their manifest names (age, sex, ethnicity).

    Shared by the CSV reader and CK+'s subjects.csv, so both accept gender/race spellings
    and reject a non-numeric age the same way.
    """
    found: dict[str, pd.Series] = {}
    for name, aliases in _DEMOGRAPHIC_ALIASES.items():
        column = _find_column(table.columns, *aliases)
        if column is None:
            continue
        values = table[column]
        if name == "age":
            values = _numeric_column(values, column, source)
        found[name] = values
    return found


def _find_column(columns: Iterable[str], *names: str) -> str | None:
    """The first of `names` among `columns`: exact spelling first, then any letter case."""
    columns = list(columns)
    for name in names:
        if name in columns:
            return name
    lowered = {str(c).lower(): c for c in columns}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def _row(index: int) -> str:
    """A CSV row as a user finds it: data row number and the editor's line number."""
    return f"row {index + 1} (line {index + 2})"


def _numeric_column(values: pd.Series, column: str, source: Path) -> pd.Series:
    numeric = pd.to_numeric(values, errors="coerce").astype("float64")
    bad = values.notna() & numeric.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{source}: {_row(i)}: {column} {values.iloc[i]!r} is not a number")
    return numeric


# %% format detection and import


def find_ckplus_root(path: Path) -> Path | None:
    """The CK+ root at or just inside `path`, since unzipping CK+ often adds a `CK+/` level."""
    if not path.is_dir():
        return None
    if (path / IMAGES_DIR).is_dir():
        return path
    children = visible_dirs(path)
    if len(children) == 1 and (children[0] / IMAGES_DIR).is_dir():
        return children[0]
    return None


def _is_class_folder(folder: Path) -> bool:
    name = folder.name.strip().lower()
    if name != "neutral":
        try:
            labels.normalise_emotion(name)
        except ValueError:
            return False
    return next(_iter_images(folder), None) is not None


def detect_format(path: Path) -> Format:
    """Which reader `path` needs, so users can pass any supported layout without a flag."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return "csv"
        raise DataError(f"{path}: not a dataset: expected a manifest .csv file or a folder")
    if find_ckplus_root(path) is not None:
        return "ckplus"
    if any(_is_class_folder(child) for child in visible_dirs(path)):
        return "folders"
    raise DataError(
        f"{path}: not a dataset: expected a CK+ root (with {IMAGES_DIR}/), a manifest .csv "
        "or one sub-folder of images per emotion (anger, happy, ... or negative, positive, "
        "surprise)"
    )


def _check_choice(value: str, choices: Iterable[str], option: str) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{option} must be one of {', '.join(choices)}; received {value!r}")


def import_dataset(
    source: Path,
    *,
    fmt: str = "auto",
    peak_frames: int = 3,
    require_emotion: bool = False,
    on_bad_image: str = "error",
    split_random: bool = False,
    path_column: str = "path",
    emotion_column: str = "emotion",
    subject_column: str = "subject",
    au_prefix: str = "AU",
    progress: bool = False,
) -> ImportResult:
    """Read any supported dataset into a validated manifest (every image opened once).

    Checking images here, not at training time, turns a corrupt file into a named error
    before hours of work depend on it.
    """
    source = Path(source)
    _check_choice(fmt, ("auto", *FORMATS), "format")
    _check_choice(on_bad_image, ("error", "skip"), "on_bad_image")
    policy = cast(BadImagePolicy, on_bad_image)
    kind = detect_format(source) if fmt == "auto" else fmt
    if kind == "ckplus":
        # Imported here: ckplus builds on this module's schema, so it cannot be imported first.
        from ckrun.data.ckplus import read_ckplus

        return read_ckplus(
            source,
            peak_frames=peak_frames,
            require_emotion=require_emotion,
            on_bad_image=policy,
            progress=progress,
        )
    if kind == "csv":
        result = read_csv_manifest(
            source,
            split_random=split_random,
            path_column=path_column,
            emotion_column=emotion_column,
            subject_column=subject_column,
            au_prefix=au_prefix,
        )
    else:
        result = read_class_folders(source, split_random=split_random)
    manifest, skipped = result.manifest, result.skipped
    if require_emotion:
        manifest, dropped = drop_without_emotion(manifest)
        skipped += dropped
        require_rows(manifest, source, "with an emotion label (require_emotion)")
    manifest, bad = validate_images(manifest, on_bad_image=policy, progress=progress)
    require_rows(manifest, source, "after leaving out unreadable images")
    return ImportResult(manifest, skipped + bad, kind)


def drop_without_emotion(manifest: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Rows usable by the emotion head only; neutral and unlabelled rows are reported."""
    missing = manifest["emotion"].isna()
    dropped = [(path, NO_EMOTION_REASON) for path in manifest.loc[missing, "path"]]
    return manifest.loc[~missing].reset_index(drop=True), dropped


def require_rows(manifest: pd.DataFrame, source: Path, when: str) -> None:
    if manifest.empty:
        raise DataError(f"{source}: no images left {when}")


# %% CSV manifests


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
    aus: dict[str, str]


def read_csv_manifest(
    csv_path: Path,
    *,
    split_random: bool = False,
    path_column: str = "path",
    emotion_column: str = "emotion",
    subject_column: str = "subject",
    au_prefix: str = "AU",
) -> ImportResult:
    """Read a manifest CSV (hand-made, course-style or written by `save_manifest`).

    Unknown columns are ignored so course CSVs with bookkeeping columns work unchanged;
    relative paths resolve against the CSV's folder so the CSV can travel with its images.
    """
    csv_path = Path(csv_path).resolve()
    table = _read_table(csv_path)
    cols = _csv_columns(table, csv_path, path_column, emotion_column, subject_column, au_prefix)
    df = pd.DataFrame(index=table.index)
    df["path"] = _csv_paths(table[cols.path], csv_path, cols.path)
    df["ck_emotion"], df["emotion"] = _csv_emotions(table, cols, csv_path)
    df["subject"] = table[cols.subject] if cols.subject else pd.NA
    df["sequence"] = table[cols.sequence] if cols.sequence else pd.NA
    df["frame"] = _csv_frames(table[cols.frame], csv_path, cols.frame) if cols.frame else pd.NA
    df = _fill_identity(df, csv_path, split_random=split_random)
    if cols.landmarks:
        df["landmarks"] = _csv_paths(table[cols.landmarks], csv_path, cols.landmarks, True)
    if cols.split:
        df["split"] = _csv_splits(table[cols.split], csv_path)
    for name, values in pick_demographics(table, csv_path).items():
        df[name] = values
    for column, au in cols.aus.items():
        df[au] = _csv_au_values(table[column], column, csv_path)
    return ImportResult(finalize_manifest(df), [], "csv")


def _read_table(csv_path: Path) -> pd.DataFrame:
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: manifest CSV not found")
    try:
        table = pd.read_csv(csv_path, dtype=str, encoding="utf-8-sig", skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{csv_path}: the CSV file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        detail = str(exc).strip().splitlines()[0]
        raise DataError(f"{csv_path}: not a readable CSV file ({detail})") from None
    table.columns = [str(c).strip() for c in table.columns]
    if table.empty:
        raise DataError(f"{csv_path}: the CSV has a header but no rows")
    # "string" dtype makes .str safe on all-empty columns under pandas 2 and 3 alike.
    return table.apply(lambda column: column.astype(STRING).str.strip())


def _csv_columns(
    table: pd.DataFrame,
    csv_path: Path,
    path_column: str,
    emotion_column: str,
    subject_column: str,
    au_prefix: str,
) -> _CsvColumns:
    """Match the CSV header to manifest columns, failing with what is missing and what exists."""
    path = _find_column(table.columns, path_column)
    emotion = _find_column(table.columns, emotion_column)
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
        ck_emotion=_find_column(table.columns, "ck_emotion"),
        subject=_find_column(table.columns, subject_column),
        sequence=_find_column(table.columns, "sequence"),
        frame=_find_column(table.columns, "frame"),
        landmarks=_find_column(table.columns, "landmarks"),
        split=_find_column(table.columns, "split"),
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
    frames = _numeric_column(values, column, csv_path)
    fractional = frames.notna() & (frames != np.round(frames))
    if fractional.any():
        i = int(np.flatnonzero(fractional.to_numpy())[0])
        raise DataError(f"{csv_path}: {_row(i)}: {column} {values.iloc[i]!r} is not a whole number")
    return frames


def _csv_paths(values: pd.Series, csv_path: Path, column: str, optional: bool = False) -> list[Any]:
    if not optional and values.isna().any():
        i = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataError(f"{csv_path}: {_row(i)}: empty {column}")
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
            raise DataError(f"{csv_path}: {_row(i)}: ck_emotion {ck!r} is {implied}, but emotion says {cls!r}")
        ck_out.append(_na(ck))
        cls_out.append(_na(cls or implied))
    return ck_out, cls_out


def _na(value: str | None) -> Any:
    return pd.NA if value is None else value


def _parse_emotions(values: pd.Series, csv_path: Path) -> list[tuple[str | None, str | None]]:
    """(ck_emotion, class) per cell, parsing each distinct spelling once."""
    parsed: dict[str, tuple[str | None, str | None]] = {}
    out = []
    for i, value in enumerate(values):
        if pd.isna(value) or value == "":
            out.append((None, None))
            continue
        if value not in parsed:
            try:
                parsed[value] = _parse_emotion(value)
            except ValueError as exc:
                raise DataError(f"{csv_path}: {_row(i)}: {exc}") from None
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
        raise DataError(f"{csv_path}: {_row(i)}: {shown} (expected one of {', '.join(SPLITS)})")
    return splits


def _csv_au_values(values: pd.Series, column: str, csv_path: Path) -> pd.Series:
    """0/1 (any positive intensity counts as present); empty cells stay NaN = unknown."""
    numeric = _numeric_column(values, column, csv_path)
    negative = numeric < 0
    if negative.any():
        i = int(np.flatnonzero(negative.to_numpy())[0])
        raise DataError(f"{csv_path}: {_row(i)}: {column} {values.iloc[i]!r} is negative")
    return numeric.where(numeric.isna(), (numeric > 0).astype("float64"))


# %% identity (subject / sequence / frame)


def _fill_identity(df: pd.DataFrame, source: Path, *, split_random: bool) -> pd.DataFrame:
    """Fill subject, sequence and frame from CK+-style file names where the source lacks them.

    Without a subject the split cannot keep a person out of the test set, which inflates
    scores; that is an error unless the user asked for a random split, where each image is
    its own group.
    """
    parsed = [parse_ck_filename(p) for p in df["path"]]
    df = df.copy()
    df["subject"] = _fill(df["subject"], [p[0] if p else None for p in parsed])
    df["sequence"] = _fill(df["sequence"], [p[1] if p else None for p in parsed])
    df["frame"] = _fill(df["frame"], [p[2] if p else None for p in parsed])
    missing = df["subject"].isna()
    if missing.any():
        if not split_random:
            first = df.loc[missing, "path"].iloc[0]
            raise DataError(
                f"{source}: no subject for {int(missing.sum())} image(s), e.g. {first}: "
                "without a subject column or CK+ file names (S005_001_00000011.png) the split "
                "cannot be subject-exclusive; add subjects or pass --split random"
            )
        df.loc[missing, "subject"] = df.loc[missing, "path"]
    return df


def _fill(current: pd.Series, fallback: list[Any]) -> pd.Series:
    values = current.astype(object).where(current.notna(), pd.Series(fallback, index=current.index))
    return values.where(values.notna(), pd.NA)


# %% folder-per-class trees


def read_class_folders(root: Path, *, split_random: bool = False) -> ImportResult:
    """Read `root/<class>/**/<image>`: the layout many emotion datasets ship in.

    Folder names may be CK+ emotions (with aliases) or the three high-level classes; an
    unknown folder name is an error rather than a silently unlabelled class.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    rows: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    skipped += [
        (str(p), OUTSIDE_CLASS_REASON)
        for p in sorted(root.iterdir())
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    ]
    for folder in visible_dirs(root):
        if folder.name.strip().lower() == "neutral":
            skipped.append((str(folder), NEUTRAL_FOLDER_REASON))
            continue
        ck, cls = _folder_label(folder)
        rows += [{"path": str(p), "ck_emotion": _na(ck), "emotion": cls} for p in _iter_images(folder)]
    if not rows:
        raise DataError(f"{root}: no images found in its class folders")
    df = pd.DataFrame(rows).assign(subject=pd.NA, sequence=pd.NA, frame=pd.NA)
    df = _fill_identity(df, root, split_random=split_random)
    return ImportResult(finalize_manifest(df), skipped, "folders")


def _folder_label(folder: Path) -> tuple[str | None, str]:
    try:
        ck, cls = labels.normalise_emotion(folder.name)
    except ValueError as exc:
        raise DataError(f"{folder}: folder name is not an emotion class: {exc}") from None
    assert cls is not None  # normalise_emotion always returns a class
    return ck, cls


# %% image validation


def validate_images(
    manifest: pd.DataFrame,
    *,
    on_bad_image: BadImagePolicy = "error",
    progress: bool = False,
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Open every image once, so a corrupt file fails at import and not mid-training.

    A missing file is always an error (the manifest is wrong); a corrupt one may be skipped
    and listed, since real datasets occasionally carry a damaged frame.
    """
    _check_choice(on_bad_image, ("error", "skip"), "on_bad_image")
    paths = [str(p) for p in manifest["path"]]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else ""
        raise DataError(f"{missing[0]}: image not found{more}")
    keep = np.ones(len(paths), dtype=bool)
    skipped: list[tuple[str, str]] = []
    bar = tqdm(paths, desc="checking images", unit="img", disable=not progress, leave=False)
    for i, path in enumerate(bar):
        problem = image_problem(Path(path))
        if problem is None:
            continue
        if on_bad_image == "error":
            raise DataError(f"{path}: {BAD_IMAGE_REASON} ({problem})")
        keep[i] = False
        skipped.append((path, BAD_IMAGE_REASON))
    return manifest.loc[keep].reset_index(drop=True), skipped


def image_problem(path: Path) -> str | None:
    """Why `path` is not a usable image, or None; header and checksums only, to stay fast."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            image.verify()
    except UnidentifiedImageError:
        return "not an image format PIL can read"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return str(exc).replace(str(path), "").strip(" '\"") or type(exc).__name__
    if width == 0 or height == 0:
        return "image has zero width or height"
    return None


# %% summary


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


# %% save / load


def save_manifest(df: pd.DataFrame, path: Path) -> Path:
    """Write the manifest as CSV; columns outside the contract are not kept."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    finalize_manifest(df).to_csv(path, index=False)
    return path


def load_manifest(path: Path, *, split_random: bool = False) -> pd.DataFrame:
    """Read a saved manifest through the CSV reader, so there is one parser to trust."""
    return read_csv_manifest(Path(path), split_random=split_random).manifest
