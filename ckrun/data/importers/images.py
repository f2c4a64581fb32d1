"""The image check of an import: every image is opened once, before any training.

Checking here, not at training time, turns a corrupt file into a named error before hours
of work depend on it. Only headers and checksums are read, so the check stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ckrun.errors import ConfigError, DataError

__all__ = [
    "BAD_IMAGE_POLICIES",
    "BAD_IMAGE_REASON",
    "BadImagePolicy",
    "check_bad_image_policy",
    "image_problem",
    "validate_images",
]

BadImagePolicy = Literal["error", "skip"]
BAD_IMAGE_POLICIES: tuple[BadImagePolicy, ...] = ("error", "skip")
BAD_IMAGE_REASON = "corrupt or unreadable image"


def check_bad_image_policy(value: str) -> BadImagePolicy:
    """`value` as a policy, or a ConfigError naming the choices (it comes from users' options)."""
    if value not in BAD_IMAGE_POLICIES:
        raise ConfigError(f"on_bad_image must be one of {', '.join(BAD_IMAGE_POLICIES)}; received {value!r}")
    return value


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
    check_bad_image_policy(on_bad_image)
    paths = [str(p) for p in manifest["path"]]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else ""
        what = "a folder, not an image file" if Path(missing[0]).is_dir() else "image not found"
        raise DataError(f"{missing[0]}: {what}{more}")
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
