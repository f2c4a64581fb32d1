"""The dataset figures of `ckrun data describe` (and the report's dataset card).

Class counts coloured by emotion class (CK+ fine emotions in their class's colour), AU
frequency with AU names rather than codes, the AU correlation and emotion-by-AU heatmaps,
image sizes and modes. Each function takes plain counts or tables, not a description, so
the report can reuse them on other tables. They are saved uncropped (``crop=False``), at the
canvas size each function sets, unlike the run and report figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ckrun.data.labels import CK_TO_CLASS, au_label
from ckrun.figures.style import CLASS_COLOURS, OTHER_COLOUR, new_figure, save

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Annotate heatmap cells only while the numbers stay legible.
_ANNOTATE_MAX_AUS = 12
_ANNOTATE_MAX_AUS_EMOTION = 40


def _class_colour(name: str) -> str:
    return CLASS_COLOURS.get(name, CLASS_COLOURS.get(CK_TO_CLASS.get(name, ""), OTHER_COLOUR))


def _bar_panel(ax: Axes, counts: Mapping[str, int], title: str, xlabel: str) -> None:
    names = list(counts)
    values = [counts[k] for k in names]
    bars = ax.bar(names, values, color=[_class_colour(k) for k in names], edgecolor="black")
    ax.bar_label(bars, padding=2, fontsize=8)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    ax.margins(y=0.12)
    ax.tick_params(axis="x", labelrotation=30 if len(names) > 4 else 0)


def plot_emotion_counts(counts: Mapping[str, int], path: Path, *, fine_counts: Mapping[str, int] | None = None) -> Path:
    """Images per class, plus CK+ fine emotions coloured by their class when given."""
    panels = 2 if fine_counts else 1
    fig = new_figure(5.0 * panels + (1.5 if fine_counts else 0), 4.0)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    _bar_panel(axes[0], counts, "Images per emotion class", "emotion class")
    if fine_counts:
        _bar_panel(axes[1], fine_counts, "Images per CK+ emotion", "CK+ emotion (colour = class)")
    return save(fig, path, crop=False)


def plot_au_frequency(positives: Mapping[str, int] | pd.Series, path: Path) -> Path:
    """Positive images per AU as horizontal bars, AU names readable on the y axis."""
    cols = list(positives.keys())
    values = [int(positives[c]) for c in cols]
    fig = new_figure(7.0, max(2.5, 0.28 * len(cols) + 1.2))
    ax = fig.subplots()
    bars = ax.barh([au_label(c) for c in cols], values, color="#4C72B0")
    ax.bar_label(bars, padding=2, fontsize=7)
    ax.invert_yaxis()
    ax.set_title("Images with each action unit present")
    ax.set_xlabel("positive images")
    ax.set_ylabel("action unit")
    ax.margins(x=0.12)
    return save(fig, path, crop=False)


def _heatmap(
    fig: Figure,
    ax: Axes,
    values: pd.DataFrame,
    *,
    cmap: str,
    vmin: float,
    vmax: float,
    annotate: bool,
    cbar_label: str,
) -> None:
    import matplotlib as mpl

    data = np.ma.masked_invalid(values.to_numpy(dtype=float))
    colours = mpl.colormaps[cmap].with_extremes(bad="#DDDDDD")
    image = ax.imshow(data, cmap=colours, vmin=vmin, vmax=vmax, aspect="auto")
    fig.colorbar(image, ax=ax, label=cbar_label, shrink=0.8)
    ax.set_xticks(range(values.shape[1]))
    ax.set_yticks(range(values.shape[0]))
    if annotate:
        fontsize = 7 if values.shape[1] <= 20 else 5.5
        for (i, j), v in np.ndenumerate(values.to_numpy(dtype=float)):
            if not math.isnan(v):
                dark = abs(v - (vmin + vmax) / 2) > 0.3 * (vmax - vmin)
                colour = "white" if dark else "black"
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=fontsize, color=colour)


def plot_au_correlation(corr: pd.DataFrame, path: Path) -> Path:
    """AU-AU correlation heatmap, diverging around 0; grey cells have no defined r."""
    labels = [au_label(c) for c in corr.columns]
    size = max(4.5, 0.32 * len(labels) + 3.0)
    fig = new_figure(size + 1.0, size)
    ax = fig.subplots()
    _heatmap(
        fig,
        ax,
        corr,
        cmap="RdBu_r",
        vmin=-1.0,
        vmax=1.0,
        annotate=len(labels) <= _ANNOTATE_MAX_AUS,
        cbar_label="Pearson r",
    )
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_title("Action-unit correlation (rows with AU labels)")
    return save(fig, path, crop=False)


def plot_emotion_au(rates: pd.DataFrame, path: Path) -> Path:
    """Share of each class's images showing each AU: which AUs define which class."""
    values = rates.drop(columns=["images"], errors="ignore")
    fig = new_figure(max(6.0, 0.35 * values.shape[1] + 3.0), 1.0 + 0.6 * len(values) + 2.2)
    ax = fig.subplots()
    _heatmap(
        fig,
        ax,
        values,
        cmap="viridis",
        vmin=0.0,
        vmax=1.0,
        annotate=values.shape[1] <= _ANNOTATE_MAX_AUS_EMOTION,
        cbar_label="positive rate",
    )
    ax.set_xticklabels([au_label(c) for c in values.columns], rotation=90, fontsize=7)
    ax.set_yticklabels(list(values.index))
    ax.set_xlabel("action unit")
    ax.set_ylabel("emotion class")
    ax.set_title("Action-unit positive rate per emotion class")
    return save(fig, path, crop=False)


def plot_image_sizes(sizes: Mapping[str, int], modes: Mapping[str, int], path: Path) -> Path:
    """Image sizes and colour modes side by side: what the pipeline must crop and convert."""
    fig = new_figure(9.0, 3.6)
    axes = fig.subplots(1, 2)
    for ax, counts, title, xlabel in (
        (axes[0], sizes, "Image sizes", "width x height (px)"),
        (axes[1], modes, "Colour modes", "PIL mode"),
    ):
        bars = ax.bar(list(counts), list(counts.values()), color="#4C72B0", edgecolor="black")
        ax.bar_label(bars, padding=2, fontsize=8)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("images")
        ax.margins(y=0.12)
    return save(fig, path, crop=False)
