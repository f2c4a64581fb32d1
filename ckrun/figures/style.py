"""The look every ckrun figure shares, and the one way a figure is made and saved.

A reader learns the colours once: the emotion classes always wear `CLASS_COLOURS`, the fit
verdicts `VERDICT_COLOURS`, runs on shared axes `RUN_COLOURS` in order. Figures are drawn on
pyplot-free `Figure` objects with an Agg canvas attached (`new_figure`): no global backend or
pyplot state, so drawing is safe in threads, servers and training runs, and `ckrun --help`
never imports matplotlib (every import of it here is inside a function).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 150

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
CLASS_COLOURS: dict[str, str] = {
    "negative": "#D55E00",
    "positive": "#009E73",
    "surprise": "#0072B2",
}
OTHER_COLOUR = "#999999"  # anything without a colour of its own (other labels, no verdict)

VERDICT_COLOURS: dict[str, str] = {
    "overfitting": "#CC79A7",
    "underfitting": "#E69F00",
    "balanced": "#56B4E9",
    "": OTHER_COLOUR,
}
# Marker per run kind (the `kind` tag): train, Optuna trial, cross-validation fold, baseline.
KIND_MARKERS: dict[str, str] = {"train": "o", "trial": "s", "cv": "^", "baseline": "D", "reference": "X"}
RUN_COLOURS: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")


def new_figure(width: float, height: float) -> Figure:
    """A pyplot-free figure on an Agg canvas: no global backend or state, safe in threads and servers."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path, *, crop: bool = True, pad_inches: float = 0.15) -> Path:
    """Lay out and write `fig` as PNG at `DPI`, creating the folder.

    `crop` trims to a tight bounding box (plus `pad_inches`) so no axis label is ever cut off
    at the edge; the dataset figures keep their fixed canvas size instead (``crop=False``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    if crop:
        fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=pad_inches)
    else:
        fig.savefig(path, dpi=DPI)
    return path
