"""Figures of a run: confusion matrices and learning curves (matplotlib, Agg backend).

Readable first: class names on the axes, counts and row percentages in the cells, the
restored best epoch marked on the curves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(cm: np.ndarray, classes: Sequence[str], path: Path, title: str) -> Path:
    """Row-normalised colours with counts and percentages written in every cell."""
    plt = _pyplot()
    cm = np.asarray(cm, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, ax = plt.subplots(figsize=(4.8, 4.2), dpi=150)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            colour = "white" if norm[i, j] > 0.55 else "black"
            ax.text(j, i, f"{int(cm[i, j])}\n{norm[i, j]:.0%}", ha="center", va="center", color=colour, fontsize=10)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted emotion")
    ax.set_ylabel("true emotion")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


_PANELS = (
    ("loss", ("train_loss", "val_loss"), "loss"),
    ("emotion", ("train_emotion_accuracy", "val_emotion_accuracy", "val_emotion_f1"), "score"),
    ("action units", ("train_au_f1", "val_au_f1"), "macro F1"),
    ("learning rate", ("learning_rate",), "learning rate"),
)


def plot_learning_curves(
    history: Mapping[str, Sequence[float]], path: Path, *, best_epoch: int | None = None, title: str = ""
) -> Path:
    """Loss, emotion scores, AU F1 and learning rate per epoch (1-based), best epoch marked."""
    plt = _pyplot()
    panels = [(t, [k for k in keys if history.get(k)], y) for t, keys, y in _PANELS]
    panels = [p for p in panels if p[1]]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), dpi=150, squeeze=False)
    for ax, (panel_title, keys, ylabel) in zip(axes[0], panels, strict=True):
        for key in keys:
            values = list(history[key])
            style = "--" if key.startswith("train_") else "-"
            ax.plot(range(1, len(values) + 1), values, style, marker=".", label=key.replace("_", " "))
        if best_epoch:
            ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch})")
        ax.set_title(panel_title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if panel_title == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
