"""Curves over epochs: one run's learning curves, and several runs' curves on shared axes.

The training run logs `plot_learning_curves` as ``plots/learning_curves.png`` (the restored
best epoch marked, so over- and underfitting read at a glance); the report overlays the top
runs with `plot_overlaid_curves`, each run in its `RUN_COLOURS` colour in every panel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ckrun.figures.style import RUN_COLOURS, new_figure, save

# (panel title, history keys, y label); a panel with none of its keys logged is left out.
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
    panels = [(t, [k for k in keys if history.get(k)], y) for t, keys, y in _PANELS]
    panels = [p for p in panels if p[1]]
    fig = new_figure(4.2 * len(panels), 3.4)
    axes = fig.subplots(1, len(panels), squeeze=False)
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
    return save(fig, path, pad_inches=0.1)


_OVERLAY_PANELS = (
    ("val_loss", "validation loss", "loss"),
    ("val_emotion_f1", "validation emotion macro-F1", "macro-F1"),
    ("val_au_f1", "validation AU macro-F1", "macro-F1"),
)


def plot_overlaid_curves(histories: Mapping[str, pd.DataFrame], path: Path) -> Path:
    """Validation curves of the top runs on shared axes; training loss dashed in the same colour."""
    panels = [p for p in _OVERLAY_PANELS if any(p[0] in h.columns for h in histories.values())]
    fig = new_figure(4.4 * len(panels), 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, title, ylabel) in zip(axes, panels, strict=True):
        for i, (name, hist) in enumerate(histories.items()):
            colour = RUN_COLOURS[i % len(RUN_COLOURS)]
            if key in hist.columns:
                ax.plot(hist["epoch"], hist[key], "-", marker=".", color=colour, label=name)
            if key == "val_loss" and "train_loss" in hist.columns:
                ax.plot(hist["epoch"], hist["train_loss"], "--", color=colour, alpha=0.6, label=f"{name} (train)")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Top runs: learning curves overlaid (dashed: training loss)")
    return save(fig, path)


def plot_sequence_curves(curves: pd.DataFrame, path: Path, *, title: str = "") -> Path:
    """Mean probability of the true emotion (all and per class) and of each apex-coded AU, neutral -> apex."""
    from ckrun.figures.style import CLASS_COLOURS

    au_columns = [c for c in curves.columns if c.endswith("_prob") and curves[c].notna().any()]
    fig = new_figure(9.0 if au_columns else 4.6, 3.4)
    axes = fig.subplots(1, 2 if au_columns else 1, squeeze=False)[0]
    x = curves["position"]
    ax = axes[0]
    if "p_true" in curves:
        ax.plot(x, curves["p_true"], color="black", marker=".", label="all sequences")
    for cls, colour in CLASS_COLOURS.items():
        column = f"p_true_{cls}"
        if column in curves and curves[column].notna().any():
            ax.plot(x, curves[column], color=colour, linestyle="--", label=cls)
    ax.set_title("emotion: probability of the true class")
    ax.set_xlabel("position in sequence (0 = neutral, 1 = apex)")
    ax.set_ylabel("mean probability")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if au_columns:
        ax = axes[1]
        for i, column in enumerate(au_columns):
            ax.plot(x, curves[column], color=RUN_COLOURS[i % len(RUN_COLOURS)], label=column.removesuffix("_prob"))
        ax.set_title("AUs: probability where the apex is coded with the AU")
        ax.set_xlabel("position in sequence (0 = neutral, 1 = apex)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    if title:
        fig.suptitle(title)
    return save(fig, path, pad_inches=0.1)
