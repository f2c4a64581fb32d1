"""The synthetic set's difficulty: presets, what `realistic` draws, label noise, cache key, CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from scipy import ndimage
from test_synth import tree_digest

from ckrun.cli import cli
from ckrun.cli.data_commands import data_synth
from ckrun.data import ckformat, synth
from ckrun.data.default import default_dataset, resolve_data
from ckrun.data.faces import landmark_box
from ckrun.data.labels import CK_EMOTION_CODES, CK_TO_CLASS
from ckrun.data.synth import (
    DEFAULT_DIFFICULTY,
    DIFFICULTIES,
    MARKER_FILE,
    PRESETS,
    SYNTH_VERSION,
    SynthParams,
    generate_synthetic_ckplus,
    sample_expression,
)
from ckrun.data.synth.drawing import draw_face
from ckrun.data.synth.identity import sample_subject
from ckrun.data.synth.landmarks import neutral_landmarks
from ckrun.data.synth.pose import View
from ckrun.errors import ConfigError

# Two-frame sequences: the first is neutral, the last the peak.
QUICK = {"sequences_per_subject": (2, 2), "frames_per_sequence": (2, 2)}
SUBJECTS = 8


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An easy and a realistic set of the same seed (8 subjects, 2 two-frame sequences each)."""
    base = tmp_path_factory.mktemp("difficulty")
    for difficulty in DIFFICULTIES:
        params = SynthParams.preset(difficulty, **QUICK)
        generate_synthetic_ckplus(
            base / difficulty, subjects=SUBJECTS, seed=0, workers=1, progress=False, params=params
        )
    return {d: base / d for d in DIFFICULTIES}


def frames(root: Path) -> list[tuple[str, str, int]]:
    """(subject, sequence, frame) of every image, in order."""
    out = []
    for folder in sorted((root / ckformat.IMAGES_DIR).glob("*/*")):
        count = len(list(folder.glob("*.png")))
        out += [(folder.parent.name, folder.name, k) for k in range(1, count + 1)]
    return out


def grey(root: Path, subject: str, sequence: str, frame: int) -> np.ndarray:
    img = cv2.imread(str(ckformat.image_path(root, subject, sequence, frame)), cv2.IMREAD_GRAYSCALE)
    return img.astype(np.float32)


def landmarks(root: Path, subject: str, sequence: str, frame: int) -> np.ndarray:
    return ckformat.read_landmarks(ckformat.landmarks_path(root, subject, sequence, frame))


def demographics(root: Path) -> list[tuple[str, ...]]:
    with (root / ckformat.SUBJECTS_FILE).open(newline="") as fh:
        return [(r["subject"], r["age"], r["sex"], r["ethnicity"]) for r in csv.DictReader(fh)]


def test_difficulty_reaches_the_images_and_is_written_into_the_set(sets: dict[str, Path]) -> None:
    easy, realistic = sets["easy"], sets["realistic"]
    assert frames(easy) == frames(realistic)  # same layout for the same seed...
    assert demographics(easy) == demographics(realistic)  # ...and the same people
    changes = [np.abs(grey(easy, *f) - grey(realistic, *f)).mean() for f in frames(easy)]
    assert min(changes) > 3, min(changes)  # ...drawn differently in every frame
    for difficulty, root in sets.items():
        assert json.loads((root / MARKER_FILE).read_text())["difficulty"] == difficulty
        with (root / ckformat.SUBJECTS_FILE).open(newline="") as fh:
            assert {r["synth_difficulty"] for r in csv.DictReader(fh)} == {difficulty}
        readme = (root / "README.md").read_text()
        assert f"difficulty: {difficulty}" in readme and "Not real faces" in readme


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_same_seed_same_bytes_for_each_difficulty(difficulty: str, sets: dict[str, Path], tmp_path: Path) -> None:
    again = tmp_path / difficulty
    params = SynthParams.preset(difficulty, **QUICK)
    generate_synthetic_ckplus(again, subjects=SUBJECTS, seed=0, workers=2, progress=False, params=params)
    assert tree_digest(again) == tree_digest(sets[difficulty])


def _pupils(img: np.ndarray) -> np.ndarray:
    """Centres (x, y) of the dark blobs of an image whose only dark parts are irises and pupils."""
    labels, count = ndimage.label(img < 40)
    centres = ndimage.center_of_mass(np.ones_like(img), labels, range(1, count + 1))
    return np.array(centres)[:, ::-1]


@pytest.mark.parametrize(("roll", "yaw", "pitch"), [(12, 0, 0), (0, 10, 0), (0, 0, 8), (-10, -10, 6)])
def test_eye_landmarks_stay_on_the_drawn_eyes_under_pose(roll: float, yaw: float, pitch: float) -> None:
    subject, _ = sample_subject(0, 0, "S005", SynthParams())
    bright = dict.fromkeys(("skin", "lips", "brow", "hair", "sclera", "teeth", "clothes", "glasses"), (200.0,))
    palette = dataclasses.replace(subject.palette, **bright, iris=(0.0,), mouth=(0.0,), channels=1)
    face = dataclasses.replace(subject.face, glasses=None, facial_hair=None)
    subject = dataclasses.replace(subject, palette=palette, face=face)
    c, s = 130 * np.cos(np.deg2rad(roll)), 130 * np.sin(np.deg2rad(roll))
    affine = np.array([[c, -s, 320.0], [s, c, 200.0]])
    view = View(affine, yaw=np.deg2rad(yaw), pitch=np.deg2rad(pitch))
    lm = neutral_landmarks(subject.face)
    img = np.full((490, 640), 255, np.uint8)
    draw_face(img, view, subject, lm, {}, 1)
    pupils, points = _pupils(img), view.to_pixels(lm)
    for eye in (points[36:42].mean(axis=0), points[42:48].mean(axis=0)):
        assert np.linalg.norm(pupils - eye, axis=1).min() < 1.5, (eye, pupils)


def _turn(points: np.ndarray) -> float:
    """Nose tip left or right of the face outline's middle, in face widths, roll undone."""
    dx, dy = points[42:48].mean(axis=0) - points[36:42].mean(axis=0)
    c, s = np.cos(np.arctan2(dy, dx)), np.sin(np.arctan2(dy, dx))
    level = points @ np.array([[c, -s], [s, c]])
    return float((level[30, 0] - (level[0, 0] + level[16, 0]) / 2) / (level[16, 0] - level[0, 0]))


def test_realistic_heads_turn_from_sequence_to_sequence(sets: dict[str, Path]) -> None:
    spread = {
        d: np.std([_turn(landmarks(root, s, q, k)) for s, q, k in frames(root) if k == 1]) for d, root in sets.items()
    }
    assert spread["realistic"] > 0.015 and spread["realistic"] > 2 * spread["easy"], spread


def _face(root: Path, subject: str, sequence: str, frame: int) -> np.ndarray:
    """The inner face (brows to mouth) of the 48 px landmark crop, standardised like a model input."""
    img = grey(root, subject, sequence, frame)
    top, left, side = landmark_box(landmarks(root, subject, sequence, frame), 0.15)
    padded = cv2.copyMakeBorder(img, side, side, side, side, cv2.BORDER_CONSTANT, value=0)
    crop = cv2.resize(padded[top + side : top + 2 * side, left + side : left + 2 * side], (48, 48))[10:38, 8:40]
    return (crop - crop.mean()) / (crop.std() + 1e-6)


def identity_to_expression(root: Path) -> float:
    """Pixel variance between people (neutral faces) over pixel variance within a sequence (neutral to peak)."""
    neutral: dict[str, np.ndarray] = {}
    expression = []
    for subject, sequence, frame in frames(root):
        if frame == 2:
            first, peak = _face(root, subject, sequence, 1), _face(root, subject, sequence, 2)
            neutral.setdefault(subject, first)
            expression.append(np.mean((peak - first) ** 2) / 2)  # variance of the pair
    between = np.stack(list(neutral.values())).var(axis=0, ddof=1).mean()
    return float(between / np.mean(expression))


def test_identity_varies_more_than_expression_on_realistic_faces(sets: dict[str, Path]) -> None:
    ratios = {d: identity_to_expression(root) for d, root in sets.items()}
    assert ratios["realistic"] > 3 and ratios["realistic"] > ratios["easy"], ratios


def test_label_noise_and_intensities_follow_the_settings() -> None:
    for difficulty in DIFFICULTIES:
        params = SynthParams.preset(difficulty)
        rng = np.random.default_rng(0)
        draws = [sample_expression(rng, params) for _ in range(5000)]
        wrong_emotion = np.mean([d.label != d.emotion for d in draws])
        drawn = [{au for au, _ in d.levels} for d in draws]
        coded = [{au for au, _ in d.coded} for d in draws]
        miscoded = sum(len(a - c) for a, c in zip(drawn, coded, strict=True)) / sum(len(a) for a in drawn)
        assert wrong_emotion == pytest.approx(params.emotion_label_noise, abs=0.008)
        assert miscoded == pytest.approx(params.au_label_noise, abs=0.008)
        assert any(c - a for a, c in zip(drawn, coded, strict=True)) == (params.au_label_noise > 0)
        written = Counter(CK_TO_CLASS[CK_EMOTION_CODES[d.label]] for d in draws)
        assert written["negative"] / 5000 == pytest.approx(0.54, abs=0.03)  # CK+'s balance survives the noise
        slight = np.mean([level <= 2 for d in draws for _, level in d.levels])
        assert slight == pytest.approx(sum(params.intensity_weights[:2]), abs=0.03)
    assert sum(PRESETS["realistic"].intensity_weights[:2]) > 0.4 > sum(PRESETS["easy"].intensity_weights[:2])


def test_presets_and_the_difficulty_label() -> None:
    assert SynthParams() == PRESETS[DEFAULT_DIFFICULTY] and DEFAULT_DIFFICULTY == "realistic"
    assert SynthParams.preset("easy", frames_per_sequence=(2, 2)).difficulty == "easy"  # layout only
    assert SynthParams.preset("easy", noise_sigma=3.0).difficulty == "custom"
    with pytest.raises(ConfigError, match="difficulty must be one of easy, realistic"):
        SynthParams.preset("bogus")
    with pytest.raises(ConfigError, match="not both"):
        generate_synthetic_ckplus("unused", difficulty="easy", params=SynthParams(), progress=False)


def test_default_dataset_is_keyed_on_version_and_difficulty(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    made: list[tuple[str, str]] = []

    def fake_generate(out: Path, *, subjects: int, seed: int, params: SynthParams, progress: bool) -> None:
        made.append((Path(out).name, params.difficulty))
        Path(out).mkdir(parents=True)
        (Path(out) / MARKER_FILE).write_text("{}")

    monkeypatch.setenv("CKRUN_CACHE", str(tmp_path))
    monkeypatch.setattr(synth, "generate_synthetic_ckplus", fake_generate)
    realistic = default_dataset(subjects=3, progress=False)
    easy = default_dataset(subjects=3, difficulty="easy", progress=False)
    assert realistic.name == f"synth-v{SYNTH_VERSION}-realistic-seed0-n3"
    assert easy.name == f"synth-v{SYNTH_VERSION}-easy-seed0-n3"
    assert default_dataset(subjects=3, progress=False) == realistic and len(made) == 2  # cached
    assert [d for _, d in made] == ["realistic", "easy"]
    assert "-realistic-" in resolve_data(None, progress=False).name  # what every command falls back to
    monkeypatch.setattr(synth, "SYNTH_VERSION", SYNTH_VERSION + 1)
    assert default_dataset(subjects=3, progress=False).name.startswith(f"synth-v{SYNTH_VERSION + 1}-realistic-")
    with pytest.raises(ConfigError, match="bogus"):
        default_dataset(difficulty="bogus", progress=False)
    assert not list(tmp_path.glob("*bogus*"))


def test_cli_difficulty_choices_are_the_presets() -> None:
    option = next(p for p in data_synth.params if p.name == "difficulty")
    assert tuple(option.type.choices) == DIFFICULTIES and option.default == DEFAULT_DIFFICULTY  # type: ignore[attr-defined]


def test_cli_refuses_a_bogus_difficulty(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["data", "synth", str(tmp_path / "set"), "--difficulty", "bogus"])
    assert result.exit_code == 2 and "--difficulty" in result.output
    assert not (tmp_path / "set").exists()


def test_cli_writes_the_chosen_difficulty(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["data", "synth", str(tmp_path / "set"), "--subjects", "1", "--difficulty", "easy"]
    )
    assert result.exit_code == 0, result.output
    assert "(easy)" in result.output
    assert json.loads((tmp_path / "set" / MARKER_FILE).read_text())["difficulty"] == "easy"


def test_mlproject_synth_entry_passes_the_difficulty() -> None:
    from test_mlproject import command_args, parse

    assert parse(command_args("synth")).params["difficulty"] == DEFAULT_DIFFICULTY
    assert parse(command_args("synth", {"difficulty": "easy"})).params["difficulty"] == "easy"
