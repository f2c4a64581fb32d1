"""What every reader needs to know about files on disk: images, debris and CK+ file names.

Real CK+ copies travel through zip files and Macs, so every reader must skip the same
debris (.DS_Store, ._*, __MACOSX) and accept the same image suffixes; doing that here
keeps the three formats from disagreeing about which files are images.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

__all__ = ["IMAGE_SUFFIXES", "is_hidden", "iter_images", "parse_ck_filename", "visible_dirs"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})

# CK+ frame file stems: S005_001_00000011 -> subject, sequence, frame.
_CK_STEM = re.compile(r"^(S\d+)_(\d+)_(\d+)$", re.IGNORECASE)


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


def iter_images(folder: Path) -> Iterator[Path]:
    """Image files anywhere below `folder`, sorted, skipping hidden files and folders."""
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") or part == "__MACOSX" for part in relative.parts):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            yield path
