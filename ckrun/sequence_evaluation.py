"""`ckrun evaluate --sequences`: score every frame of a split's CK+ sequences and log the curves.

Artifacts (docs/architecture.md): ``sequences/frames_<split>.csv`` (every scored frame),
``sequences/onsets_<split>.csv`` (one row per sequence), ``sequences/curves_<split>.csv``
(mean curves on the normalised-position grid) and ``plots/sequence_curves_<split>.png``;
metrics ``<split>_sequence_onset``, ``<split>_sequence_correct_at_apex``, ``<split>_sequences``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ckrun import tracking
from ckrun.data.sequences import sequence_frames
from ckrun.errors import DataError
from ckrun.sequence_analysis import SequenceAnalysis, analyse_sequences


def evaluate_sequences(predictor: Any, part: pd.DataFrame, split: str) -> SequenceAnalysis:
    """Every frame from neutral to apex of the sequences in `part`, scored by `predictor`.

    `predictor` is a `ckrun.predict.Predictor` or anything with its ``prep``, ``faces_of`` and
    ``probabilities`` (the tests pass one whose answers are known). A model trained with
    ``reference=neutral`` reads each frame beside its sequence's first frame (`faces_of`).
    """
    frames = sequence_frames(part)
    if frames.empty:
        raise DataError(f"the {split} split holds no CK+ sequences to score")
    images = predictor.faces_of(frames)
    probs = predictor.probabilities(images)
    return analyse_sequences(frames, probs, list(predictor.prep.classes), list(predictor.prep.aus), split)


def log_sequence_analysis(analysis: SequenceAnalysis, split: str, tmp: str | Path) -> None:
    """The per-frame, per-sequence and curve tables, and the figure, into the active run."""
    from ckrun.figures.curves import plot_sequence_curves

    tracking.log_table(analysis.frames, f"sequences/frames_{split}.csv")
    tracking.log_table(analysis.onsets, f"sequences/onsets_{split}.csv")
    tracking.log_table(analysis.curves, f"sequences/curves_{split}.csv")
    onset = analysis.metrics.get(f"{split}_sequence_onset")
    title = f"{int(analysis.metrics.get(f'{split}_sequences', 0))} {split} sequences" + (
        f", correct from position {onset:.2f} on average" if onset is not None else ""
    )
    png = plot_sequence_curves(analysis.curves, Path(tmp) / f"sequence_curves_{split}.png", title=title)
    tracking.log_figure_file(png, "plots")
