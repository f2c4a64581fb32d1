"""One model's scores broken down: per emotion class, per action unit, per demographic group,
and the views of its per-image predictions: precision-recall and threshold-F1 curves per AU,
reliability diagrams, and the EMFACS agreement of the two heads.

Each emotion class wears its `CLASS_COLOURS` colour; AUs are shown by name, not code.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ckrun.data.labels import au_label
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


# %% Per-AU curves and calibration (from a run's per-image predictions)


def _title(what: str, split: str, run: str) -> str:
    return f"{what} on {split}" + (f": {run}" if run else "")


class _Panels:
    """Unit-square panels drawn on one Axes, each at its own offset (small multiples).

    One Axes with a few collections and texts instead of twenty Axes with their tick
    machinery: drawing twenty AUs' curves costs a tenth of a second rather than two.
    Panel data lives in [0, 1] x [0, 1]; `at(i)` gives the offset of panel i.
    """

    PITCH_X, PITCH_Y = 1.22, 1.42

    def __init__(self, n: int, xlabel: str, ylabel: str, columns: int = 5, size: float = 2.1) -> None:
        from matplotlib.collections import LineCollection

        self.cols = max(1, min(columns, n))
        self.rows = max(1, int(np.ceil(n / self.cols)))
        self.fig = new_figure(size * self.cols + 0.5, size * self.rows * self.PITCH_Y / self.PITCH_X + 0.6)
        ax = self.ax = self.fig.add_axes((0.06, 0.02, 0.93, 0.92))
        ax.set_axis_off()
        frames, grid = [], []
        for i in range(n):
            x0, y0 = self.at(i)
            frames += [[(x0, y0), (x0 + 1, y0)], [(x0 + 1, y0), (x0 + 1, y0 + 1)],
                       [(x0 + 1, y0 + 1), (x0, y0 + 1)], [(x0, y0 + 1), (x0, y0)]]  # fmt: skip
            grid += [[(x0 + 0.5, y0), (x0 + 0.5, y0 + 1)], [(x0, y0 + 0.5), (x0 + 1, y0 + 0.5)]]
            col = i % self.cols
            if i + self.cols >= n:  # lowest panel of its column: x tick labels
                for t in (0, 0.5, 1):
                    ax.text(x0 + t, y0 - 0.04, f"{t:g}", ha="center", va="top", fontsize=6)
                ax.text(x0 + 0.5, y0 - 0.16, xlabel, ha="center", va="top", fontsize=7)
            if col == 0:
                for t in (0, 0.5, 1):
                    ax.text(x0 - 0.04, y0 + t, f"{t:g}", ha="right", va="center", fontsize=6)
                ax.text(x0 - 0.17, y0 + 0.5, ylabel, ha="right", va="center", rotation=90, fontsize=7)
        ax.add_collection(LineCollection(grid, colors="#dddddd", linewidths=0.5))
        ax.add_collection(LineCollection(frames, colors="black", linewidths=0.6))
        ax.set_xlim(-0.3, (self.cols - 1) * self.PITCH_X + 1.05)
        ax.set_ylim(-(self.rows - 1) * self.PITCH_Y - 0.3, 1.3)

    def at(self, i: int) -> tuple[float, float]:
        row, col = divmod(i, self.cols)
        return col * self.PITCH_X, -row * self.PITCH_Y

    def title(self, i: int, text: str) -> None:
        x0, y0 = self.at(i)
        self.ax.text(x0 + 0.5, y0 + 1.04, text, ha="center", va="bottom", fontsize=7)

    def line(self, i: int, x: Any, y: Any, **style: Any) -> None:
        x0, y0 = self.at(i)
        self.ax.plot(x0 + np.clip(np.asarray(x, float), 0, 1), y0 + np.clip(np.asarray(y, float), 0, 1), **style)

    def save(self, path: Path, title: str) -> Path:
        self.fig.suptitle(title, fontsize=9, y=0.985)
        self.fig.savefig(path, dpi=self.fig.dpi)  # fixed layout: no tight_layout pass needed
        return path


def plot_pr_curves(curves: Mapping[str, Mapping[str, Any]], path: Path, *, split: str, run: str = "") -> Path:
    """Precision against recall per AU, average precision in the title, base rate dashed.

    The dashed line is what a detector without skill scores (precision = the share of
    positives), so a rare AU's curve reads against its own floor.
    """
    panels = _Panels(len(curves), "recall", "precision")
    for i, (au, curve) in enumerate(curves.items()):
        if curve.get("recall"):
            panels.line(i, curve["recall"], curve["precision"], color="#0072B2", drawstyle="steps-post", linewidth=1)
        base = curve.get("base_rate")
        if base is not None and np.isfinite(base):
            panels.line(i, [0, 1], [base, base], color=OTHER_COLOUR, linestyle="--", linewidth=0.8)
        ap = curve.get("average_precision")
        panels.title(i, f"{au_label(au)}\nAP {ap:.2f}" if ap is not None and np.isfinite(ap) else au_label(au))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return panels.save(path, _title("Precision-recall per action unit", split, run) + " (dashed: base rate)")


def plot_threshold_f1(curves: Mapping[str, Mapping[str, Any]], path: Path, *, split: str, run: str = "") -> Path:
    """F1 against the decision threshold per AU; the tuned threshold dotted, 0.5 in grey."""
    panels = _Panels(len(curves), "threshold", "F1")
    for i, (au, curve) in enumerate(curves.items()):
        f1 = np.array([np.nan if v is None else v for v in curve.get("f1", [])], float)
        panels.line(i, [0.5, 0.5], [0, 1], color=OTHER_COLOUR, linewidth=0.8)
        panels.line(i, [curve["threshold"]] * 2, [0, 1], color="#D55E00", linestyle=":")
        panels.line(i, curve.get("f1_grid", []), f1, color="#009E73", linewidth=1)
        panels.title(i, au_label(au))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    title = _title("F1 against the threshold per action unit", split, run) + " (dotted: tuned on val, grey: 0.5)"
    return panels.save(path, title)


def plot_reliability(
    panels: Mapping[str, tuple[pd.DataFrame, float]], path: Path, *, split: str, run: str = ""
) -> Path:
    """Reliability diagrams: per panel (title -> (bins, ECE)) observed frequency against confidence.

    Bars sit at each bin's mean confidence; a bar below the diagonal means overconfidence.
    Bin counts are printed so an empty-looking gap is read as few predictions, not as error.
    """
    fig = new_figure(3.6 * len(panels), 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, (bins, ece)) in zip(axes, panels.items(), strict=True):
        filled = bins.loc[bins["count"] > 0]
        width = (bins["bin_high"] - bins["bin_low"]).iloc[0] if len(bins) else 0.1
        ax.bar(filled["bin_low"], filled["frequency"], width=width, align="edge", color="#56B4E9", edgecolor="black")
        ax.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=0.8)
        for row in filled.itertuples(index=False):
            ax.text(row.bin_low + width / 2, 0.02, str(int(row.count)), ha="center", fontsize=6, rotation=90)
        ax.set_title(f"{title}\nECE {ece:.3f}" if np.isfinite(ece) else title, fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("confidence")
        ax.set_ylabel("observed frequency")
        ax.grid(alpha=0.3)
    fig.suptitle(_title("Calibration", split, run), fontsize=9)
    return save(fig, path)


def plot_emfacs(by_class: pd.DataFrame, path: Path, *, split: str, run: str = "") -> Path:
    """Share of images whose AUs support their emotion (EMFACS), labels against predictions, per class."""
    from matplotlib.patches import Patch

    fig = new_figure(6.0, 3.4)
    ax = fig.subplots()
    x = np.arange(len(by_class))
    colours = [CLASS_COLOURS.get(c, OTHER_COLOUR) for c in by_class["class"]]
    series = (
        ("consistency_truth", "images_truth", "labels", ""),
        ("consistency_predicted", "images_predicted", "predictions", "//"),
    )
    for offset, (column, count, _, hatch) in zip((-0.2, 0.2), series, strict=True):
        raw = by_class[column].astype(float).to_numpy()
        bars = ax.bar(x + offset, np.nan_to_num(raw), 0.4, color=colours, hatch=hatch, edgecolor="black")
        texts = [
            f"n={int(n)}" if np.isnan(v) else f"{v:.2f}\n(n={int(n)})"
            for v, n in zip(raw, by_class[count], strict=True)
        ]
        ax.bar_label(bars, labels=texts, fontsize=6, padding=2)
    ax.set_xticks(x, list(by_class["class"]))
    ax.set_ylim(0, 1.4)
    ax.set_ylabel("AU set supports the emotion")
    ax.set_title(_title("EMFACS consistency", split, run), fontsize=9)
    handles = [Patch(facecolor="white", edgecolor="black", hatch=hatch, label=label) for _, _, label, hatch in series]
    ax.legend(handles=handles, fontsize=7, loc="upper center", ncol=2, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)
