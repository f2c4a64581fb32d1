"""The official CK+ layout reader (with the importer's checks), on tiny trees written by ckplus_fixture."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from ckplus_fixture import (
    DEFAULT_DEMOGRAPHICS,
    DEFAULT_SEQUENCES,
    Seq,
    corrupt,
    peak_count,
    write_ckplus,
)

from ckrun.data import ckformat
from ckrun.data.importers import import_dataset
from ckrun.data.importers.ckplus import read_ckplus
from ckrun.data.labels import CK_EMOTION_CODES, CK_TO_CLASS, EMOTION_CLASSES
from ckrun.data.manifest import BASE_COLUMNS, ImportResult
from ckrun.errors import ConfigError, DataError


def _import(root: Path, **options: Any) -> ImportResult:
    """The CK+ reader plus the importer's checks, as `ckrun data import --format ckplus` runs them."""
    return import_dataset(root, fmt="ckplus", **options)


@pytest.fixture
def ck_root(tmp_path: Path) -> Path:
    return write_ckplus(tmp_path / "ck", demographics=DEFAULT_DEMOGRAPHICS)


@pytest.fixture
def manifest(ck_root: Path) -> pd.DataFrame:
    return _import(ck_root).manifest


def _rows(df: pd.DataFrame, subject: str, sequence: str) -> pd.DataFrame:
    return df[(df["subject"] == subject) & (df["sequence"] == sequence)]


def _one_seq(tmp_path: Path, **changes) -> Path:
    return write_ckplus(tmp_path / "ck", [replace(Seq(), **changes)])


# %% rows and labels


@pytest.mark.parametrize("peak_frames", [1, 3, 10])
def test_peak_frames_are_the_last_frames_of_each_labelled_sequence(ck_root, peak_frames):
    df = _import(ck_root, peak_frames=peak_frames).manifest
    assert len(df) == peak_count(DEFAULT_SEQUENCES, peak_frames)
    frames = _rows(df, "S005", "001")["frame"].tolist()
    assert frames == list(range(6 - min(peak_frames, 5), 6))


def test_columns_order_and_dtypes(manifest):
    assert tuple(manifest.columns[: len(BASE_COLUMNS)]) == BASE_COLUMNS
    assert list(manifest.columns[len(BASE_COLUMNS) : len(BASE_COLUMNS) + 3]) == [
        "age",
        "sex",
        "ethnicity",
    ]
    for column in ("path", "subject", "sequence", "ck_emotion", "emotion", "landmarks", "sex"):
        assert manifest[column].dtype == "string", column
    assert manifest["frame"].dtype == "Int64"
    assert manifest["emotion_num"].dtype == "Int64"
    assert manifest["age"].dtype == "Int64"
    assert all(Path(p).is_absolute() for p in manifest["path"])


@pytest.mark.parametrize("code", range(1, 8))
def test_every_emotion_code_maps_to_name_class_and_number(manifest, code):
    seq = next(s for s in DEFAULT_SEQUENCES if s.emotion == code)
    rows = _rows(manifest, seq.subject, seq.sequence)
    name = CK_EMOTION_CODES[code]
    assert set(rows["ck_emotion"]) == {name}
    assert set(rows["emotion"]) == {CK_TO_CLASS[name]}
    assert set(rows["emotion_num"]) == {EMOTION_CLASSES.index(CK_TO_CLASS[name])}


def test_neutral_has_no_class_but_keeps_aus(manifest):
    rows = _rows(manifest, "S011", "003")
    assert set(rows["ck_emotion"]) == {"neutral"}
    assert rows["emotion"].isna().all() and rows["emotion_num"].isna().all()
    assert (rows["AU43"] == 1.0).all()


def test_au_columns_come_from_every_code_that_appears(manifest):
    codes = sorted({code for s in DEFAULT_SEQUENCES for code, _ in (s.aus or ())})
    assert [c for c in manifest.columns if c.startswith("AU")] == [f"AU{c}" for c in codes]


def test_intensity_zero_counts_as_present_and_absent_is_zero(manifest):
    contempt = _rows(manifest, "S005", "002")
    assert (contempt["AU14"] == 1.0).all()
    assert (contempt["AU4"] == 0.0).all()
    assert (_rows(manifest, "S010", "002")["AU25"] == 1.0).all()


def test_sequence_without_emotion_file_keeps_its_aus(manifest):
    rows = _rows(manifest, "S005", "003")
    assert len(rows) == 3
    assert rows["emotion"].isna().all() and rows["ck_emotion"].isna().all()
    assert (rows["AU12"] == 1.0).all() and (rows["AU25"] == 1.0).all()
    assert (rows["AU4"] == 0.0).all()


def test_require_emotion_drops_rows_without_a_class(ck_root):
    result = _import(ck_root, require_emotion=True)
    df = result.manifest
    assert df["emotion"].notna().all()
    assert not ((df["subject"] == "S005") & (df["sequence"] == "003")).any()
    assert "neutral" not in set(df["ck_emotion"])
    assert len(result.skipped) == 6  # 3 emotion-less + 3 neutral rows, each reported


def test_sequence_without_facs_gets_unknown_aus(tmp_path):
    root = write_ckplus(tmp_path / "ck", [Seq("S005", "001", aus=None), Seq("S005", "002", emotion=5)])
    df = _import(root).manifest
    no_facs = _rows(df, "S005", "001")
    assert set(no_facs["ck_emotion"]) == {"anger"}
    assert no_facs[["AU4", "AU7"]].isna().all().all()
    assert (_rows(df, "S005", "002")["AU4"] == 1.0).all()


def test_landmarks_paths_when_the_file_exists(manifest):
    with_landmarks = _rows(manifest, "S005", "001")
    for path, frame in zip(with_landmarks["landmarks"], with_landmarks["frame"], strict=True):
        assert Path(path).is_file()
        assert Path(path).name == f"S005_001_{frame:08d}_landmarks.txt"
    assert _rows(manifest, "S010", "001")["landmarks"].isna().all()


def test_landmarks_folder_is_optional(tmp_path):
    root = _one_seq(tmp_path, landmarks=False)
    assert _import(root).manifest["landmarks"].isna().all()


def test_demographics_merged_by_subject(manifest):
    s010 = manifest[manifest["subject"] == "S010"]
    assert set(s010["age"]) == {27}
    assert set(s010["sex"]) == {"M"}
    assert set(s010["ethnicity"]) == {"Afro-American"}


def test_no_subjects_csv_means_no_demographic_columns(tmp_path):
    df = _import(_one_seq(tmp_path)).manifest
    assert not {"age", "sex", "ethnicity"} & set(df.columns)


def test_subject_missing_from_subjects_csv_gets_na(tmp_path):
    root = write_ckplus(tmp_path / "ck", [Seq("S005"), Seq("S999")], demographics={})
    (root / "subjects.csv").write_text("subject,age,sex\nS005,30,F\n")
    df = _import(root).manifest
    assert df.loc[df["subject"] == "S999", "age"].isna().all()
    assert "ethnicity" not in df.columns


def test_wrapped_ck_folder_and_stray_files(tmp_path):
    write_ckplus(tmp_path / "download" / "CK+", stray_files=True)
    (tmp_path / "download" / ".DS_Store").write_bytes(b"x")
    result = _import(tmp_path / "download")
    assert len(result.manifest) == peak_count(DEFAULT_SEQUENCES, 3)
    assert result.skipped == []


def test_non_frame_files_are_reported_not_imported(tmp_path):
    root = _one_seq(tmp_path)
    notes = ckformat.image_path(root, "S005", "001", 1).parent / "notes.txt"
    notes.write_text("hi")
    result = _import(root)
    assert (str(notes), "not a CK+ frame image") in result.skipped
    assert len(result.manifest) == 3


def test_label_for_an_earlier_frame_ends_the_window_there(tmp_path):
    df = _import(_one_seq(tmp_path, label_frame=4), peak_frames=2).manifest
    assert df["frame"].tolist() == [3, 4]


def test_short_sequence_gives_all_its_frames(tmp_path):
    df = _import(_one_seq(tmp_path, n_frames=2), peak_frames=3).manifest
    assert df["frame"].tolist() == [1, 2]


def test_sequence_without_any_label_is_skipped(tmp_path):
    root = write_ckplus(tmp_path / "ck", [Seq("S005", "001"), Seq("S005", "002", emotion=None, aus=None)])
    result = _import(root)
    assert set(result.manifest["sequence"]) == {"001"}
    assert any(path.endswith("002") for path, _ in result.skipped)


def test_progress_bar_does_not_change_the_result(ck_root, manifest):
    pd.testing.assert_frame_equal(_import(ck_root, progress=True).manifest, manifest)


# %% bad input


def _label(root: Path, kind: str, frame: int = 5, subject="S005", sequence="001") -> Path:
    writer = {"emotion": ckformat.emotion_path, "facs": ckformat.facs_path}[kind]
    return writer(root, subject, sequence, frame)


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match=r"nowhere.*not found"):
        _import(tmp_path / "nowhere")


def test_folder_without_images_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty.*cohn-kanade-images"):
        _import(tmp_path / "empty")


def test_no_images_found(tmp_path):
    (tmp_path / "ck" / "cohn-kanade-images" / "S005" / "001").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found"):
        _import(tmp_path / "ck")


def test_no_label_files_at_all(tmp_path):
    root = _one_seq(tmp_path, emotion=None, aus=None)
    with pytest.raises(DataError, match="no labelled sequence"):
        _import(root)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("   abc\n", "not a number"),
        ("   1.0   2.0\n", "expected 1 number"),
        ("", "exactly one emotion code"),
        ("   9.0000000e+00\n", "unknown CK\\+ emotion code"),
        ("   2.5000000e+00\n", "unknown CK\\+ emotion code"),
    ],
)
def test_bad_emotion_file(tmp_path, content, problem):
    root = _one_seq(tmp_path)
    path = _label(root, "emotion")
    path.write_text(content)
    with pytest.raises(DataError, match=rf"{re.escape(path.name)}.*{problem}"):
        _import(root)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("   4.0   1.0\n   7.0   x\n", "line 2: not a number"),
        ("   4.0   1.0   2.0\n", "expected 2 number"),
        ("   4.5   1.0\n", "not a positive integer"),
    ],
)
def test_bad_facs_file(tmp_path, content, problem):
    root = _one_seq(tmp_path)
    path = _label(root, "facs")
    path.write_text(content)
    with pytest.raises(DataError, match=rf"{re.escape(path.name)}.*{problem}"):
        _import(root)


def test_facs_file_for_a_frame_without_image(tmp_path):
    root = _one_seq(tmp_path, label_frame=99)
    with pytest.raises(DataError, match=r"S005_001_00000099_(emotion|facs)\.txt.*frame 99"):
        _import(root)


def test_label_file_for_a_sequence_without_images(tmp_path):
    root = _one_seq(tmp_path)
    path = _label(root, "facs", subject="S007", sequence="002")
    ckformat.write_facs(path, [(12, 1.0)])
    with pytest.raises(DataError, match=rf"{re.escape(path.name)}.*no images"):
        _import(root)


def test_unparseable_label_file_name(tmp_path):
    root = _one_seq(tmp_path)
    path = _label(root, "facs").with_name("peak_facs.txt")
    ckformat.write_facs(path, [(12, 1.0)])
    with pytest.raises(DataError, match=r"peak_facs\.txt.*frame"):
        _import(root)


def test_corrupt_image_is_an_error_naming_it(tmp_path):
    root = _one_seq(tmp_path)
    image = corrupt(ckformat.image_path(root, "S005", "001", 5))
    with pytest.raises(DataError, match=rf"{re.escape(image.name)}.*corrupt"):
        _import(root)


def test_corrupt_image_skipped_on_request(tmp_path):
    root = _one_seq(tmp_path)
    image = corrupt(ckformat.image_path(root, "S005", "001", 5))
    result = _import(root, on_bad_image="skip")
    assert result.manifest["frame"].tolist() == [3, 4]
    assert [p for p, _ in result.skipped] == [str(image.resolve())]


def test_the_reader_opens_no_image(tmp_path):
    """Image checks are the importer's: the reader lists the frames, corrupt or not."""
    root = _one_seq(tmp_path)
    corrupt(ckformat.image_path(root, "S005", "001", 5))
    raw = read_ckplus(root)
    assert raw.source_format == "ckplus" and raw.rows["frame"].tolist() == [3, 4, 5]


def test_missing_image_files_are_not_rows(tmp_path):
    """A frame that is not on disk is simply not part of the sequence."""
    root = _one_seq(tmp_path)
    ckformat.image_path(root, "S005", "001", 4).unlink()
    assert _import(root).manifest["frame"].tolist() == [2, 3, 5]


def test_peak_frames_must_be_positive(ck_root):
    with pytest.raises(ConfigError, match="peak_frames"):
        _import(ck_root, peak_frames=0)


def test_subjects_csv_without_subject_column(tmp_path):
    root = _one_seq(tmp_path)
    (root / "subjects.csv").write_text("id,age\nS005,30\n")
    with pytest.raises(DataError, match=r"subjects\.csv.*subject.*found: id, age"):
        _import(root)


def test_subjects_csv_with_non_numeric_age(tmp_path):
    root = _one_seq(tmp_path)
    (root / "subjects.csv").write_text("subject,age\nS005,old\n")
    with pytest.raises(DataError, match=r"subjects\.csv.*row 1.*'old'"):
        _import(root)


def test_require_emotion_leaving_nothing(tmp_path):
    root = _one_seq(tmp_path, emotion=None)
    with pytest.raises(DataError, match="no images left"):
        _import(root, require_emotion=True)
