"""Manifest schema, format detection, CSV and folder readers, the importer's checks, summary, save/load."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ckplus_fixture import (
    DEFAULT_DEMOGRAPHICS,
    DEFAULT_SEQUENCES,
    corrupt,
    peak_count,
    write_ckplus,
    write_image,
)

from ckrun.data.importers import detect_format, import_dataset, load_manifest
from ckrun.data.importers.csv import read_csv_manifest
from ckrun.data.importers.files import parse_ck_filename
from ckrun.data.importers.folders import read_class_folders
from ckrun.data.importers.images import validate_images
from ckrun.data.manifest import BASE_COLUMNS, DEMOGRAPHIC_COLUMNS, SPLITS, save_manifest
from ckrun.data.summary import format_summary, summarize
from ckrun.errors import ConfigError, DataError


def _write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _images(folder: Path, names: list[str]) -> list[Path]:
    return [write_image(folder / name) for name in names]


@pytest.fixture
def ck_names(tmp_path: Path) -> list[Path]:
    """Four CK+-named images of two subjects in a flat folder next to where CSVs go."""
    names = [
        "S005_001_00000010.png",
        "S005_001_00000011.png",
        "S010_002_00000007.png",
        "S010_003_00000020.png",
    ]
    return _images(tmp_path / "data" / "img", names)


def test_contract_constants():
    assert BASE_COLUMNS[:3] == ("path", "subject", "sequence")
    assert BASE_COLUMNS[-1] == "landmarks"
    assert DEMOGRAPHIC_COLUMNS == ("age", "sex", "ethnicity")
    assert SPLITS == ("train", "val", "test")


# %% detect_format


def test_detect_ckplus_root_and_wrapped_folder(tmp_path):
    write_ckplus(tmp_path / "zip" / "CK+")
    (tmp_path / "zip" / "__MACOSX").mkdir()
    (tmp_path / "zip" / ".DS_Store").write_bytes(b"x")
    assert detect_format(tmp_path / "zip" / "CK+") == "ckplus"
    assert detect_format(tmp_path / "zip") == "ckplus"


def test_detect_csv_and_folders(tmp_path):
    csv_path = tmp_path / "m.CSV"
    csv_path.write_text("path,emotion\n")
    assert detect_format(csv_path) == "csv"
    write_image(tmp_path / "tree" / "Happy" / "a.png")
    assert detect_format(tmp_path / "tree") == "folders"


@pytest.mark.parametrize("case", ["missing", "text_file", "empty_dir", "unrelated_dirs"])
def test_detect_format_rejects_what_it_cannot_read(tmp_path, case):
    path = tmp_path / "thing"
    if case == "text_file":
        path.write_text("x")
    elif case == "empty_dir":
        path.mkdir()
    elif case == "unrelated_dirs":
        write_image(path / "holiday" / "a.png")
    with pytest.raises(DataError, match=r"thing"):
        detect_format(path)


def test_two_wrapped_ck_roots_are_ambiguous(tmp_path):
    write_ckplus(tmp_path / "both" / "a")
    write_ckplus(tmp_path / "both" / "b")
    with pytest.raises(DataError, match=r"both.*not a dataset"):
        detect_format(tmp_path / "both")


# %% CSV reader


def test_csv_relative_paths_aliases_and_subject_from_file_name(tmp_path, ck_names, monkeypatch):
    csv_path = _write_csv(
        tmp_path / "data" / "labels.csv",
        [
            {"path": "img/S005_001_00000010.png", "emotion": "happiness"},
            {"path": "img/S005_001_00000011.png", "emotion": "Sad"},
            {"path": "img/S010_002_00000007.png", "emotion": "surprise"},
            {"path": str(ck_names[3]), "emotion": "negative"},
        ],
    )
    monkeypatch.chdir(tmp_path)  # paths resolve against the CSV, not the working directory
    df = import_dataset(csv_path).manifest
    assert df["path"].tolist() == [str(p.resolve()) for p in ck_names]
    assert df["ck_emotion"].tolist()[:3] == ["happy", "sadness", "surprise"]
    assert pd.isna(df["ck_emotion"].iloc[3])
    assert df["emotion"].tolist() == ["positive", "negative", "surprise", "negative"]
    assert df["emotion_num"].tolist() == [1, 0, 2, 0]
    assert df["subject"].tolist() == ["S005", "S005", "S010", "S010"]
    assert df["sequence"].tolist() == ["001", "001", "002", "003"]
    assert df["frame"].tolist() == [10, 11, 7, 20]
    assert not [c for c in df.columns if c.startswith("AU")]


def test_csv_au_prefix_mapping_and_values(tmp_path, ck_names):
    csv_path = _write_csv(
        tmp_path / "data" / "aus.csv",
        [
            {"path": str(p), "FACS_12": v12, "facs_4": v4}
            for p, v12, v4 in zip(ck_names, ["1", "0", "", "3"], ["0", "1", "1", ""], strict=True)
        ],
    )
    df = import_dataset(csv_path, au_prefix="FACS_").manifest
    assert [c for c in df.columns if c.startswith("AU")] == ["AU4", "AU12"]
    np.testing.assert_array_equal(df["AU12"], [1.0, 0.0, np.nan, 1.0])
    np.testing.assert_array_equal(df["AU4"], [0.0, 1.0, 1.0, np.nan])
    assert df["emotion"].isna().all()
    assert df["AU12"].dtype == "float64"


def test_csv_neutral_rows_keep_ck_name_without_class(tmp_path, ck_names):
    csv_path = _write_csv(tmp_path / "m.csv", [{"path": str(ck_names[0]), "emotion": "neutral", "AU1": "1"}])
    df = import_dataset(csv_path).manifest
    assert df["ck_emotion"].tolist() == ["neutral"]
    assert df["emotion"].isna().all()


def test_csv_course_style_with_extra_columns_and_demographics(tmp_path, ck_names):
    rows = [
        {
            "subject": p.name[:4],
            "sequence": p.name[5:8],
            "image_index": str(i),
            "file_prefix": p.stem,
            "path": str(p),
            "emotion": emotion,
            "AU1": "1",
            "AU12": "0",
            "Age": age,
            "Gender": gender,
            "Race": race,
        }
        for i, (p, emotion, age, gender, race) in enumerate(
            zip(
                ck_names,
                ["happy", "anger", "fear", "surprise"],
                ["21", "21", "30", ""],
                ["F", "F", "M", "M"],
                ["Asian", "Asian", "Latino", "Latino"],
                strict=True,
            )
        )
    ]
    df = import_dataset(_write_csv(tmp_path / "course.csv", rows)).manifest
    assert "image_index" not in df.columns and "file_prefix" not in df.columns
    assert list(df.columns) == [*BASE_COLUMNS, "age", "sex", "ethnicity", "AU1", "AU12"]
    assert df["age"].dtype == "Int64"
    assert df["age"].tolist()[:3] == [21, 21, 30] and pd.isna(df["age"].iloc[3])
    assert df["sex"].tolist() == ["F", "F", "M", "M"]
    assert df["ethnicity"].iloc[2] == "Latino"
    assert df["sequence"].tolist() == ["001", "001", "002", "003"]


def test_csv_custom_column_names(tmp_path, ck_names):
    csv_path = _write_csv(
        tmp_path / "m.csv",
        [{"file": str(p), "label": "happy", "person": f"P{i}"} for i, p in enumerate(ck_names)],
    )
    df = import_dataset(csv_path, path_column="file", emotion_column="label", subject_column="person").manifest
    assert df["subject"].tolist() == ["P0", "P1", "P2", "P3"]
    assert set(df["emotion"]) == {"positive"}


def test_csv_without_subjects_needs_random_split(tmp_path):
    images = _images(tmp_path / "img", ["a.png", "b.png"])
    csv_path = _write_csv(tmp_path / "m.csv", [{"path": str(p), "emotion": "happy"} for p in images])
    with pytest.raises(DataError, match=r"m\.csv.*subject-exclusive.*split_method=random"):
        import_dataset(csv_path)
    df = import_dataset(csv_path, split_random=True).manifest
    assert df["subject"].tolist() == df["path"].tolist()
    assert df["sequence"].tolist() == ["", ""]
    assert df["frame"].isna().all()


def test_csv_predefined_split_is_honoured(tmp_path, ck_names):
    splits = ["Validation", "val", "test", "TEST"]  # one split per subject (S005, S010)
    csv_path = _write_csv(
        tmp_path / "m.csv",
        [{"path": str(p), "emotion": "fear", "split": s} for p, s in zip(ck_names, splits, strict=True)],
    )
    df = import_dataset(csv_path).manifest
    assert df["split"].tolist() == ["val", "val", "test", "test"]
    assert df.columns[len(BASE_COLUMNS)] == "split"


@pytest.mark.parametrize(("value", "shown"), [("holdout", "'holdout'"), ("", "empty split")])
def test_csv_invalid_split(tmp_path, ck_names, value, shown):
    rows = [{"path": str(ck_names[0]), "emotion": "fear", "split": "train"}]
    rows.append({"path": str(ck_names[1]), "emotion": "fear", "split": value})
    csv_path = _write_csv(tmp_path / "splits.csv", rows)
    with pytest.raises(DataError, match=rf"splits\.csv: row 2 \(line 3\).*{shown}"):
        read_csv_manifest(csv_path)


def test_csv_missing_required_columns_names_missing_and_found(tmp_path):
    csv_path = _write_csv(tmp_path / "bad.csv", [{"file": "a.png", "mood": "happy"}])
    with pytest.raises(DataError, match=r"bad\.csv: missing column.*path.*emotion.*found: file, mood"):
        read_csv_manifest(csv_path)


def test_csv_unknown_emotion_names_row_and_value(tmp_path, ck_names):
    rows = [{"path": str(p), "emotion": e} for p, e in zip(ck_names[:2], ["happy", "sleepy"], strict=True)]
    csv_path = _write_csv(tmp_path / "moods.csv", rows)
    with pytest.raises(DataError, match=r"moods\.csv: row 2 \(line 3\).*'sleepy'"):
        read_csv_manifest(csv_path)


def test_csv_non_numeric_au(tmp_path, ck_names):
    csv_path = _write_csv(tmp_path / "aus.csv", [{"path": str(ck_names[0]), "AU12": "yes"}])
    with pytest.raises(DataError, match=r"aus\.csv: row 1.*AU12 'yes' is not a number"):
        read_csv_manifest(csv_path)


def test_csv_conflicting_ck_emotion_and_emotion(tmp_path, ck_names):
    rows = [{"path": str(ck_names[0]), "ck_emotion": "happy", "emotion": "negative"}]
    with pytest.raises(DataError, match=r"edited\.csv: row 1.*ck_emotion 'happy'"):
        read_csv_manifest(_write_csv(tmp_path / "edited.csv", rows))


def test_csv_image_path_that_does_not_exist(tmp_path, ck_names):
    rows = [
        {"path": str(ck_names[0]), "emotion": "happy"},
        {"path": "img/S099_001_00000001.png", "emotion": "happy"},
    ]
    csv_path = _write_csv(tmp_path / "data" / "m.csv", rows)
    with pytest.raises(DataError, match=r"S099_001_00000001\.png: image not found"):
        import_dataset(csv_path)


@pytest.mark.parametrize(("content", "problem"), [("", "empty"), ("path,emotion\n", "no rows")])
def test_csv_empty(tmp_path, content, problem):
    csv_path = tmp_path / "blank.csv"
    csv_path.write_text(content)
    with pytest.raises(DataError, match=rf"blank\.csv.*{problem}"):
        read_csv_manifest(csv_path)


def test_csv_not_found(tmp_path):
    with pytest.raises(DataError, match=r"absent\.csv.*not found"):
        read_csv_manifest(tmp_path / "absent.csv")


# %% folder-per-class trees


def test_class_folders(tmp_path):
    root = tmp_path / "faces"
    _images(root / "Happiness", ["S005_001_00000011.png", "S005_002_00000004.JPG"])
    _images(root / "anger" / "batch1", ["S010_001_00000009.png"])
    _images(root / "surprise", ["S011_003_00000015.jpeg"])
    _images(root / "negative", ["S012_001_00000002.bmp"])
    _images(root / "neutral", ["S005_001_00000001.png"])
    (root / "anger" / ".DS_Store").write_bytes(b"x")
    (root / "anger" / "readme.txt").write_text("not an image")
    result = import_dataset(root)
    df = result.manifest
    assert result.source_format == "folders"
    assert len(df) == 5
    by_subject = df.set_index("subject")
    assert by_subject.loc["S010", "ck_emotion"] == "anger"
    assert by_subject.loc["S010", "emotion"] == "negative"
    assert pd.isna(by_subject.loc["S012", "ck_emotion"])
    assert set(df.loc[df["subject"] == "S005", "ck_emotion"]) == {"happy"}
    assert by_subject.loc["S011", "frame"] == 15
    assert list(df.columns) == list(BASE_COLUMNS)
    assert result.skipped == [(str((root / "neutral").resolve()), result.skipped[0][1])]
    assert "neutral" in result.skipped[0][1]


def test_class_folders_without_subjects(tmp_path):
    _images(tmp_path / "tree" / "fear", ["a.png", "b.png"])
    with pytest.raises(DataError, match=r"a\.png.*split_method=random"):
        import_dataset(tmp_path / "tree")
    df = import_dataset(tmp_path / "tree", split_random=True).manifest
    assert df["subject"].tolist() == df["path"].tolist()


def test_class_folders_unknown_folder_name(tmp_path):
    _images(tmp_path / "tree" / "happy", ["S005_001_00000001.png"])
    _images(tmp_path / "tree" / "bored", ["S005_001_00000002.png"])
    with pytest.raises(DataError, match=r"bored.*not an emotion class"):
        read_class_folders(tmp_path / "tree")


def test_class_folders_without_images(tmp_path):
    (tmp_path / "tree" / "happy").mkdir(parents=True)
    with pytest.raises(DataError, match=r"tree.*no images"):
        read_class_folders(tmp_path / "tree")


# %% image validation


def test_validate_images_corrupt_error_or_skip(tmp_path, ck_names):
    corrupt(ck_names[1])
    csv_path = _write_csv(tmp_path / "m.csv", [{"path": str(p), "emotion": "happy"} for p in ck_names])
    manifest = load_manifest(csv_path)
    with pytest.raises(DataError, match=rf"{re.escape(ck_names[1].name)}: corrupt"):
        validate_images(manifest)
    kept, skipped = validate_images(manifest, on_bad_image="skip", progress=True)
    assert len(kept) == 3
    assert skipped == [(str(ck_names[1]), "corrupt or unreadable image")]
    result = import_dataset(csv_path, on_bad_image="skip")
    assert [p for p, _ in result.skipped] == [str(ck_names[1])]


def test_validate_images_truncated_png(tmp_path, ck_names):
    data = ck_names[0].read_bytes()
    ck_names[0].write_bytes(data[: len(data) // 2])
    manifest = pd.DataFrame({"path": [str(ck_names[0])]})
    with pytest.raises(DataError, match=re.escape(ck_names[0].name)):
        validate_images(manifest)


def test_validate_images_rejects_unknown_policy(ck_names):
    with pytest.raises(ConfigError, match="on_bad_image"):
        validate_images(pd.DataFrame({"path": [str(ck_names[0])]}), on_bad_image="ignore")


# %% import_dataset


def test_readers_only_parse_and_the_importer_checks(tmp_path):
    images = _images(tmp_path / "img", ["a.png", "b.png"])
    corrupt(images[1])
    csv_path = _write_csv(tmp_path / "m.csv", [{"path": str(p), "emotion": "happy"} for p in images])
    raw = read_csv_manifest(csv_path)
    assert raw.source_format == "csv" and len(raw.rows) == 2
    assert raw.rows["subject"].isna().all()
    with pytest.raises(DataError, match=r"m\.csv.*split_method=random"):
        import_dataset(csv_path)
    with pytest.raises(DataError, match=r"b\.png: corrupt"):
        import_dataset(csv_path, split_random=True)


def test_import_dataset_ckplus_wrapped(tmp_path):
    write_ckplus(tmp_path / "dl" / "CK+", demographics=DEFAULT_DEMOGRAPHICS)
    result = import_dataset(tmp_path / "dl", peak_frames=2)
    assert result.source_format == "ckplus"
    assert len(result.manifest) == peak_count(DEFAULT_SEQUENCES, 2)


def test_import_dataset_explicit_format_and_bad_format(tmp_path, ck_names):
    csv_path = _write_csv(tmp_path / "m.txt", [{"path": str(ck_names[0]), "emotion": "happy"}])
    assert len(import_dataset(csv_path, fmt="csv").manifest) == 1
    with pytest.raises(ConfigError, match=r"format.*'xml'"):
        import_dataset(csv_path, fmt="xml")


def test_import_dataset_require_emotion_leaving_nothing(tmp_path, ck_names):
    csv_path = _write_csv(tmp_path / "aus.csv", [{"path": str(ck_names[0]), "AU1": "1"}])
    with pytest.raises(DataError, match=r"aus\.csv: no images left"):
        import_dataset(csv_path, require_emotion=True)


# %% summary


def test_summary_counts_and_text(tmp_path):
    write_ckplus(tmp_path / "ck")
    result = import_dataset(tmp_path / "ck", on_bad_image="skip")
    summary = summarize(result)
    assert summary["images"] == 26
    assert summary["sequences"] == 9
    assert summary["subjects"] == 3
    assert summary["emotion_counts"] == {"negative": 15, "positive": 2, "surprise": 3}
    assert summary["emotion_missing"] == 6
    assert summary["ck_emotion_counts"]["happy"] == 2
    assert summary["au_positive"]["AU12"] == 5
    assert summary["au_labelled"]["AU12"] == 26
    assert summary["skipped"] == 0
    text = format_summary(summary)
    assert "26 images (ckplus): 9 sequences, 3 subjects" in text
    assert "AU12 lip corner puller" in text
    assert "negative" in text


def test_summary_counts_skipped_reasons(tmp_path):
    write_image(tmp_path / "t" / "happy" / "S005_001_00000001.png")
    corrupt(write_image(tmp_path / "t" / "happy" / "S005_001_00000002.png"))
    write_image(tmp_path / "t" / "neutral" / "S005_001_00000003.png")
    summary = summarize(import_dataset(tmp_path / "t", on_bad_image="skip"))
    assert summary["skipped"] == 2
    assert summary["sequences"] == 1
    assert summary["skipped_reasons"] == {
        "neutral folder (not part of the 3-class task)": 1,
        "corrupt or unreadable image": 1,
    }
    assert "corrupt or unreadable image" in format_summary(summary)


# %% save / load


def test_round_trip_ckplus(tmp_path):
    write_ckplus(tmp_path / "ck", demographics=DEFAULT_DEMOGRAPHICS)
    manifest = import_dataset(tmp_path / "ck").manifest
    path = save_manifest(manifest, tmp_path / "out" / "manifest.csv")
    pd.testing.assert_frame_equal(load_manifest(path), manifest)
    pd.testing.assert_frame_equal(import_dataset(path).manifest, manifest)


def test_round_trip_with_split_missing_labels_and_path_subjects(tmp_path):
    images = _images(tmp_path / "img", ["a.png", "b.png", "c.png"])
    csv_path = _write_csv(
        tmp_path / "m.csv",
        [
            {"path": str(images[0]), "emotion": "happy", "AU6": "1", "split": "train", "sex": "F"},
            {"path": str(images[1]), "emotion": "", "AU6": "0", "split": "val", "sex": ""},
            {"path": str(images[2]), "emotion": "neutral", "AU6": "", "split": "test", "sex": "M"},
        ],
    )
    manifest = import_dataset(csv_path, split_random=True).manifest
    path = save_manifest(manifest, tmp_path / "saved.csv")
    back = load_manifest(path)
    pd.testing.assert_frame_equal(back, manifest)
    assert back["AU6"].isna().tolist() == [False, False, True]
    assert back["sequence"].tolist() == ["", "", ""]


def test_save_keeps_contract_columns_only(tmp_path, ck_names):
    csv_path = _write_csv(tmp_path / "m.csv", [{"path": str(ck_names[0]), "emotion": "happy"}])
    manifest = load_manifest(csv_path).assign(width=32)
    back = load_manifest(save_manifest(manifest, tmp_path / "saved.csv"))
    assert "width" not in back.columns


def test_images_outside_class_folders_are_reported(tmp_path):
    write_image(tmp_path / "t" / "happy" / "S005_001_00000001.png")
    stray = write_image(tmp_path / "t" / "S005_001_00000002.png")
    result = import_dataset(tmp_path / "t")
    assert len(result.manifest) == 1
    assert result.skipped == [(str(stray.resolve()), "image outside any class folder")]


def test_csv_fractional_frame(tmp_path, ck_names):
    rows = [{"path": str(ck_names[0]), "emotion": "happy", "frame": "3.5"}]
    with pytest.raises(DataError, match=r"frames\.csv: row 1.*'3\.5' is not a whole number"):
        read_csv_manifest(_write_csv(tmp_path / "frames.csv", rows))


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("S005_001_00000011.png", ("S005", "001", 11)),
        ("/x/s130_012_00000003.jpg", ("s130", "012", 3)),
        ("face_001.png", None),
    ],
)
def test_parse_ck_filename(name, parsed):
    assert parse_ck_filename(name) == parsed
