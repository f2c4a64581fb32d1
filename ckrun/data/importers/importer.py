"""The importer: detect a dataset's format, run its reader, then check the result once.

Readers only parse (`ckrun.data.importers.ckplus`, `.csv`, `.folders`); everything that
makes their rows a trustworthy manifest happens here, in the same order for every format:
subjects recovered from CK+ file names, the schema's order and dtypes, the optional
`require_emotion` filter, and an image check. A check that concerns the whole dataset
belongs in `check_import`, so that no format can skip it; a check of the arguments alone
belongs in `import_dataset`, before any reader runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pandas as pd

from ckrun.data.ckformat import IMAGES_DIR
from ckrun.data.importers.ckplus import find_ckplus_root, read_ckplus
from ckrun.data.importers.csv import read_csv_manifest
from ckrun.data.importers.files import parse_ck_filename, visible_dirs
from ckrun.data.importers.folders import is_class_folder, read_class_folders
from ckrun.data.importers.images import BadImagePolicy, check_bad_image_policy, validate_images
from ckrun.data.importers.integrity import drop_duplicate_rows, warn_small_faces
from ckrun.data.manifest import FORMATS, Format, ImportResult, RawImport, finalize_manifest
from ckrun.data.split import check_subject_overlap
from ckrun.errors import ConfigError, DataError, option_hint
from ckrun.outdir import taken

__all__ = [
    "NO_EMOTION_REASON",
    "check_import",
    "check_manifest_out",
    "detect_format",
    "drop_without_emotion",
    "fill_identity",
    "import_dataset",
    "load_manifest",
    "require_rows",
]

NO_EMOTION_REASON = "no 3-class emotion label (dropped by require_emotion)"


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
    if any(is_class_folder(child) for child in visible_dirs(path)):
        return "folders"
    raise DataError(
        f"{path}: not a dataset: expected a CK+ root (with {IMAGES_DIR}/), a manifest .csv "
        "or one sub-folder of images per emotion (anger, happy, ... or negative, positive, "
        "surprise)"
    )


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
    allow_subject_overlap: bool = False,
    progress: bool = False,
) -> ImportResult:
    """Read any supported dataset into a validated manifest (every image opened once).

    Checking images here, not at training time, turns a corrupt file into a named error
    before hours of work depend on it.
    """
    source = Path(source)
    _check_format(fmt)
    policy = check_bad_image_policy(on_bad_image)
    kind = detect_format(source) if fmt == "auto" else cast(Format, fmt)
    raw: RawImport
    if kind == "ckplus":
        raw = read_ckplus(source, peak_frames=peak_frames, progress=progress)
    elif kind == "csv":
        raw = read_csv_manifest(
            source,
            path_column=path_column,
            emotion_column=emotion_column,
            subject_column=subject_column,
            au_prefix=au_prefix,
        )
    else:
        raw = read_class_folders(source)
    return check_import(
        raw,
        split_random=split_random,
        require_emotion=require_emotion,
        on_bad_image=policy,
        allow_subject_overlap=allow_subject_overlap,
        progress=progress,
    )


def _check_format(fmt: str) -> None:
    choices = ("auto", *FORMATS)
    if fmt not in choices:
        raise ConfigError(f"format must be one of {', '.join(choices)}; received {fmt!r}")


def check_import(
    raw: RawImport,
    *,
    split_random: bool = False,
    require_emotion: bool = False,
    on_bad_image: BadImagePolicy = "error",
    allow_subject_overlap: bool = False,
    progress: bool = False,
) -> ImportResult:
    """Turn what a reader found into a checked manifest: the one place an import is validated.

    Every format passes through the same steps in the same order, so a rule added here holds
    for CK+ trees, CSVs and class folders alike. Checks of the table as a whole belong after
    `finalize_manifest` (the dtypes are then known) and before the image pass (the slow part).
    """
    manifest = finalize_manifest(fill_identity(raw.rows, raw.path, split_random=split_random))
    # Checks of the whole table go here: every format now has the same columns and dtypes.
    manifest, skipped = drop_duplicate_rows(manifest, raw.source)
    skipped = list(raw.skipped) + skipped
    if "split" in manifest.columns:
        check_subject_overlap(manifest, allow=allow_subject_overlap, source=f"the split column of {raw.source}")
    if require_emotion:
        manifest, dropped = drop_without_emotion(manifest)
        skipped += dropped
        require_rows(manifest, raw.source, f"with an emotion label ({option_hint('require_emotion=true')})")
    manifest, bad = validate_images(manifest, on_bad_image=on_bad_image, progress=progress)
    require_rows(manifest, raw.source, "after leaving out unreadable images")
    warn_small_faces(manifest, raw.source)
    return ImportResult(manifest, skipped + bad, raw.source_format)


def check_manifest_out(out: Path, source: Path, option: str = "--out") -> None:
    """Refuse to write a manifest over the import's own input, into the dataset, or over a foreign file.

    `ckrun data import manifest.csv` in the CSV's folder would otherwise replace the user's
    CSV (its extra columns lost) with the manifest made from it.
    """
    out, source = Path(out), Path(source)
    target, data = out.resolve(), source.resolve()
    if target == data or (out.exists() and source.exists() and out.samefile(source)):
        raise DataError(
            f"{option} {out} is the input {source}: the manifest would overwrite it; choose another {option}"
        )
    if data.is_dir() and data in target.parents:
        raise DataError(f"{option} {out} is inside the dataset folder {source}; write the manifest outside the data")
    if out.is_dir():
        raise DataError(f"{option} {out} is a folder; give the manifest's file name, e.g. {out / 'manifest.csv'}")
    if taken(out) and not _is_ckrun_manifest(out):  # a dangling symlink too: writing would follow it
        raise DataError(
            f"{option} {out} exists and is not a manifest ckrun wrote; choose another {option} or move the file away"
        )


def _is_ckrun_manifest(path: Path) -> bool:
    """A manifest `save_manifest` wrote starts with the schema's columns, in order."""
    from ckrun.data.manifest import BASE_COLUMNS

    try:
        with path.open(encoding="utf-8") as file:
            header = file.readline().strip().split(",")
    except (OSError, UnicodeDecodeError):
        return False
    return header[: len(BASE_COLUMNS)] == list(BASE_COLUMNS)


def load_manifest(path: Path, *, split_random: bool = False) -> pd.DataFrame:
    """Read a saved manifest through the CSV reader, so there is one parser to trust.

    Subjects are recovered as at import; images are not opened again.
    """
    raw = read_csv_manifest(Path(path))
    return finalize_manifest(fill_identity(raw.rows, raw.path, split_random=split_random))


def fill_identity(df: pd.DataFrame, source: Path, *, split_random: bool) -> pd.DataFrame:
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
                "without a subject column or CK+ file names (S005_001_00000011.png) the split cannot be "
                f"subject-exclusive; add subjects or split at random with {option_hint('split_method=random')}"
            )
        df.loc[missing, "subject"] = df.loc[missing, "path"]
    return df


def _fill(current: pd.Series, fallback: list[Any]) -> pd.Series:
    values = current.astype(object).where(current.notna(), pd.Series(fallback, index=current.index))
    return values.where(values.notna(), pd.NA)


def drop_without_emotion(manifest: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Rows usable by the emotion head only; neutral and unlabelled rows are reported."""
    missing = manifest["emotion"].isna()
    dropped = [(path, NO_EMOTION_REASON) for path in manifest.loc[missing, "path"]]
    return manifest.loc[~missing].reset_index(drop=True), dropped


def require_rows(manifest: pd.DataFrame, source: Path, when: str) -> None:
    if manifest.empty:
        raise DataError(f"{source}: no images left {when}")
