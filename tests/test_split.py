"""Subject-exclusive, stratified train/val/test splits, random and predefined splits, and k-fold CV."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ckrun.data.labels import EMOTION_CLASSES
from ckrun.data.manifest import finalize_manifest
from ckrun.data.split import SPLITS, assign_split, kfold_splits, split_counts
from ckrun.errors import DataError

# scikit-learn warns when a class has fewer images than folds; the rare-class tests mean that.
pytestmark = pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")


def _manifest(negative: int = 30, positive: int = 15, surprise: int = 15, *, unlabelled: int = 0, frames: int = 3):
    """One class per subject (as in CK+ sequences), `frames` images per subject."""
    classes = ["negative"] * negative + ["positive"] * positive + ["surprise"] * surprise + [None] * unlabelled
    rows = [
        dict(path=f"/data/S{i:03d}_001_{f:08d}.png", subject=f"S{i:03d}", sequence="001", frame=f, emotion=c)
        for i, c in enumerate(classes)
        for f in range(frames)
    ]
    return finalize_manifest(pd.DataFrame(rows))


def _subjects(df: pd.DataFrame, split: str) -> set[str]:
    return set(df.loc[df["split"] == split, "subject"])


def _assert_subject_exclusive(df: pd.DataFrame) -> None:
    assert df["split"].isin(SPLITS).all()
    train, val, test = (_subjects(df, s) for s in SPLITS)
    assert not train & val and not train & test and not val & test
    # Every frame of a subject lands in the same split.
    assert (df.groupby("subject")["split"].nunique() == 1).all()


# %% subject method


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_subject_split_is_exclusive_and_near_60_20_20(seed: int) -> None:
    manifest = _manifest()
    out = assign_split(manifest, seed=seed)
    _assert_subject_exclusive(out)
    counts = split_counts(out)
    assert counts["subjects"].sum() == 60
    assert abs(counts.loc["train", "subjects"] - 36) <= 3
    assert abs(counts.loc["val", "subjects"] - 12) <= 3
    assert abs(counts.loc["test", "subjects"] - 12) <= 3


def test_subject_split_is_stratified_when_subjects_allow() -> None:
    manifest = _manifest(negative=40, positive=20, surprise=20)
    out = assign_split(manifest, seed=3)
    overall = manifest["emotion"].value_counts(normalize=True)
    for split in SPLITS:
        part = out.loc[out["split"] == split, "emotion"].value_counts(normalize=True)
        for c in EMOTION_CLASSES:
            assert part.get(c, 0.0) == pytest.approx(overall[c], abs=0.08), (split, c)


def test_unlabelled_rows_are_split_too_and_spread() -> None:
    manifest = _manifest(negative=20, positive=10, surprise=10, unlabelled=20)
    out = assign_split(manifest, seed=0)
    _assert_subject_exclusive(out)
    unlabelled = out.loc[out["emotion"].isna(), "split"].value_counts()
    assert set(unlabelled.index) == set(SPLITS)
    assert unlabelled["train"] > unlabelled["val"]


def test_split_returns_a_copy_in_row_order() -> None:
    manifest = _manifest()
    out = assign_split(manifest, seed=0)
    assert "split" not in manifest.columns
    assert out.index.equals(manifest.index)
    pd.testing.assert_frame_equal(out.drop(columns="split"), manifest)


def test_same_seed_same_split_other_seed_other_split() -> None:
    manifest = _manifest()
    a = assign_split(manifest, seed=11)["split"]
    b = assign_split(manifest, seed=11)["split"]
    c = assign_split(manifest, seed=12)["split"]
    pd.testing.assert_series_equal(a, b)
    assert (a != c).sum() > 10


def test_fractions_change_the_split_sizes() -> None:
    manifest = _manifest(negative=40, positive=20, surprise=20)
    counts = split_counts(assign_split(manifest, val_fraction=0.25, test_fraction=0.25, seed=0))
    assert counts.loc["test", "subjects"] == pytest.approx(20, abs=2)
    assert counts.loc["val", "subjects"] == pytest.approx(20, abs=2)
    assert counts.loc["train", "subjects"] == pytest.approx(40, abs=3)


def test_empty_manifest_is_an_error() -> None:
    with pytest.raises(DataError, match="empty dataset"):
        assign_split(_manifest(0, 0, 0))


def test_too_few_subjects_is_an_error() -> None:
    with pytest.raises(DataError, match=r"too few subjects .*: 3 subject\(s\), need at least 5"):
        assign_split(_manifest(1, 1, 1))


def test_a_class_too_rare_for_val_and_test_is_named() -> None:
    manifest = _manifest(negative=20, positive=1, surprise=10)
    with pytest.raises(DataError, match=r"leaves no positive \(1 subject\(s\) in all\) image in the \w+ split"):
        assign_split(manifest, seed=0)


def test_unknown_method_is_an_error() -> None:
    with pytest.raises(DataError, match="unknown split method 'bogus'"):
        assign_split(_manifest(), method="bogus")


# %% random and predefined


def test_random_split_covers_every_row_and_is_reproducible() -> None:
    manifest = _manifest()
    a = assign_split(manifest, seed=5, method="random")
    b = assign_split(manifest, seed=5, method="random")
    pd.testing.assert_series_equal(a["split"], b["split"])
    counts = a["split"].value_counts()
    assert set(counts.index) == set(SPLITS)
    assert counts["test"] == pytest.approx(0.2 * len(manifest), abs=6)
    assert counts["val"] == pytest.approx(0.2 * len(manifest), abs=6)
    assert (assign_split(manifest, seed=6, method="random")["split"] != a["split"]).any()


def test_predefined_split_is_kept() -> None:
    manifest = _manifest(negative=3, positive=3, surprise=3, frames=1)
    manifest["split"] = ["train", "val", "test"] * 3
    out = assign_split(manifest, method="predefined")
    pd.testing.assert_series_equal(out["split"], manifest["split"])


def test_predefined_split_errors() -> None:
    manifest = _manifest(negative=3, positive=3, surprise=3, frames=1)
    with pytest.raises(DataError, match="needs a 'split' column"):
        assign_split(manifest, method="predefined")
    manifest["split"] = ["train", "val", "test"] * 3
    manifest.loc[0, "split"] = None
    with pytest.raises(DataError, match="a value on every row"):
        assign_split(manifest, method="predefined")
    manifest.loc[0, "split"] = "holdout"
    with pytest.raises(DataError, match=r"unknown split value\(s\) \['holdout'\]"):
        assign_split(manifest, method="predefined")
    manifest["split"] = ["train", "val", "val"] * 3
    with pytest.raises(DataError, match="predefined split left the test split empty"):
        assign_split(manifest, method="predefined")
    manifest["split"] = ["train", "val", "test"] * 2 + ["train"] * 3
    manifest["emotion"] = ["negative"] * 6 + ["surprise"] * 3
    manifest = finalize_manifest(manifest)
    with pytest.raises(DataError, match="leaves no surprise"):
        assign_split(manifest, method="predefined")


# %% k-fold


@pytest.mark.parametrize("k", [3, 5])
def test_kfold_tests_every_subject_exactly_once(k: int) -> None:
    manifest = _manifest()
    folds = kfold_splits(manifest, k, seed=2)
    assert len(folds) == k
    tested: list[str] = []
    for i, fold in enumerate(folds):
        _assert_subject_exclusive(fold)
        test, val = _subjects(fold, "test"), _subjects(fold, "val")
        assert test and val and _subjects(fold, "train")
        assert test != val
        # Fold i validates on the subjects that fold i+1 tests on.
        assert val == _subjects(folds[(i + 1) % k], "test")
        tested += sorted(test)
    assert sorted(tested) == sorted(manifest["subject"].unique())


def test_kfold_is_reproducible_and_seeded() -> None:
    manifest = _manifest()
    a = [f["split"].tolist() for f in kfold_splits(manifest, 4, seed=1)]
    b = [f["split"].tolist() for f in kfold_splits(manifest, 4, seed=1)]
    c = [f["split"].tolist() for f in kfold_splits(manifest, 4, seed=2)]
    assert a == b
    assert a != c


def test_kfold_needs_three_folds_and_enough_subjects() -> None:
    with pytest.raises(DataError, match="k >= 3"):
        kfold_splits(_manifest(), 2)
    with pytest.raises(DataError, match="too few subjects"):
        kfold_splits(_manifest(2, 1, 1), 5)
    with pytest.raises(DataError, match=r"fold \d/5 leaves no positive"):
        kfold_splits(_manifest(negative=20, positive=2, surprise=10), 5)


# %% counts


def test_split_counts_match_the_rows() -> None:
    manifest = _manifest(negative=2, positive=1, surprise=1, frames=2)
    manifest["split"] = ["train"] * 4 + ["val"] * 2 + ["test"] * 2
    counts = split_counts(manifest)
    assert list(counts.index) == list(SPLITS)
    assert counts.loc["train"].to_dict() == {"images": 4, "subjects": 2, "negative": 4, "positive": 0, "surprise": 0}
    assert counts.loc["val"].to_dict() == {"images": 2, "subjects": 1, "negative": 0, "positive": 2, "surprise": 0}
    assert counts.loc["test", "surprise"] == 2
    assert int(np.sum(counts[list(EMOTION_CLASSES)].to_numpy())) == len(manifest)
