"""Tests for ckrun.data.synth: layout, formats, determinism, visible expressions, skew, difficulty."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ckrun.data import ckformat
from ckrun.data.labels import CK_EMOTION_CODES, CK_TO_CLASS
from ckrun.data.synth import (
    DEFAULT_SUBJECTS,
    IMAGE_SIZES,
    MARKER_FILE,
    PARTIAL_MARKER_FILE,
    SYNTH_AUS,
    SynthParams,
    generate_synthetic_ckplus,
    is_synthetic_set,
    sample_expression,
)
from ckrun.errors import ConfigError, DataError

# No head drift, so first-vs-last differences come from the expression alone.
SMALL = SynthParams(sequences_per_subject=(2, 3), frames_per_sequence=(8, 12), frame_jitter_px=0.0, pose_drift_deg=0.0)
# Many two-frame sequences: cheap label and mode statistics.
WIDE = SynthParams(sequences_per_subject=(16, 16), frames_per_sequence=(2, 2), rgb_fraction=0.5, noise_sigma=0.0)
TINY = SynthParams(sequences_per_subject=(1, 1), frames_per_sequence=(2, 2))

LISTED_AUS = {1, 2, 4, 5, 6, 7, 9, 12, 15, 17, 20, 23, 24, 25, 26, 27}
EMOTION_LINE = re.compile(r"^   \d\.\d{7}e\+00\n$")
PAIR_LINE = re.compile(r"^   \d\.\d{7}e\+0\d   \d\.\d{7}e\+0\d$")
FRAME_NAME = re.compile(r"^(S\d{3})_(\d{3})_(\d{8})$")


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def sequences(root: Path) -> list[tuple[str, str, int]]:
    """(subject, sequence, frame count) of every sequence folder."""
    out = []
    for folder in sorted((root / ckformat.IMAGES_DIR).glob("*/*")):
        out.append((folder.parent.name, folder.name, len(list(folder.glob("*.png")))))
    return out


def load(root: Path, subject: str, sequence: str, frame: int) -> np.ndarray:
    with Image.open(ckformat.image_path(root, subject, sequence, frame)) as img:
        return np.asarray(img.convert("L"), dtype=float)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("synth") / "small"
    summary = generate_synthetic_ckplus(root, subjects=3, seed=0, workers=1, progress=False, params=SMALL)
    return root, summary


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "wide"
    generate_synthetic_ckplus(root, subjects=4, seed=1, workers=1, progress=False, params=WIDE)
    return root


def test_summary_counts_match_the_files(small: tuple[Path, object]) -> None:
    root, summary = small
    seqs = sequences(root)
    assert summary.root == root
    assert summary.subjects == 3
    assert summary.sequences == len(seqs)
    assert summary.frames == sum(n for *_, n in seqs) == len(list(root.rglob("*.png")))
    assert summary.sequences_with_emotion == len(list((root / ckformat.EMOTION_DIR).rglob("*.txt")))
    assert summary.elapsed_s > 0
    assert is_synthetic_set(root)
    assert not (root / PARTIAL_MARKER_FILE).exists()
    marker = json.loads((root / MARKER_FILE).read_text())
    assert (marker["seed"], marker["subjects"], marker["frames"]) == (0, 3, summary.frames)
    assert marker["params"]["frames_per_sequence"] == [8, 12]


def test_layout_follows_ckplus(small: tuple[Path, object]) -> None:
    root, _ = small
    seqs = sequences(root)
    subjects = sorted({s for s, _, _ in seqs})
    assert len(subjects) == 3 and all(re.fullmatch(r"S\d{3}", s) for s in subjects)
    for subject in subjects:
        names = sorted(q for s, q, _ in seqs if s == subject)
        assert names == [f"{k:03d}" for k in range(1, len(names) + 1)]
        assert 2 <= len(names) <= 3
    for subject, sequence, n in seqs:
        assert 8 <= n <= 12
        stems = sorted(p.stem for p in ckformat.image_path(root, subject, sequence, 1).parent.glob("*.png"))
        assert stems == [ckformat.frame_stem(subject, sequence, k) for k in range(1, n + 1)]
        landmarks = ckformat.landmarks_path(root, subject, sequence, 1).parent
        assert sorted(p.name for p in landmarks.iterdir()) == [f"{s}_landmarks.txt" for s in stems]
        facs = ckformat.facs_path(root, subject, sequence, n)
        assert [p.name for p in facs.parent.iterdir()] == [facs.name]  # labels: last frame only
        emotion_dir = ckformat.emotion_path(root, subject, sequence, n).parent
        if emotion_dir.exists():
            assert [p.name for p in emotion_dir.iterdir()] == [f"{stems[-1]}_emotion.txt"]


def test_label_and_landmark_text_is_byte_compatible(small: tuple[Path, object]) -> None:
    root, _ = small
    emotions = list((root / ckformat.EMOTION_DIR).rglob("*.txt"))
    assert emotions
    for path in emotions:
        text = path.read_text()
        assert EMOTION_LINE.match(text), text
        assert 1 <= ckformat.read_emotion(path) <= 7
    for path in (root / ckformat.FACS_DIR).rglob("*.txt"):
        lines = path.read_text().splitlines()
        assert lines and all(PAIR_LINE.match(line) for line in lines), lines
        codes = [code for code, _ in ckformat.read_facs(path)]
        assert codes == sorted(set(codes)) and set(codes) <= set(SYNTH_AUS)
    for path in (root / ckformat.LANDMARKS_DIR).rglob("*.txt"):
        lines = path.read_text().splitlines()
        assert len(lines) == 68
        assert all(PAIR_LINE.match(line) for line in lines), lines[:3]


def test_images_have_ckplus_sizes_and_landmarks_inside(small: tuple[Path, object]) -> None:
    root, _ = small
    for subject, sequence, n in sequences(root):
        for frame in (1, n):
            with Image.open(ckformat.image_path(root, subject, sequence, frame)) as img:
                size, mode = img.size, img.mode
            assert size in IMAGE_SIZES and mode in ("L", "RGB")
            points = ckformat.read_landmarks(ckformat.landmarks_path(root, subject, sequence, frame))
            assert (points >= 0).all() and (points[:, 0] < size[0]).all() and (points[:, 1] < size[1]).all()


def test_landmarks_follow_ibug_order(small: tuple[Path, object]) -> None:
    root, _ = small
    for subject, sequence, n in sequences(root):
        p = ckformat.read_landmarks(ckformat.landmarks_path(root, subject, sequence, n))
        brows, eyes, nose, mouth = p[17:27].mean(0), p[36:48].mean(0), p[31:36].mean(0), p[48:68].mean(0)
        assert brows[1] < eyes[1] < nose[1] < mouth[1] < p[8, 1]  # top to bottom, chin last
        assert p[0, 0] < p[36:42, 0].max() < p[42:48, 0].min() < p[16, 0]  # image-left eye first
        assert p[48, 0] < p[54, 0] and p[17, 0] < p[21, 0] < p[22, 0] < p[26, 0]


def test_expression_is_visible_between_first_and_last_frame(small: tuple[Path, object]) -> None:
    root, _ = small
    for subject, sequence, n in sequences(root):
        first, last = load(root, subject, sequence, 1), load(root, subject, sequence, n)
        pts = np.vstack([ckformat.read_landmarks(ckformat.landmarks_path(root, subject, sequence, k)) for k in (1, n)])
        moved = np.abs(pts[68:] - pts[:68]).max()
        # Where the expression acts: the points that moved clearly more than the head drift.
        shift = np.linalg.norm(pts[68:] - pts[:68], axis=1)
        acting = np.vstack([pts[:68][shift > np.median(shift) + 2], pts[68:][shift > np.median(shift) + 2]])
        assert len(acting), (subject, sequence, "no landmark moves with the expression")
        x0, y0 = np.floor(acting.min(0) - 6).astype(int)
        x1, y1 = np.ceil(acting.max(0) + 6).astype(int)
        face_change = np.abs(last[y0:y1, x0:x1] - first[y0:y1, x0:x1]).mean()
        corner_change = np.abs(last[:24, :24] - first[:24, :24]).mean()  # background: noise only
        assert moved > 4, (subject, sequence, moved)  # realistic AUs are slight: a few px on a 640 px frame
        assert face_change > corner_change + 2, (subject, sequence, face_change, corner_change)  # above the noise floor


def test_same_seed_same_bytes_whatever_the_workers(small: tuple[Path, object], tmp_path: Path) -> None:
    root, _ = small
    again = tmp_path / "again"
    generate_synthetic_ckplus(again, subjects=3, seed=0, workers=2, progress=False, params=SMALL)
    assert tree_digest(again) == tree_digest(root)
    other = tmp_path / "other"
    generate_synthetic_ckplus(other, subjects=3, seed=1, workers=1, progress=False, params=SMALL)
    assert tree_digest(other) != tree_digest(root)


def test_facs_cover_the_listed_aus_with_coded_and_uncoded_intensities(wide: Path) -> None:
    pairs = [pair for path in (wide / ckformat.FACS_DIR).rglob("*.txt") for pair in ckformat.read_facs(path)]
    assert len(list((wide / ckformat.FACS_DIR).rglob("*.txt"))) == 64
    assert {code for code, _ in pairs} >= LISTED_AUS
    intensities = Counter(int(value) for _, value in pairs)
    assert intensities[0] > 0 and set(intensities) <= {0, 1, 2, 3, 4, 5} and len(intensities) >= 5


def test_grey_and_colour_subjects_both_occur(wide: Path) -> None:
    modes = set()
    for folder in sorted((wide / ckformat.IMAGES_DIR).glob("*/001")):
        with Image.open(next(folder.glob("*.png"))) as img:
            modes.add(img.mode)
    assert modes == {"L", "RGB"}


def test_sampler_skews_classes_like_ckplus() -> None:
    rng = np.random.default_rng(0)
    draws = [sample_expression(rng) for _ in range(4000)]
    classes = Counter(CK_TO_CLASS[CK_EMOTION_CODES[d.emotion]] for d in draws)
    assert classes["negative"] / 4000 == pytest.approx(0.54, abs=0.03)
    assert classes["surprise"] / 4000 == pytest.approx(0.25, abs=0.03)
    assert classes["positive"] / 4000 == pytest.approx(0.21, abs=0.03)
    assert np.mean([d.has_emotion for d in draws]) == pytest.approx(0.8, abs=0.03)
    emotions_of = {}
    for d in draws:
        emotions_of.setdefault(frozenset(au for au, _ in d.levels), set()).add(d.emotion)
    assert any(len(e) > 1 for e in emotions_of.values())  # AUs do not determine the emotion
    happy = [frozenset(au for au, _ in d.levels) for d in draws if d.emotion == 5]
    assert all(12 in aus for aus in happy) and len(set(happy)) > 3


def test_subjects_csv_has_demographics(small: tuple[Path, object]) -> None:
    root, _ = small
    with (root / ckformat.SUBJECTS_FILE).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["subject", "age", "sex", "ethnicity", "synth_difficulty"]
    assert [r["subject"] for r in rows] == sorted({s for s, _, _ in sequences(root)})
    for row in rows:
        assert row["synth_difficulty"] == "custom"  # SMALL turns off the head drift
        assert 18 <= int(row["age"]) <= 50
        assert row["sex"] in {"F", "M"}
        assert row["ethnicity"] in {"Euro-American", "African-American", "Asian", "Latino", "Other"}


def test_demographics_are_skewed_like_ckplus() -> None:
    from ckrun.data.synth.identity import _sample_demographics

    rng = np.random.default_rng(0)
    people = [_sample_demographics(rng) for _ in range(3000)]
    assert np.mean([p.sex == "F" for p in people]) == pytest.approx(0.69, abs=0.03)
    assert np.mean([p.ethnicity == "Euro-American" for p in people]) == pytest.approx(0.81, abs=0.03)
    assert min(p.age for p in people) == 18 and max(p.age for p in people) <= 50
    assert np.median([p.age for p in people]) < 30


def test_default_params_give_ckplus_like_sequences(tmp_path: Path) -> None:
    summary = generate_synthetic_ckplus(tmp_path / "one", subjects=1, seed=3, workers=1, progress=False)
    counts = [n for *_, n in sequences(tmp_path / "one")]
    low, high = SynthParams().sequences_per_subject
    assert low <= summary.sequences == len(counts) <= high
    assert all(8 <= n <= 20 for n in counts)
    assert DEFAULT_SUBJECTS == 40


def test_refuses_a_foreign_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=re.escape(str(tmp_path))) as info:
        generate_synthetic_ckplus(tmp_path, subjects=1, progress=False, params=TINY)
    assert "\n" not in str(info.value)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert not (tmp_path / ckformat.IMAGES_DIR).exists()


def test_replaces_a_previous_or_interrupted_synthetic_set(tmp_path: Path) -> None:
    root = tmp_path / "set"
    generate_synthetic_ckplus(root, subjects=2, seed=0, workers=1, progress=False, params=TINY)
    first = {p.name for p in (root / ckformat.IMAGES_DIR).iterdir()}
    (root / MARKER_FILE).unlink()  # as if the next run had been interrupted...
    (root / PARTIAL_MARKER_FILE).write_text("")  # ...after it started
    summary = generate_synthetic_ckplus(root, subjects=1, seed=5, workers=1, progress=False, params=TINY)
    subjects = {p.name for p in (root / ckformat.IMAGES_DIR).iterdir()}
    assert summary.subjects == 1 and len(subjects) == 1 and len(first) == 2
    assert len(list(root.rglob("*.png"))) == summary.frames == 2
    assert is_synthetic_set(root) and not (root / PARTIAL_MARKER_FILE).exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"frames_per_sequence": (1, 4)}, "frames_per_sequence"),
        ({"sequences_per_subject": (3, 2)}, "sequences_per_subject"),
        ({"emotion_fraction": 1.5}, "emotion_fraction"),
        ({"noise_sigma": -1.0}, "noise_sigma"),
        ({"expressivity": (0.0, 1.0)}, "expressivity"),
    ],
)
def test_params_are_validated(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SynthParams(**change)


def test_params_accept_lists_and_bad_arguments_are_refused(tmp_path: Path) -> None:
    params = SynthParams(frames_per_sequence=[8, 9])
    assert params.frames_per_sequence == (8, 9) and hash(params)
    with pytest.raises(ConfigError, match="subjects"):
        generate_synthetic_ckplus(tmp_path / "x", subjects=0, progress=False)
    with pytest.raises(ConfigError, match="workers"):
        generate_synthetic_ckplus(tmp_path / "x", subjects=1, workers=0, progress=False)
