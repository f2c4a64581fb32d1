"""Reader for folder-per-class trees: `root/<class>/**/<image>`.

Many emotion datasets ship this way: the folder name is the label, and a CK+-style file
name (S005_001_00000011.png) may carry the subject, which the importer recovers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ckrun.data import labels
from ckrun.data.importers.files import IMAGE_SUFFIXES, iter_images, visible_dirs
from ckrun.data.manifest import RawImport
from ckrun.errors import DataError

__all__ = ["NEUTRAL_FOLDER_REASON", "OUTSIDE_CLASS_REASON", "is_class_folder", "read_class_folders"]

NEUTRAL_FOLDER_REASON = "neutral folder (not part of the 3-class task)"
OUTSIDE_CLASS_REASON = "image outside any class folder"


def is_class_folder(folder: Path) -> bool:
    """Whether `folder` looks like one class of a folder-per-class tree (for format detection)."""
    name = folder.name.strip().lower()
    if name != "neutral":
        try:
            labels.normalise_emotion(name)
        except ValueError:
            return False
    return next(iter_images(folder), None) is not None


def read_class_folders(root: Path) -> RawImport:
    """Read `root/<class>/**/<image>`: the layout many emotion datasets ship in.

    Folder names may be CK+ emotions (with aliases) or the three high-level classes; an
    unknown folder name is an error rather than a silently unlabelled class.
    """
    given = Path(root)
    root = given.resolve()
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
        ck_emotion = pd.NA if ck is None else ck
        rows += [{"path": str(p), "ck_emotion": ck_emotion, "emotion": cls} for p in iter_images(folder)]
    if not rows:
        raise DataError(f"{root}: no images found in its class folders")
    df = pd.DataFrame(rows).assign(subject=pd.NA, sequence=pd.NA, frame=pd.NA)
    return RawImport(df, skipped, "folders", root, given)


def _folder_label(folder: Path) -> tuple[str | None, str]:
    try:
        ck, cls = labels.normalise_emotion(folder.name)
    except ValueError as exc:
        raise DataError(f"{folder}: folder name is not an emotion class: {exc}") from None
    assert cls is not None  # normalise_emotion always returns a class
    return ck, cls
