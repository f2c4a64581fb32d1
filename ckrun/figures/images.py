"""Pictures of faces: attribution overlays and grids of faces as the model sees them.

Faces are drawn as the model reads them (after crop and resize, grey or colour), so what a
reader sees is what the network saw. Attribution maps are laid over them in a perceptually
ordered colour map with the AU's facial region outlined, so "AU12 from the forehead" is
visible at a glance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ckrun.figures.style import new_figure, save

# (panel title, map in [0, 1] or None for the bare face, region mask to outline or None)
Panel = tuple[str, "np.ndarray | None", "np.ndarray | None"]


def _show_face(ax: object, face: np.ndarray) -> None:
    image = np.asarray(face)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)  # type: ignore[attr-defined]
    ax.set_xticks([])  # type: ignore[attr-defined]
    ax.set_yticks([])  # type: ignore[attr-defined]


def plot_attribution_panels(face: np.ndarray, panels: Sequence[Panel], path: Path, *, title: str = "") -> Path:
    """One row: each panel the face with its map overlaid (magma, 45%) and its region outlined."""
    fig = new_figure(1.9 * len(panels), 2.3)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (label, attribution, mask) in zip(axes, panels, strict=True):
        _show_face(ax, face)
        if attribution is not None:
            ax.imshow(attribution, cmap="magma", alpha=0.45, vmin=0, vmax=1)
        if mask is not None and mask.any():
            ax.contour(mask.astype(float), levels=[0.5], colors="#56B4E9", linewidths=1.0)
        ax.set_title(label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    return save(fig, path, pad_inches=0.05)


def plot_face_grid(rows: Mapping[str, Sequence[np.ndarray] | np.ndarray], path: Path, *, title: str = "") -> Path:
    """A grid of faces, one labelled row per key (emotion class, or a sequence's frames)."""
    width = max((len(v) for v in rows.values()), default=1) or 1
    fig = new_figure(1.1 * width + 0.8, 1.15 * max(len(rows), 1) + 0.3)
    axes = fig.subplots(max(len(rows), 1), width, squeeze=False)
    for r, (label, faces) in enumerate(rows.items()):
        for c in range(width):
            ax = axes[r][c]
            if c < len(faces):
                _show_face(ax, faces[c])
            else:
                ax.axis("off")
        axes[r][0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return save(fig, path, pad_inches=0.05)
