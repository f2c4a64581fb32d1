"""AU-head losses for rare AUs: focal and asymmetric, masked like the binary cross-entropy.

A rare AU has a handful of positives among hundreds of easy negatives; plain cross-entropy
is dominated by those negatives. Focal loss (Lin et al. 2017) down-weights every easy
entry by ``(1 - p_t)^gamma``; the asymmetric loss (Ridnik et al. 2021) focuses negatives
harder than positives and shifts negative probabilities by a margin, so confident
negatives (and likely mislabelled ones) stop contributing. Both compose with ckrun's
per-AU positive weights (in place of focal's alpha) and with the -1 "unknown" mask of
`ckrun.model.objectives`: they share `MaskedAULoss` with `MaskedBinaryCrossentropy`, so masked
entries contribute nothing and the batch value is a mean over the known entries for all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from ckrun.model.objectives import MaskedAULoss, MaskedBinaryCrossentropy

_EPS = 1e-7


@keras.saving.register_keras_serializable(package="ckrun")
class MaskedFocalLoss(MaskedAULoss):
    """-(w·t·(1-p)^γ·log p + (1-t)·p^γ·log(1-p)) per known entry; γ = 0 is the weighted BCE."""

    def __init__(
        self, pos_weights: Sequence[float] | None = None, gamma: float = 2.0, name: str = "masked_focal", **kwargs: Any
    ) -> None:
        super().__init__(pos_weights, name=name, **kwargs)
        self.gamma = float(gamma)

    def entries(self, target: Any, p: Any, pos: Any) -> Any:
        positive = pos * target * ops.power(1.0 - p, self.gamma) * ops.log(p)
        negative = (1.0 - target) * ops.power(p, self.gamma) * ops.log(1.0 - p)
        return -(positive + negative)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="ckrun")
class MaskedAsymmetricLoss(MaskedAULoss):
    """ASL: -(w·t·(1-p)^γ+·log p + (1-t)·p_m^γ-·log(1-p_m)), p_m = max(p - clip, 0).

    Defaults are the paper's recommendation (γ- = 4, γ+ = 0, clip 0.05). The focusing
    weights keep their gradient, as in the paper's loss and its gradient analysis.
    """

    def __init__(
        self,
        pos_weights: Sequence[float] | None = None,
        gamma_neg: float = 4.0,
        gamma_pos: float = 0.0,
        clip: float = 0.05,
        name: str = "masked_asl",
        **kwargs: Any,
    ) -> None:
        super().__init__(pos_weights, name=name, **kwargs)
        self.gamma_neg, self.gamma_pos, self.clip = float(gamma_neg), float(gamma_pos), float(clip)

    def entries(self, target: Any, p: Any, pos: Any) -> Any:
        shifted = ops.maximum(p - self.clip, 0.0)
        positive = pos * target * ops.power(1.0 - p, self.gamma_pos) * ops.log(p)
        negative = (1.0 - target) * ops.power(shifted, self.gamma_neg) * ops.log(ops.maximum(1.0 - shifted, _EPS))
        return -(positive + negative)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "gamma_neg": self.gamma_neg,
            "gamma_pos": self.gamma_pos,
            "clip": self.clip,
        }


def au_loss(cfg: Any, pos_weights: Sequence[float] | None) -> keras.losses.Loss:
    """The AU-head loss `cfg.au_loss` names (a TrainConfig), with the per-AU positive weights."""
    if cfg.au_loss == "focal":
        return MaskedFocalLoss(pos_weights, gamma=cfg.focal_gamma)
    if cfg.au_loss == "asl":
        return MaskedAsymmetricLoss(
            pos_weights, gamma_neg=cfg.asl_gamma_neg, gamma_pos=cfg.asl_gamma_pos, clip=cfg.asl_clip
        )
    return MaskedBinaryCrossentropy(pos_weights)
