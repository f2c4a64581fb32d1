"""DATA → a split manifest, once: resolve, import, split, digest.

Commands (train, tune, baseline, evaluate, report) all start from here, so they read a
dataset the same way, and the digest logged to MLflow identifies the exact images,
labels and split a run saw.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ckrun.data.default import resolve_data
from ckrun.data.importers import import_dataset
from ckrun.data.labels import au_columns
from ckrun.data.split import assign_split

if TYPE_CHECKING:
    from ckrun.config import TrainConfig


@dataclass
class PreparedData:
    """A dataset ready for training: manifest with a `split` column, its source and digest."""

    source: str
    source_format: str
    manifest: pd.DataFrame
    digest: str
    skipped: list[tuple[str, str]]

    @property
    def name(self) -> str:
        return Path(self.source).name or "ckplus"

    def part(self, split: str) -> pd.DataFrame:
        return self.manifest.loc[self.manifest["split"] == split]

    @property
    def au_columns(self) -> list[str]:
        return au_columns(list(self.manifest.columns))


def manifest_digest(manifest: pd.DataFrame) -> str:
    """Content hash of paths (relative to their common folder), labels and split."""
    frame = manifest.copy()
    paths = frame["path"].astype(str)
    common = Path(paths.iloc[0]).parent if len(paths) else Path()
    for p in paths:
        while common != common.parent and not str(p).startswith(str(common)):
            common = common.parent
    frame["path"] = [str(Path(p).relative_to(common)) if str(p).startswith(str(common)) else p for p in paths]
    cols = ["path", "emotion", "split", *au_columns(list(frame.columns))]
    cols = [c for c in cols if c in frame.columns]
    text = frame[cols].astype("string").fillna("").to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def prepare_data(
    data: Path | str | None,
    *,
    peak_frames: int = 3,
    require_emotion: bool = False,
    split_method: str = "auto",
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    allow_subject_overlap: bool = False,
    progress: bool = True,
) -> PreparedData:
    """Import DATA (or the synthetic default) and split it as configured.

    A split column the data carries is checked for subjects in several splits only where it
    is used (``auto`` and ``predefined``); ``subject`` and ``random`` replace it.
    """
    root = resolve_data(data, progress=progress)
    result = import_dataset(
        root,
        peak_frames=peak_frames,
        require_emotion=require_emotion,
        split_random=split_method == "random",
        allow_subject_overlap=allow_subject_overlap or split_method in ("subject", "random"),
        progress=progress,
    )
    manifest = result.manifest
    method = split_method
    if method == "auto":
        has_split = "split" in manifest.columns and manifest["split"].notna().all()
        method = "predefined" if has_split else "subject"
    manifest = assign_split(
        manifest,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        method=method,
        allow_subject_overlap=allow_subject_overlap,
    )
    return PreparedData(
        str(root), result.source_format, manifest.reset_index(drop=True), manifest_digest(manifest), result.skipped
    )


def prepare_for_config(data: Path | str | None, cfg: TrainConfig, *, progress: bool = True) -> PreparedData:
    """`prepare_data` with the data settings of a TrainConfig."""
    return prepare_data(
        data,
        peak_frames=cfg.peak_frames,
        require_emotion=cfg.require_emotion,
        split_method=cfg.split_method,
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        seed=cfg.seed,
        allow_subject_overlap=cfg.allow_subject_overlap,
        progress=progress,
    )
