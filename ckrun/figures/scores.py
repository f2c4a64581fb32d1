"""One model's scores broken down: per emotion class, per action unit, per demographic group.

Each emotion class wears its `CLASS_COLOURS` colour; AUs are shown by name, not code.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ckrun.figures.style import CLASS_COLOURS, OTHER_COLOUR, new_figure, save


def plot_per_au(per_au: pd.DataFrame, path: Path, *, split: str, run: str) -> Path:
    """F1 per AU (bars, worst at the top) with precision and recall as markers."""
    rows = per_au.sort_values("f1", ascending=True, na_position="first")
    fig = new_figure(7.5, max(2.6, 0.32 * len(rows) + 1.4))
    ax = fig.subplots()
    y = np.arange(len(rows))
    ax.barh(y, rows["f1"].fillna(0), color="#0072B2", alpha=0.8, label="F1")
    ax.scatter(rows["precision"], y, marker="|", s=120, color="#D55E00", label="precision", zorder=3)
    ax.scatter(rows["recall"], y, marker="x", s=30, color="#000000", label="recall", zorder=3)
    ax.set_yticks(y, [f"{n} (n={int(s)})" for n, s in zip(rows["name"], rows["support"], strict=True)], fontsize=7)
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("score")
    ax.set_ylabel("action unit (positives in split)")
    ax.set_title(f"Action units on {split}: {run}")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return save(fig, path)


def plot_per_class(per_class: pd.DataFrame, path: Path, *, split: str, run: str) -> Path:
    """Precision, recall and F1 per emotion class, each class in its own colour."""
    metrics = ("precision", "recall", "f1")
    metric_labels = ("precision", "recall", "F1")
    fig = new_figure(6.5, 3.6)
    ax = fig.subplots()
    width = 0.8 / max(len(per_class), 1)
    for i, row in enumerate(per_class.itertuples(index=False)):
        values = [getattr(row, m) for m in metrics]
        xs = np.arange(len(metrics)) + (i - (len(per_class) - 1) / 2) * width
        bars = ax.bar(xs, values, width, color=CLASS_COLOURS.get(row[0], OTHER_COLOUR), edgecolor="black")
        bars.set_label(f"{row[0]} (n={int(row.support)})")
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    ax.set_xticks(range(len(metrics)), metric_labels)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("score")
    ax.set_title(f"Emotion classes on {split}: {run}")
    ax.legend(fontsize=8, title="emotion class", title_fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def plot_groups(tables: Mapping[str, pd.DataFrame], path: Path, *, run: str) -> Path:
    """Emotion accuracy and AU macro-F1 per demographic group, one panel per attribute."""
    fig = new_figure(4.2 * len(tables), 3.8)
    axes = fig.subplots(1, len(tables), squeeze=False)[0]
    for ax, (attribute, table) in zip(axes, tables.items(), strict=True):
        x = np.arange(len(table))
        for offset, (key, label, colour) in zip(
            (-0.2, 0.2),
            (("emotion_accuracy", "emotion accuracy", "#0072B2"), ("au_f1", "AU macro-F1", "#E69F00")),
            strict=True,
        ):
            values = table[key].astype(float).fillna(0).to_numpy() if key in table else np.zeros(len(table))
            bars = ax.bar(x + offset, values, 0.4, color=colour, label=label)
            ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
        ticks = [f"{g}\n({int(n)} subj.)" for g, n in zip(table["group"], table["subjects"], strict=True)]
        ax.set_xticks(x, ticks, fontsize=8)
        ax.set_ylim(0, 1.15)
        ax.set_ylabel("score on test")
        ax.set_title(f"by {attribute}")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Per-group test scores: {run}")
    return save(fig, path)
