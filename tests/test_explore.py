"""Tests for `ckrun data describe`: dataset description numbers (ckrun.data.explore and its
helpers), figures (ckrun.figures.dataset) and summary (ckrun.data.summary_md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ckrun.data.au_stats import strongest_pairs
from ckrun.data.demographics import age_band
from ckrun.data.describe import describe
from ckrun.data.explore import DatasetDescription, compute_description
from ckrun.data.labels import CK_TO_CLASS, EMOTION_CLASSES
from ckrun.data.summary_md import render_summary
from ckrun.errors import DataError
from ckrun.figures.dataset import plot_au_correlation, plot_emotion_counts
from ckrun.figures.style import CLASS_COLOURS

AUS = (1, 2, 4, 9, 12, 15, 25, 26)
# AUs present per CK+ emotion: AU1 and AU2 always together; AU12 exactly where AU15 is not.
EMOTION_AUS = {
    "happy": {12, 25},
    "surprise": {1, 2, 15, 25, 26},
    "sadness": {1, 2, 15},
    "anger": {4, 15},
    None: {1, 2, 15},  # AU-only sequence
}
# subject -> [(sequence, ck_emotion, frames)]; 23 images, 9 sequences.
SEQUENCES = {
    "S001": [("001", "happy", 3), ("002", "surprise", 2)],
    "S002": [("001", "sadness", 3), ("002", "anger", 3)],
    "S003": [("001", "happy", 3), ("002", "anger", 2)],
    "S004": [("001", "surprise", 2), ("002", "sadness", 3), ("003", None, 2)],
}
# Two sizes and two modes, one pair per subject group: 11 images 64x49 L, 12 images 72x48 RGB.
IMAGE_KIND = {"S001": ((64, 49), "L"), "S002": ((64, 49), "L")}
OTHER_KIND = ((72, 48), "RGB")
SPLIT = {"S001": "train", "S002": "train", "S003": "val", "S004": "test"}
DEMOGRAPHICS = {
    "S001": (19, "F", "Euro-American"),
    "S002": (22, "F", "Euro-American"),
    "S003": (30, "M", "Asian"),
    "S004": (45, "F", "Euro-American"),
}


def _image(path: Path, subject: str) -> None:
    size, mode = IMAGE_KIND.get(subject, OTHER_KIND)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size).save(path)


def _rows(root: Path) -> list[dict]:
    rows = []
    for subject, sequences in SEQUENCES.items():
        age, sex, ethnicity = DEMOGRAPHICS[subject]
        for sequence, ck, frames in sequences:
            for frame in range(1, frames + 1):
                path = root / subject / sequence / f"{subject}_{sequence}_{frame:08d}.png"
                _image(path, subject)
                emotion = CK_TO_CLASS[ck] if ck else pd.NA
                row = {
                    "path": str(path),
                    "subject": subject,
                    "sequence": sequence,
                    "frame": frame,
                    "ck_emotion": ck if ck else pd.NA,
                    "emotion": emotion,
                    "emotion_num": EMOTION_CLASSES.index(emotion) if ck else pd.NA,
                    "landmarks": pd.NA,
                    "split": SPLIT[subject],
                    "age": age,
                    "sex": sex,
                    "ethnicity": ethnicity,
                }
                present = EMOTION_AUS[ck]
                row |= {f"AU{k}": float(k in present) for k in AUS}
                rows.append(row)
    return rows


def _manifest(root: Path) -> pd.DataFrame:
    frame = pd.DataFrame(_rows(root))
    # AU9 is rare (one positive): perfectly correlated by chance, must not be reported.
    frame.loc[0, "AU9"] = 1.0
    # One unknown AU value must not break pairwise correlation.
    frame.loc[1, "AU25"] = np.nan
    for col in ("frame", "emotion_num"):
        frame[col] = frame[col].astype("Int64")
    for col in ("ck_emotion", "emotion", "landmarks"):
        frame[col] = frame[col].astype("string")
    return frame


@pytest.fixture(scope="module")
def base_manifest(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return _manifest(tmp_path_factory.mktemp("images"))


@pytest.fixture()
def manifest(base_manifest: pd.DataFrame) -> pd.DataFrame:
    """A copy each test may edit; the images on disk are shared."""
    return base_manifest.copy()


@pytest.fixture(scope="module")
def described(base_manifest: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> tuple[DatasetDescription, Path]:
    """One full describe() shared by the read-only tests: figures cost ~0.4 s each."""
    out = tmp_path_factory.mktemp("describe")
    before = base_manifest.copy()
    desc = describe(base_manifest, out)
    pd.testing.assert_frame_equal(base_manifest, before)  # describe never edits its input
    return desc, out


def _strict(constant: str) -> float:
    raise ValueError(f"numbers.json must be strict JSON, found {constant}")


def _numbers(out: Path) -> dict:
    return json.loads((out / "numbers.json").read_text(), parse_constant=_strict)


def test_writes_summary_numbers_and_readable_figures(described):
    desc, out = described
    expected = {
        "summary.md",
        "numbers.json",
        "emotion_counts.png",
        "au_frequency.png",
        "au_correlation.png",
        "emotion_au.png",
        "image_sizes.png",
    }
    assert {p.name for p in out.iterdir()} == expected
    assert {p.name for p in desc.files.values()} == expected
    for png in out.glob("*.png"):
        with Image.open(png) as img:
            img.verify()
        with Image.open(png) as img:
            assert img.format == "PNG"
            assert img.width > 300 and img.height > 200


def test_class_counts_and_imbalance_ratio(described, manifest):
    desc, out = described
    numbers = _numbers(out)
    expected = manifest["emotion"].value_counts().to_dict()
    assert numbers["emotion_counts"] == expected == {"negative": 11, "positive": 6, "surprise": 4}
    assert list(numbers["emotion_counts"]) == ["negative", "positive", "surprise"]
    assert numbers["imbalance_ratio"] == pytest.approx(11 / 4)
    assert numbers["majority_class"] == "negative"
    assert numbers["minority_class"] == "surprise"
    assert numbers["ck_emotion_counts"] == {"anger": 5, "happy": 6, "sadness": 6, "surprise": 4}
    assert desc.imbalance_ratio == pytest.approx(2.75)


def test_images_sequences_and_subjects_counted(described):
    _, out = described
    counts = _numbers(out)["counts"]
    assert counts == {
        "images": 23,
        "images_with_emotion": 21,
        "images_with_aus": 23,
        "subjects": 4,
        "sequences": 9,
        "sequences_with_emotion": 8,
        "sequences_without_emotion": 1,
    }


def test_image_sizes_modes_and_formats(described):
    desc, out = described
    images = _numbers(out)["images"]
    assert images["sizes"] == {"72x48": 12, "64x49": 11}
    assert images["modes"] == {"RGB": 12, "L": 11}
    assert images["formats"] == {"PNG": 23}
    assert images["checked"] == images["total"] == 23
    assert images["unreadable"] == []
    assert desc.images is not None and desc.images.sizes["64x49"] == 11


def test_image_sample_bounds_headers_read(manifest):
    desc = compute_description(manifest, image_sample=5, progress=True)
    assert desc.images is not None
    assert (desc.images.checked, desc.images.total) == (5, 23)
    assert sum(desc.images.sizes.values()) == 5
    assert "random sample of 5 of 23" in render_summary(desc)
    again = compute_description(manifest, image_sample=5)
    assert again.images is not None and again.images.sizes == desc.images.sizes


def test_unreadable_image_is_reported_not_fatal(manifest, tmp_path):
    missing = str(tmp_path / "nowhere.png")
    manifest.loc[3, "path"] = missing
    desc = compute_description(manifest)
    assert desc.images is not None
    assert desc.images.unreadable == [missing]
    assert sum(desc.images.sizes.values()) == 22
    assert any("could not be opened" in n for n in desc.notes)


def test_au_frequency_counts_positives_and_unknowns(described):
    desc, _ = described
    freq = desc.au_frequency
    assert freq is not None
    assert freq.at["AU12", "positives"] == 6
    assert freq.at["AU1", "positives"] == 4 + 6 + 2  # surprise + sadness + AU-only
    assert freq.at["AU9", "positives"] == 1
    assert freq.at["AU25", "unknown"] == 1
    assert freq.at["AU25", "positives"] == 9  # 6 happy + 4 surprise, one unknown
    assert freq.at["AU12", "rate"] == pytest.approx(6 / 23)
    assert freq.at["AU12", "label"] == "AU12 lip corner puller"


def test_strongest_pairs_find_cooccurrence_and_exclusion(described):
    desc, out = described
    pairs = desc.strongest_pairs
    assert pairs is not None
    top = pairs.positive.iloc[0]
    assert (top["au_a"], top["au_b"]) == ("AU1", "AU2")
    assert top["r"] == pytest.approx(1.0)
    strongest = pairs.negative.iloc[0]
    assert (strongest["au_a"], strongest["au_b"]) == ("AU12", "AU15")
    assert strongest["r"] == pytest.approx(-1.0)
    assert (pairs.negative["r"] < 0).all()
    assert list(pairs.negative["r"]) == sorted(pairs.negative["r"])
    assert len(pairs.positive) <= 5 and len(pairs.negative) <= 5
    # AU9 has a single positive: too rare to report.
    assert "AU9" not in set(pairs.positive[["au_a", "au_b"]].to_numpy().ravel())
    assert "AU9" not in set(pairs.negative[["au_a", "au_b"]].to_numpy().ravel())
    numbers = _numbers(out)
    assert numbers["au_correlation"]["AU1"]["AU2"] == pytest.approx(1.0)
    assert numbers["strongest_pairs"]["positive"][0]["au_a"] == "AU1"


def test_strongest_pairs_on_a_given_matrix():
    cols = ["AU1", "AU2", "AU4", "AU6"]
    corr = pd.DataFrame(np.eye(4), index=cols, columns=cols)
    corr.loc["AU1", "AU2"] = corr.loc["AU2", "AU1"] = 0.9
    corr.loc["AU4", "AU6"] = corr.loc["AU6", "AU4"] = -0.7
    corr.loc["AU1", "AU6"] = corr.loc["AU6", "AU1"] = 0.4
    corr.loc["AU2", "AU4"] = corr.loc["AU4", "AU2"] = np.nan
    pairs = strongest_pairs(corr, n=1)
    assert pairs.positive[["au_a", "au_b", "r"]].to_numpy().tolist() == [["AU1", "AU2", 0.9]]
    assert pairs.negative[["au_a", "au_b", "r"]].to_numpy().tolist() == [["AU4", "AU6", -0.7]]
    rare = strongest_pairs(corr, {"AU1": 10, "AU2": 2, "AU4": 10, "AU6": 10}, min_positives=3)
    assert rare.positive[["au_a", "au_b"]].to_numpy().tolist() == [["AU1", "AU6"]]


def test_emotion_au_table_gives_positive_rate_per_class(described):
    desc, out = described
    table = desc.emotion_au
    assert table is not None
    assert list(table.index) == ["negative", "positive", "surprise"]
    assert table.at["positive", "AU12"] == pytest.approx(1.0)
    assert table.at["negative", "AU1"] == pytest.approx(6 / 11)
    assert table.at["surprise", "AU12"] == pytest.approx(0.0)
    assert table.at["negative", "images"] == 11
    assert _numbers(out)["emotion_au"]["negative"]["AU4"] == pytest.approx(5 / 11)


def test_split_table_counts_subjects_images_and_classes(described):
    desc, out = described
    splits = _numbers(out)["splits"]
    assert list(splits) == ["train", "val", "test"]
    assert {k: v["subjects"] for k, v in splits.items()} == {"train": 2, "val": 1, "test": 1}
    assert {k: v["images"] for k, v in splits.items()} == {"train": 11, "val": 5, "test": 7}
    assert splits["train"]["negative"] == 6
    assert splits["train"]["positive"] == 3
    assert splits["test"]["no_emotion"] == 2
    assert desc.split_subject_overlap == 0


def test_subject_in_two_splits_is_flagged(manifest):
    manifest.loc[manifest["subject"] == "S004", "split"] = ["test"] * 3 + ["train"] * 4
    desc = compute_description(manifest)
    assert desc.split_subject_overlap == 1
    assert any(line.startswith("Leakage: 1 subject") for line in desc.limitations)


def test_demographics_counted_per_subject(described):
    desc, out = described
    demo = _numbers(out)["demographics"]
    assert demo["sex"] == {
        "female": {"subjects": 3, "percent": 75.0},
        "male": {"subjects": 1, "percent": 25.0},
    }
    assert demo["ethnicity"]["Euro-American"] == {"subjects": 3, "percent": 75.0}
    assert {k: v["subjects"] for k, v in demo["age"].items()} == {
        "18-24": 2,
        "25-34": 1,
        "35-50": 1,
    }
    summary = (out / "summary.md").read_text()
    assert "## Demographics" in summary
    assert "75% of the 4 subjects with a recorded ethnicity are Euro-American" in summary
    assert "75% of the 4 subjects with a recorded sex are female" in summary
    assert "ages span 19-45 (median 26); children and older adults are not" in summary
    assert set(desc.demographics) == {"sex", "ethnicity", "age"}


def test_demographics_absent_without_columns(manifest, tmp_path):
    out = tmp_path / "out"
    desc = describe(manifest.drop(columns=["age", "sex", "ethnicity"]), out)
    assert desc.demographics == {}
    assert _numbers(out)["demographics"] == {}
    summary = (out / "summary.md").read_text()
    assert "## Demographics" not in summary
    assert "No demographic data for: sex, ethnicity, age." in summary
    assert "recorded sex" not in summary


def test_missing_demographic_values_form_unknown_row(manifest):
    manifest.loc[manifest["subject"] == "S003", "sex"] = pd.NA
    manifest.loc[manifest["subject"] == "S004", "age"] = 70
    desc = compute_description(manifest)
    sex = desc.demographics["sex"]
    assert sex.at["unknown", "subjects"] == 1
    assert sex.at["female", "percent"] == pytest.approx(75.0)
    assert desc.demographics["age"].at["other", "subjects"] == 1
    ages = next(line for line in desc.limitations if line.startswith("Subjects' ages"))
    assert ages == "Subjects' ages span 19-70 (median 26); children are not represented."


def test_age_bands():
    assert [age_band(a) for a in (18, 24, 24.5, 25, 34, 35, 50, 17, 51)] == [
        "18-24",
        "18-24",
        "18-24",
        "25-34",
        "25-34",
        "35-50",
        "35-50",
        "other",
        "other",
    ]


def test_limitations_are_data_driven(described):
    desc, out = described
    text = " ".join(desc.limitations)
    assert "'negative' has 11 of 21 emotion-labelled images (52%), 2.8x as many as" in text
    assert "'surprise' (4)" in text
    assert "21 emotion-labelled images come from 8 sequences (2.6 per sequence, up to 3)" in text
    assert "1 of 9 sequences (2 images) carry no emotion label" in text
    assert "posed" in text
    assert "## Limitations and bias" in (out / "summary.md").read_text()


def test_without_au_columns_skips_au_sections(manifest, tmp_path):
    out = tmp_path / "out"
    no_aus = manifest[[c for c in manifest.columns if not c.startswith("AU")]]
    desc = describe(no_aus, out)
    assert desc.au_frequency is None and desc.au_correlation is None
    assert desc.strongest_pairs is None and desc.emotion_au is None
    names = {p.name for p in out.iterdir()}
    assert "au_correlation.png" not in names and "emotion_counts.png" in names
    summary = (out / "summary.md").read_text()
    assert "## Action units" not in summary
    assert "no AU columns" in summary
    assert _numbers(out)["emotion_counts"]["negative"] == 11


def test_au_only_manifest_without_emotions(manifest, tmp_path):
    out = tmp_path / "out"
    au_only = manifest.drop(columns=["split", "age", "sex", "ethnicity"])
    au_only["emotion"] = pd.Series(pd.NA, index=au_only.index, dtype="string")
    au_only["ck_emotion"] = pd.Series(pd.NA, index=au_only.index, dtype="string")
    desc = describe(au_only, out)
    assert desc.emotion_counts == {} and desc.imbalance_ratio is None
    assert desc.emotion_au is None and desc.splits is None
    assert desc.strongest_pairs is not None
    assert "emotion_counts.png" not in {p.name for p in out.iterdir()}
    summary = (out / "summary.md").read_text()
    assert "AU-only set" in summary and "## Emotions" not in summary


def test_minimal_manifest_only_paths_and_emotions(tmp_path):
    path = tmp_path / "a.png"
    Image.new("L", (10, 10)).save(path)
    manifest = pd.DataFrame({"path": [str(path)] * 3, "emotion": ["positive"] * 3})
    desc = describe(manifest, tmp_path / "out")
    assert desc.counts["subjects"] is None and desc.counts["sequences"] is None
    assert desc.emotion_counts == {"positive": 3} and desc.imbalance_ratio is None
    assert any("No images of class negative, surprise" in n for n in desc.notes)


def test_empty_manifest_raises(tmp_path):
    with pytest.raises(DataError, match="no images to describe"):
        describe(pd.DataFrame(columns=["path", "subject", "emotion"]), tmp_path / "out")


def test_figure_functions_are_reusable(tmp_path):
    counts = {"negative": 5, "positive": 3}
    path = plot_emotion_counts(counts, tmp_path / "e.png", fine_counts={"anger": 5, "happy": 3})
    corr = pd.DataFrame([[1.0, -0.5], [-0.5, 1.0]], index=["AU1", "AU2"], columns=["AU1", "AU2"])
    path2 = plot_au_correlation(corr, tmp_path / "c.png")
    for p in (path, path2):
        with Image.open(p) as img:
            assert img.size[0] > 0 and img.size[1] > 0
    assert set(CLASS_COLOURS) == set(EMOTION_CLASSES)


def test_images_without_split_get_their_own_row(manifest):
    manifest["split"] = manifest["split"].astype("string")
    manifest.loc[[0, 5], "split"] = pd.NA
    desc = compute_description(manifest)
    assert desc.splits is not None
    assert list(desc.splits.index) == ["train", "val", "test", "unassigned"]
    assert desc.splits.at["unassigned", "images"] == 2
    assert desc.splits["images"].sum() == 23


def test_all_unknown_au_values_skip_au_sections(manifest):
    for col in (c for c in manifest.columns if c.startswith("AU")):
        manifest[col] = np.nan
    desc = compute_description(manifest)
    assert desc.au_frequency is None and desc.strongest_pairs is None
    assert desc.counts["images_with_aus"] == 0
    assert any("Every AU value is unknown" in n for n in desc.notes)
