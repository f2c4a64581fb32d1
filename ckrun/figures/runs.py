"""Figures that compare runs: the objective per run, hyperparameter effects, Optuna importances.

Every run is coloured by its fit diagnosis (`VERDICT_COLOURS`) and marked by its kind
(`KIND_MARKERS`), the same in every figure, so a reader learns them once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ckrun.figures.style import KIND_MARKERS, OTHER_COLOUR, VERDICT_COLOURS, new_figure, save

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _verdict_legend(ax: Axes, verdicts: Sequence[str]) -> None:
    from matplotlib.patches import Patch

    handles = [
        Patch(color=VERDICT_COLOURS.get(v, OTHER_COLOUR), label=v or "no verdict") for v in dict.fromkeys(verdicts)
    ]
    # Outside the axes, right of them: never on top of a bar or a point.
    ax.legend(
        handles=handles, fontsize=8, title="fit diagnosis", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1)
    )


def plot_run_comparison(table: pd.DataFrame, path: Path, *, objective_label: str) -> Path:
    """Validation objective per run (best at the top), bars coloured by fit diagnosis."""
    rows = table.loc[table["objective"].notna()].iloc[::-1]
    fig = new_figure(8.0, max(2.4, 0.34 * len(rows) + 1.4))
    ax = fig.subplots()
    colours = [VERDICT_COLOURS.get(v, OTHER_COLOUR) for v in rows["fit_diagnosis"]]
    bars = ax.barh(
        [f"{r} ({k})" for r, k in zip(rows["run"], rows["kind"], strict=True)], rows["objective"], color=colours
    )
    ax.bar_label(bars, fmt="%.3f", padding=3, fontsize=8)
    ax.set_xlim(0, max(1.0, float(rows["objective"].max()) * 1.15) if len(rows) else 1.0)
    ax.set_xlabel(objective_label)
    ax.set_title("Runs by validation objective")
    ax.grid(axis="x", alpha=0.3)
    _verdict_legend(ax, list(rows["fit_diagnosis"]))
    return save(fig, path)


def _list_label(value: object) -> str:
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
    fig = new_figure(4.0 * len(panels), 3.8)
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
                color=VERDICT_COLOURS.get(row["fit_diagnosis"], OTHER_COLOUR),
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
    return save(fig, path)


def plot_importances(importances: Mapping[str, float], path: Path, *, study: str) -> Path:
    """Optuna's parameter importances (fANOVA) as horizontal bars, most important on top."""
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig = new_figure(7.0, max(2.2, 0.4 * len(items) + 1.2))
    ax = fig.subplots()
    bars = ax.barh([k for k, _ in items], [v for _, v in items], color="#0072B2")
    ax.bar_label(bars, fmt="%.2f", padding=3, fontsize=8)
    ax.set_xlim(0, max(1.0, max((v for _, v in items), default=0) * 1.15))
    ax.set_xlabel("importance for the objective (share of variance)")
    ax.set_ylabel("hyperparameter")
    ax.set_title(f"Optuna hyperparameter importance: study '{study}'")
    ax.grid(axis="x", alpha=0.3)
    return save(fig, path)
