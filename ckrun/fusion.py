"""Late fusion: the ResNet's probabilities averaged with the strongest linear baseline's.

Why: on small face datasets a tuned linear model is close behind a CNN (on the maintainers'
real CK+ split a linear SVM on 48 px pixels scored 0.933 test emotion accuracy against the
ResNet's 0.944-0.958) and it errs on other faces, because it reads other features. Averaging
members that are about as good and err differently is what ensembles gain from, and hybrid
deep + hand-crafted systems are a known strong recipe for facial expressions on small sets
(Georgescu, Ionescu & Popescu 2019, "Local learning with deep and handcrafted features for
facial expression recognition"; Connie et al. 2017, a hybrid CNN-SIFT aggregator).

How: with ``fusion: baseline`` a run fits `ckrun baseline --model best` on its own split
(the family and each head's C chosen on val, exactly as `ckrun baseline` chooses them) on
48 px grey versions of the faces the ResNet reads, then averages probabilities as
``(1 - w) * resnet + w * baseline`` for both heads. `w` is chosen on val by the run's own
objective from 0, 0.1, ..., 0.5 (ties to the smaller weight, so a baseline that adds nothing on
val gets 0; never more than half, so the floor corrects the ResNet rather than leading it),
unless `fusion_weight` fixes it. With ``fusion_heads: separate`` each head gets its own weight,
chosen by its own half of the objective: a linear model can be as good as the network on
emotion and far behind it on AUs (on the maintainers' real CK+ split a linear SVM matched the
ResNet's emotion accuracy but trailed its AU macro-F1), and one weight has to split the
difference. AU thresholds are then tuned on the fused val
probabilities as for any run. The logged model carries the baseline as plain arrays
(`ckrun.baselines.export`), so `predict`, `evaluate` and `serve` fuse identically.

This module is what prediction needs (a fusion and how it averages); fitting one inside a
run is `ckrun.fusion_fit`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ckrun.baselines.export import LinearBaseline, baseline_faces

Probs = dict[str, np.ndarray]


@dataclass(frozen=True)
class Fusion:
    """A baseline and its weight in the average with the ResNet (`au_weight`: the AU head's, if its own)."""

    baseline: LinearBaseline
    weight: float
    au_weight: float | None = None

    @property
    def weights(self) -> dict[str, float]:
        """The weight of each head's average."""
        return {"emotion": self.weight, "aus": self.weight if self.au_weight is None else self.au_weight}

    def baseline_probabilities(self, images: np.ndarray, channels: int, aus: Sequence[str]) -> Probs:
        """The baseline's probabilities for the ResNet's input faces, AU columns in `aus` order."""
        probs = self.baseline.probabilities(baseline_faces(images, channels))
        columns = [self.baseline.aus.index(a) for a in aus]
        return {"emotion": probs["emotion"], "aus": probs["aus"][:, columns]}


def fusion_weight_text(metrics: Mapping[str, float]) -> str:
    """A run's chosen weight as logged, e.g. ``0.3``, or ``0.5 (AU head 0.1)`` when the heads differ."""
    weight = metrics["fusion_weight_chosen"]
    au = metrics.get("fusion_au_weight_chosen", weight)
    return f"{weight:g}" if au == weight else f"{weight:g} (AU head {au:g})"


def fuse(
    resnet: Mapping[str, np.ndarray], baseline: Mapping[str, np.ndarray], weight: float | Mapping[str, float]
) -> Probs:
    """``(1 - w) * resnet + w * baseline`` per head; `weight` is one for both heads or one per head."""
    w = weight if isinstance(weight, Mapping) else dict.fromkeys(resnet, weight)
    return {key: (1 - w[key]) * np.asarray(resnet[key]) + w[key] * np.asarray(baseline[key]) for key in resnet}


def fuse_all(
    resnet: Mapping[str, np.ndarray],
    fusions: Sequence[Fusion | None],
    images: np.ndarray,
    channels: int,
    aus: Sequence[str],
) -> Probs:
    """The mean over `fusions` of each one's fused probabilities (None: the ResNet's alone).

    One entry per split the model was trained on: a run has one; the model averaging the
    folds of a cross-validation has one per fold, each with its own baseline and weight.
    """
    parts = [
        fuse(resnet, f.baseline_probabilities(images, channels, aus), f.weights) if f else dict(resnet) for f in fusions
    ]
    return {key: np.mean([p[key] for p in parts], axis=0) for key in resnet}
