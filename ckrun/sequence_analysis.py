"""A model along CK+ sequences: probabilities from neutral to apex, and when it gets it right.

Each sequence is put on a common axis, its normalised position (0 = first, neutral frame,
1 = apex), and interpolated onto a fixed grid before averaging, so sequences of 8 and 40
frames weigh the same. The emotion curve is the probability of the sequence's true class; an
AU curve is that AU's probability averaged over the sequences whose apex is coded with it
(it should rise from near 0 to near 1). The onset of a sequence is the earliest position from
which the predicted emotion is correct on every later frame; a sequence whose apex is wrong
has none, and is counted in ``{split}_sequence_correct_at_apex`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

GRID = np.round(np.linspace(0.0, 1.0, 11), 2)


@dataclass
class SequenceAnalysis:
    frames: pd.DataFrame  # one row per scored frame
    onsets: pd.DataFrame  # one row per sequence with an emotion label
    curves: pd.DataFrame  # one row per grid position
    metrics: dict[str, float]


def onset(positions: Sequence[float], correct: Sequence[bool]) -> float:
    """The earliest position from which every later frame is correct; NaN when the last one is wrong."""
    order = np.argsort(np.asarray(positions, float), kind="stable")
    pos, ok = np.asarray(positions, float)[order], np.asarray(correct, bool)[order]
    if len(ok) == 0 or not ok[-1]:
        return float("nan")
    wrong = np.flatnonzero(~ok)
    return float(pos[wrong[-1] + 1]) if len(wrong) else float(pos[0])


def _on_grid(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Each sequence's `column` interpolated onto GRID: (sequences, len(GRID))."""
    curves = [
        np.interp(GRID, rows["position"].to_numpy(float), rows[column].to_numpy(float))
        for _, rows in frame.groupby(["subject", "sequence"], sort=False)
    ]
    return np.asarray(curves).reshape(-1, len(GRID))


def analyse_sequences(
    frames: pd.DataFrame,
    probs: dict[str, np.ndarray],
    classes: Sequence[str],
    aus: Sequence[str],
    split: str = "test",
) -> SequenceAnalysis:
    """Per-frame table, per-sequence onsets, mean curves and the summary metrics of `split`."""
    emotion_probs = np.asarray(probs["emotion"], float)
    table = frames[["subject", "sequence", "frame", "position", "path"]].reset_index(drop=True).copy()
    truth = frames["emotion"].astype("string").reset_index(drop=True) if "emotion" in frames else None
    table["emotion_true"] = truth if truth is not None else pd.NA
    table["emotion"] = [classes[i] for i in emotion_probs.argmax(axis=1)] if len(table) else []
    index = {c: i for i, c in enumerate(classes)}
    true_index = table["emotion_true"].map(lambda c: index.get(c, -1) if isinstance(c, str) else -1).to_numpy(int)
    known = true_index >= 0
    table["p_true"] = np.where(known, emotion_probs[np.arange(len(table)), np.maximum(true_index, 0)], np.nan)
    table["correct"] = np.where(known, table["emotion"] == table["emotion_true"], np.nan)
    for j, au in enumerate(aus):
        table[f"{au}_prob"] = np.asarray(probs["aus"], float)[:, j]
        table[f"{au}_true"] = frames[au].to_numpy(float) if au in frames else np.nan

    labelled = table.loc[known]
    onsets = []
    for (subject, sequence), rows in labelled.groupby(["subject", "sequence"], sort=False):
        correct = rows["correct"].astype(bool).to_numpy()
        apex_ok = bool(correct[np.argmax(rows["position"].to_numpy())])
        onsets.append(
            dict(
                subject=subject,
                sequence=sequence,
                emotion_true=rows["emotion_true"].iloc[0],
                n_frames=len(rows),
                correct_at_apex=int(apex_ok),
                onset=onset(rows["position"], correct),
            )
        )
    onset_table = pd.DataFrame(
        onsets, columns=["subject", "sequence", "emotion_true", "n_frames", "correct_at_apex", "onset"]
    )

    curves = pd.DataFrame({"position": GRID})
    if len(labelled):
        curves["p_true"] = _on_grid(labelled, "p_true").mean(axis=0)
        for cls in classes:
            of_class = labelled.loc[labelled["emotion_true"] == cls]
            curves[f"p_true_{cls}"] = _on_grid(of_class, "p_true").mean(axis=0) if len(of_class) else np.nan
    for au in aus:
        positive = table.loc[table[f"{au}_true"] > 0]
        curves[f"{au}_prob"] = _on_grid(positive, f"{au}_prob").mean(axis=0) if len(positive) else np.nan

    metrics = {f"{split}_sequences": float(len(onset_table))}
    if len(onset_table):
        metrics[f"{split}_sequence_correct_at_apex"] = float(onset_table["correct_at_apex"].mean())
        reached = onset_table["onset"].dropna()
        if len(reached):
            metrics[f"{split}_sequence_onset"] = float(reached.mean())
    return SequenceAnalysis(table, onset_table, curves, metrics)
