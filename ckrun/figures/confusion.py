"""The emotion confusion matrix: one drawing for the training run's artifacts and the report.

A run logs ``confusion_matrix/emotion_<split>.png`` with it, and the report redraws the best
run's matrix from the logged counts; both call `plot_confusion`, so the two always look alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ckrun.figures.style import CLASS_COLOURS, new_figure, save


def plot_confusion(counts: np.ndarray, classes: Sequence[str], path: Path, title: str) -> Path:
    """Row-normalised confusion matrix, counts and shares in the cells, class names in class colours.

    Colours are shares of the true class, so a small class reads as clearly as a large one;
    the counts stay in the cells because a share alone hides how few images it rests on.
    """
    counts = np.asarray(counts, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    fig = new_figure(5.4, 4.6)
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), value in np.ndenumerate(counts):
        colour = "white" if share[i, j] > 0.55 else "black"
        ax.text(j, i, f"{int(value)}\n{share[i, j]:.0%}", ha="center", va="center", color=colour, fontsize=10)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    for label in [*ax.get_xticklabels(), *ax.get_yticklabels()]:
        label.set_color(CLASS_COLOURS.get(label.get_text(), "black"))
        label.set_fontweight("bold")
    ax.set_xlabel("predicted emotion")
    ax.set_ylabel("true emotion")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    return save(fig, path)
