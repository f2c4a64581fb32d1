"""Report figures: run comparison, overlaid learning curves, hyperparameter effects, per-AU
and per-group scores.

Same look as the run's own figures (`ckrun.plots`) and the dataset figures
(`ckrun.data.explore`): titles and axis labels in words, AU names instead of codes, the
emotion classes in `CLASS_COLOURS`, and the fit verdicts in their own fixed colours so a
reader learns them once. Figures are built on pyplot-free `Figure` objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ckrun.data.explore import CLASS_COLOURS, DPI

VERDICT_COLOURS: dict[str, str] = {
    "overfitting": "#CC79A7",
    "underfitting": "#E69F00",
    "balanced": "#56B4E9",
    "": "#999999",
}
KIND_MARKERS: dict[str, str] = {"train": "o", "trial": "s", "cv": "^", "baseline": "D", "reference": "X"}
_RUN_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    """Tight layout, and a tight bounding box so no axis label is ever cut off at the edge."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.15)
    return path


def _verdict_legend(ax: Any, verdicts: Sequence[str]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=VERDICT_COLOURS.get(v, "#999999"), label=v or "no verdict") for v in dict.fromkeys(verdicts)]
    # Outside the axes, right of them: never on top of a bar or a point.
    ax.legend(
        handles=handles, fontsize=8, title="fit diagnosis", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1)
    )


def plot_run_comparison(table: pd.DataFrame, path: Path, *, objective_label: str) -> Path:
    """Validation objective per run (best at the top), bars coloured by fit diagnosis."""
    rows = table.loc[table["objective"].notna()].iloc[::-1]
    fig = _figure(8.0, max(2.4, 0.34 * len(rows) + 1.4))
    ax = fig.subplots()
    colours = [VERDICT_COLOURS.get(v, "#999999") for v in rows["fit_diagnosis"]]
    bars = ax.barh(
        [f"{r} ({k})" for r, k in zip(rows["run"], rows["kind"], strict=True)], rows["objective"], color=colours
    )
    ax.bar_label(bars, fmt="%.3f", padding=3, fontsize=8)
    ax.set_xlim(0, max(1.0, float(rows["objective"].max()) * 1.15) if len(rows) else 1.0)
    ax.set_xlabel(objective_label)
    ax.set_title("Runs by validation objective")
    ax.grid(axis="x", alpha=0.3)
    _verdict_legend(ax, list(rows["fit_diagnosis"]))
    return _save(fig, path)


_OVERLAY_PANELS = (
    ("val_loss", "validation loss", "loss"),
    ("val_emotion_f1", "validation emotion macro-F1", "macro-F1"),
    ("val_au_f1", "validation AU macro-F1", "macro-F1"),
)


def plot_overlaid_curves(histories: Mapping[str, pd.DataFrame], path: Path) -> Path:
    """Validation curves of the top runs on shared axes; training loss dashed in the same colour."""
    panels = [p for p in _OVERLAY_PANELS if any(p[0] in h.columns for h in histories.values())]
    fig = _figure(4.4 * len(panels), 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, title, ylabel) in zip(axes, panels, strict=True):
        for i, (name, hist) in enumerate(histories.items()):
            colour = _RUN_COLOURS[i % len(_RUN_COLOURS)]
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
    return _save(fig, path)


def _list_label(value: Any) -> str:
    return "[" + ", ".join(str(v) for v in value) + "]" if isinstance(value, tuple | list) else "not logged"


def plot_hyperparameter_effects(
    table: pd.DataFrame, path: Path, *, objective_label: str, best_run_id: str | None = None
) -> Path | None:
    """Objective against l2 (symmetric log axis, so l2=0 shows), epochs, filters and blocks."""
    runs = table.loc[table["objective"].notna() & table["kind"].isin(("train", "trial", "cv"))]
    if runs.empty:
        return None
    panels = [("l2", "L2 regularisation λ (log scale)"), ("epochs", "epochs"), ("filters", "filters per stage")]
    panels.append(("blocks", "residual blocks per stage"))
    fig = _figure(4.0 * len(panels), 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, xlabel) in zip(axes, panels, strict=True):
        if key in ("filters", "blocks"):
            labels = sorted({_list_label(v) for v in runs[key]}, key=lambda s: (s.count(","), s))
            x = [labels.index(_list_label(v)) for v in runs[key]]
            ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
            ax.set_xlim(-0.6, len(labels) - 0.4)
        else:
            x = runs[key].to_numpy(dtype=float)
            if key == "l2":
                positive = x[np.isfinite(x) & (x > 0)]
                ax.set_xscale("symlog", linthresh=float(positive.min()) if len(positive) else 1e-6)
        for xi, (_, row) in zip(x, runs.iterrows(), strict=True):
            is_best = row["run_id"] == best_run_id
            ax.scatter(
                xi,
                row["objective"],
                s=90 if is_best else 45,
                marker=KIND_MARKERS.get(row["kind"], "o"),
                color=VERDICT_COLOURS.get(row["fit_diagnosis"], "#999999"),
                edgecolor="black" if is_best else "white",
                linewidth=1.5 if is_best else 0.5,
                zorder=3,
            )
        ax.set_xlabel(xlabel)
        ax.set_title(f"objective vs {key}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(objective_label)
    _verdict_legend(axes[-1], list(runs["fit_diagnosis"]))
    fig.suptitle("Hyperparameter effects (black edge: best run; marker: ○ train, □ trial)")
    return _save(fig, path)


def plot_importances(importances: Mapping[str, float], path: Path, *, study: str) -> Path:
    """Optuna's parameter importances (fANOVA) as horizontal bars, most important on top."""
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig = _figure(7.0, max(2.2, 0.4 * len(items) + 1.2))
    ax = fig.subplots()
    bars = ax.barh([k for k, _ in items], [v for _, v in items], color="#0072B2")
    ax.bar_label(bars, fmt="%.2f", padding=3, fontsize=8)
    ax.set_xlim(0, max(1.0, max((v for _, v in items), default=0) * 1.15))
    ax.set_xlabel("importance for the objective (share of variance)")
    ax.set_ylabel("hyperparameter")
    ax.set_title(f"Optuna hyperparameter importance: study '{study}'")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_confusion(counts: np.ndarray, classes: Sequence[str], path: Path, *, title: str) -> Path:
    """Row-normalised confusion matrix, counts and shares in the cells, class names in class colours."""
    counts = np.asarray(counts, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    fig = _figure(5.4, 4.6)
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
    return _save(fig, path)


def plot_per_au(per_au: pd.DataFrame, path: Path, *, split: str, run: str) -> Path:
    """F1 per AU (bars, worst at the top) with precision and recall as markers."""
    rows = per_au.sort_values("f1", ascending=True, na_position="first")
    fig = _figure(7.5, max(2.6, 0.32 * len(rows) + 1.4))
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
    return _save(fig, path)


def plot_per_class(per_class: pd.DataFrame, path: Path, *, split: str, run: str) -> Path:
    """Precision, recall and F1 per emotion class, each class in its own colour."""
    metrics = ("precision", "recall", "f1")
    metric_labels = ("precision", "recall", "F1")
    fig = _figure(6.5, 3.6)
    ax = fig.subplots()
    width = 0.8 / max(len(per_class), 1)
    for i, row in enumerate(per_class.itertuples(index=False)):
        values = [getattr(row, m) for m in metrics]
        xs = np.arange(len(metrics)) + (i - (len(per_class) - 1) / 2) * width
        bars = ax.bar(xs, values, width, color=CLASS_COLOURS.get(row[0], "#999999"), edgecolor="black")
        bars.set_label(f"{row[0]} (n={int(row.support)})")
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    ax.set_xticks(range(len(metrics)), metric_labels)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("score")
    ax.set_title(f"Emotion classes on {split}: {run}")
    ax.legend(fontsize=8, title="emotion class", title_fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_groups(tables: Mapping[str, pd.DataFrame], path: Path, *, run: str) -> Path:
    """Emotion accuracy and AU macro-F1 per demographic group, one panel per attribute."""
    fig = _figure(4.2 * len(tables), 3.8)
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
    return _save(fig, path)
