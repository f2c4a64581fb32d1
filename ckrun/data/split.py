"""Subject-exclusive, emotion-stratified train/val/test splits and cross-validation folds.

Frames of one person are near-duplicates, so any split that lets a subject appear on both
sides inflates scores; groups are therefore subjects, and scikit-learn's
StratifiedGroupKFold keeps the class balance as close as subject boundaries allow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

from ckrun.data.labels import EMOTION_CLASSES
from ckrun.errors import DataError, option_hint

SPLITS = ("train", "val", "test")
_NO_EMOTION = "<none>"


def _strata(manifest: pd.DataFrame) -> np.ndarray:
    """Stratification labels; AU-only rows form their own stratum."""
    return manifest["emotion"].astype("string").fillna(_NO_EMOTION).to_numpy(dtype=str)


def _fold_of(labels: np.ndarray, groups: np.ndarray, n_splits: int, seed: int) -> np.ndarray:
    """Fold index (0..n_splits-1) of every row, folds subject-exclusive and stratified."""
    n_groups = len(np.unique(groups))
    if n_groups < n_splits:
        raise DataError(
            f"too few subjects for a subject-exclusive split: {n_groups} subject(s), need at least {n_splits}"
        )
    folds = np.full(len(labels), -1)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        folds[held_out] = fold
    return folds


def _check_classes(manifest: pd.DataFrame, what: str = "split") -> None:
    """Fail when a class present in the data is missing from train, val or test.

    A class absent from train can never be predicted (its test accuracy is silently zero); one
    absent from val or test cannot be scored.
    """
    present = [c for c in EMOTION_CLASSES if (manifest["emotion"] == c).any()]
    predefined = what.startswith("predefined")
    for split in SPLITS:
        part = manifest.loc[manifest["split"] == split]
        if part.empty:
            raise DataError(f"the {what} left the {split} split empty (too few subjects or images)")
        missing = [c for c in present if not (part["emotion"] == c).any()]
        if missing:
            n_subj = {c: manifest.loc[manifest["emotion"] == c, "subject"].nunique() for c in missing}
            detail = ", ".join(f"{c} ({n} subject(s) in all)" for c, n in n_subj.items())
            why = "the model could never learn it" if split == "train" else "it could not be scored"
            if predefined:
                fix = f"fix the split column, or split by subject with {option_hint('split_method=subject')}"
            else:
                fix = f"too few subjects carry that class; add data or use {option_hint('split_method=random')}"
            raise DataError(f"the {what} leaves no {detail} image in the {split} split ({why}): {fix}")


def overlapping_subjects(manifest: pd.DataFrame) -> dict[str, list[str]]:
    """Subjects whose images sit in more than one split, with those splits (in train/val/test order)."""
    if "split" not in manifest.columns or "subject" not in manifest.columns:
        return {}
    known = manifest.loc[manifest["split"].notna() & manifest["subject"].notna(), ["subject", "split"]]
    found = known.astype(str).groupby("subject")["split"].agg(lambda s: sorted(set(s), key=_split_order))
    return {str(subject): list(splits) for subject, splits in found.items() if len(splits) > 1}


def _split_order(split: str) -> int:
    return SPLITS.index(split) if split in SPLITS else len(SPLITS)


def check_subject_overlap(manifest: pd.DataFrame, *, allow: bool = False, source: str = "the split column") -> None:
    """A predefined split must keep each subject in one split: the same face on both sides leaks identity.

    `allow` accepts it knowingly (the run is then tagged with the subjects, see `run_logging`).
    """
    overlap = overlapping_subjects(manifest)
    if not overlap or allow:
        return
    subject, splits = next(iter(sorted(overlap.items())))
    others = f" ({len(overlap)} subjects in several splits)" if len(overlap) > 1 else ""
    raise DataError(
        f"subject {subject} is in both {' and '.join(splits)} of {source}{others}: the same face on both sides "
        f"inflates scores; fix the split, or accept it knowingly with {option_hint('allow_subject_overlap=true')}"
    )


def assign_split(
    manifest: pd.DataFrame,
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    method: str = "subject",
    allow_subject_overlap: bool = False,
) -> pd.DataFrame:
    """A copy of `manifest` with a ``split`` column (train/val/test).

    `method`: ``subject`` (exclusive, stratified), ``random`` (image-level; only for data
    without subjects, and scores will be optimistic) or ``predefined`` (keep the data's own
    ``split`` column, e.g. to compare with published folds; a subject in two of its splits is
    an error unless `allow_subject_overlap`).
    """
    if manifest.empty:
        raise DataError("cannot split an empty dataset")
    out = manifest.copy()
    if method == "predefined":
        if "split" not in out.columns or out["split"].isna().any():
            raise DataError("split_method=predefined needs a 'split' column with a value on every row")
        bad = sorted(set(out["split"]) - set(SPLITS))
        if bad:
            raise DataError(f"unknown split value(s) {bad} (expected train, val, test)")
        check_subject_overlap(out, allow=allow_subject_overlap)
        _check_classes(out, "predefined split")
        return out
    if method == "random":
        out["split"] = _random_split(out, val_fraction, test_fraction, seed)
        _check_classes(out, "random split")
        return out
    if method != "subject":
        raise DataError(f"unknown split method {method!r} (expected subject, random or predefined)")

    labels, groups = _strata(out), out["subject"].astype(str).to_numpy()
    # With few subjects a fold can miss a class by chance; later attempts reshuffle with a
    # seed derived from `seed`, so the result stays reproducible.
    error: DataError | None = None
    for attempt in range(_ATTEMPTS):
        out["split"] = _subject_split(labels, groups, val_fraction, test_fraction, seed, attempt)
        try:
            _check_classes(out)
            return out
        except DataError as exc:
            error = error or exc
    assert error is not None  # _ATTEMPTS >= 1: the loop either returned or caught an error
    raise error


_ATTEMPTS = 20


def _subject_split(
    labels: np.ndarray, groups: np.ndarray, val_fraction: float, test_fraction: float, seed: int, attempt: int = 0
) -> np.ndarray:
    """Test fold out of 1/test_fraction folds, then a val fold out of the rest.

    StratifiedGroupKFold's shuffle only breaks ties, so the seed (and each retry) also
    picks which fold becomes test and which val: n_test x n_val distinct splits.
    """
    n_test = max(2, round(1 / test_fraction))
    is_test = _fold_of(labels, groups, n_test, seed) == (seed + attempt) % n_test
    rest = ~is_test
    n_val = max(2, round((1 - test_fraction) / val_fraction))
    val_folds = _fold_of(labels[rest], groups[rest], n_val, seed + 1)
    split = np.full(len(labels), "train", dtype=object)
    split[is_test] = "test"
    split[np.flatnonzero(rest)[val_folds == (seed + attempt // n_test) % n_val]] = "val"
    return split


def _random_split(manifest: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """Image-level split, still grouped by subject when subjects exist."""
    subjects = manifest["subject"]
    groups = np.where(subjects.isna(), [f"#row{i}" for i in range(len(manifest))], subjects.astype(str))
    idx = np.arange(len(manifest))
    outer = GroupShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed)
    train_val, test = next(outer.split(idx, groups=groups))
    inner = GroupShuffleSplit(n_splits=1, test_size=val_fraction / (1 - test_fraction), random_state=seed + 1)
    _, va = next(inner.split(train_val, groups=groups[train_val]))
    split = np.full(len(manifest), "train", dtype=object)
    split[test] = "test"
    split[train_val[va]] = "val"
    return split


def kfold_splits(manifest: pd.DataFrame, k: int, *, seed: int = 0) -> list[pd.DataFrame]:
    """K subject-exclusive folds for cross-validation.

    Fold i tests on subject fold i, validates (best epoch, thresholds) on fold i+1 and
    trains on the rest, so every subject is tested exactly once.
    """
    if k < 3:
        raise DataError(f"cross-validation needs k >= 3 (one fold each for val and test), got {k}")
    folds = _fold_of(_strata(manifest), manifest["subject"].astype(str).to_numpy(), k, seed)
    out = []
    for i in range(k):
        part = manifest.copy()
        split = np.full(len(part), "train", dtype=object)
        split[folds == i] = "test"
        split[folds == (i + 1) % k] = "val"
        part["split"] = split
        _check_classes(part, f"fold {i + 1}/{k}")
        out.append(part)
    return out


def split_counts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Images and subjects per split and class counts, for summaries and tests."""
    rows = []
    for split in SPLITS:
        part = manifest.loc[manifest["split"] == split]
        row = {"split": split, "images": len(part), "subjects": part["subject"].nunique()}
        for c in EMOTION_CLASSES:
            row[c] = int((part["emotion"] == c).sum())
        rows.append(row)
    return pd.DataFrame(rows).set_index("split")
