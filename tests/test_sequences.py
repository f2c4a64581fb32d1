"""Scoring whole CK+ sequences: frame order, normalised position, curves and the onset.

The predictor here is constructed so its answers are known: it reads each frame's position
in its sequence from the file system and answers the sequence's true emotion from position
0.5 on (another class before), with AU probabilities equal to the position. The onset of
each sequence is then the first frame at or past the middle, and AU curves are the grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ckrun.data.labels import EMOTION_CLASSES
from ckrun.data.pipeline import Preprocessing


@pytest.fixture(scope="module")
def ck_part(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    from ckrun.data.importers import import_dataset
    from ckrun.data.synth import SynthParams, generate_synthetic_ckplus

    root = tmp_path_factory.mktemp("seq_ck") / "CK+"
    params = SynthParams(sequences_per_subject=(2, 3), frames_per_sequence=(4, 9))
    generate_synthetic_ckplus(root, subjects=3, seed=11, workers=1, progress=False, params=params)
    return import_dataset(root).manifest


def _frames_of(path: str) -> list[str]:
    return sorted(p.name for p in Path(path).parent.glob("*.png"))


class KnownPredictor:
    """Right from the middle of each sequence on; AU probability = position."""

    def __init__(self, truth: dict[tuple[str, str], str], aus: tuple[str, ...]) -> None:
        self.truth = truth
        self.prep = Preprocessing(32, 1, "none", 0.0, aus=aus)
        self.paths: list[str] = []

    def faces_of(self, rows: pd.DataFrame) -> np.ndarray:
        self.paths = rows["path"].astype(str).tolist()
        return np.arange(len(self.paths))

    def probabilities(self, images: np.ndarray) -> dict[str, np.ndarray]:
        emotion, aus = [], []
        for i in images:
            path = Path(self.paths[int(i)])
            names = _frames_of(str(path))
            position = names.index(path.name) / (len(names) - 1)
            true = self.truth.get((path.parent.parent.name, path.parent.name))
            k = EMOTION_CLASSES.index(true) if true else 0
            row = np.full(len(EMOTION_CLASSES), 0.05)
            row[k if position >= 0.5 else (k + 1) % len(EMOTION_CLASSES)] = 0.9
            emotion.append(row)
            aus.append([position] * len(self.prep.aus))
        return {"emotion": np.asarray(emotion), "aus": np.asarray(aus)}


def test_sequence_frames_are_every_frame_in_order_from_neutral_to_apex(ck_part: pd.DataFrame) -> None:
    from ckrun.data.sequences import sequence_frames

    frames = sequence_frames(ck_part)
    sequences = ck_part.groupby(["subject", "sequence"]).size()
    assert frames.groupby(["subject", "sequence"]).ngroups == len(sequences)
    for (subject, sequence), rows in frames.groupby(["subject", "sequence"]):
        names = _frames_of(rows["path"].iloc[0])
        assert [Path(p).name for p in rows["path"]] == names  # every frame, ordered
        assert rows["position"].iloc[0] == 0.0 and rows["position"].iloc[-1] == 1.0
        assert np.all(np.diff(rows["position"]) > 0)
        peak = ck_part.loc[(ck_part["subject"] == subject) & (ck_part["sequence"] == sequence)]
        assert rows["frame"].max() == peak["frame"].max()
        assert rows["emotion"].nunique(dropna=False) == 1
        assert rows["landmarks"].notna().all()


def test_onset_and_curves_of_a_predictor_whose_answers_are_known(ck_part: pd.DataFrame) -> None:
    from ckrun.sequence_analysis import GRID
    from ckrun.sequence_evaluation import evaluate_sequences

    truth = {
        (str(s), str(q)): str(e) for s, q, e in ck_part[["subject", "sequence", "emotion"]].dropna().itertuples(False)
    }
    au = next(c for c in ck_part.columns if c.startswith("AU") and (ck_part[c] > 0).any())
    analysis = evaluate_sequences(KnownPredictor(truth, (au,)), ck_part, "test")
    expected = []
    for key in sorted(truth):
        names = _frames_of(ck_part.loc[ck_part["subject"] == key[0]].query("sequence == @key[1]")["path"].iloc[0])
        n = len(names)
        expected.append(min(i / (n - 1) for i in range(n) if i / (n - 1) >= 0.5))
    onsets = analysis.onsets.sort_values(["subject", "sequence"])
    assert onsets["onset"].to_numpy() == pytest.approx(expected)
    assert analysis.metrics["test_sequence_onset"] == pytest.approx(np.mean(expected))
    assert analysis.metrics["test_sequence_correct_at_apex"] == 1.0
    assert analysis.metrics["test_sequences"] == len(truth)
    assert analysis.curves[f"{au}_prob"].to_numpy() == pytest.approx(GRID)
    assert analysis.curves["p_true"].iloc[0] == pytest.approx(0.05) and analysis.curves["p_true"].iloc[-1] == 0.9


def test_onset_is_where_the_answer_becomes_and_stays_right() -> None:
    from ckrun.sequence_analysis import onset

    positions = [0.0, 0.25, 0.5, 0.75, 1.0]
    assert onset(positions, [False, True, False, True, True]) == 0.75
    assert onset(positions, [True] * 5) == 0.0
    assert np.isnan(onset(positions, [True, True, True, True, False]))
    assert onset(positions[::-1], [True, True, False, True, False]) == 0.75  # order by position, not by row
