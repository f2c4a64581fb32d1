"""Are the probabilities honest? Reliability bins, expected calibration error, temperature scaling.

A network trained with cross-entropy and then early-stopped on F1 is usually overconfident:
its 0.95 is right less than 95% of the time. For a researcher reading an AU probability as
evidence, that matters as much as F1. Two views:

- **Reliability** (Guo et al. 2017, "On Calibration of Modern Neural Networks"): predictions
  are put into equal-width confidence bins; in each bin the mean confidence is compared with
  how often the prediction was right. The **expected calibration error** (ECE) is the
  count-weighted mean gap. For the emotion head it is the *top-label* ECE (confidence = the
  winning class's probability, outcome = the winner is the true class); for an AU it is the
  binary ECE of its probability against its label; the run's AU ECE pools every coded
  (image, AU) entry.
- **Temperature scaling** (Guo et al. 2017): one scalar T divides the logits (T > 1 softens
  an overconfident head, T < 1 sharpens), fitted on validation by minimising the negative
  log-likelihood. Argmax, and so emotion accuracy, never changes; AU decisions are re-tuned
  on the scaled probabilities. The heads emit probabilities, so logits are recovered as
  log p (softmax: logits up to a constant, which softmax ignores) and log(p / (1 - p)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

EPS = 1e-7
LOG_T_BOUNDS = (float(np.log(0.05)), float(np.log(20.0)))  # temperatures outside mean a broken head


# --------------------------------------------------------------------------------------
# Reliability and ECE


def reliability_bins(confidence: np.ndarray, outcome: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Equal-width bins over [0, 1]: bin_low, bin_high, count, confidence (mean), frequency (mean outcome)."""
    confidence, outcome = np.asarray(confidence, float), np.asarray(outcome, float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    conf_sum = np.bincount(index, weights=confidence, minlength=n_bins)
    hit_sum = np.bincount(index, weights=outcome, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame(
            {
                "bin_low": edges[:-1],
                "bin_high": edges[1:],
                "count": count,
                "confidence": np.where(count > 0, conf_sum / np.maximum(count, 1), np.nan),
                "frequency": np.where(count > 0, hit_sum / np.maximum(count, 1), np.nan),
            }
        )


def expected_calibration_error(bins: pd.DataFrame) -> float:
    """Count-weighted mean |frequency - confidence| over the bins (nan when no prediction)."""
    total = bins["count"].sum()
    if total == 0:
        return float("nan")
    gap = (bins["frequency"] - bins["confidence"]).abs().fillna(0.0)
    return float((gap * bins["count"]).sum() / total)


def emotion_reliability(targets: np.ndarray, probs: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Top-label reliability of the emotion head over images with a known emotion."""
    known = np.asarray(targets) >= 0
    probs = np.asarray(probs, float)[known]
    if not len(probs):
        return reliability_bins(np.zeros(0), np.zeros(0), n_bins)
    return reliability_bins(probs.max(axis=1), probs.argmax(axis=1) == np.asarray(targets)[known], n_bins)


def au_reliability(targets: np.ndarray, probs: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Binary reliability of AU probabilities (all columns pooled; pass one column for one AU)."""
    targets, probs = np.asarray(targets, float), np.asarray(probs, float)
    coded = targets >= 0
    return reliability_bins(probs[coded], targets[coded], n_bins)


# --------------------------------------------------------------------------------------
# Temperature scaling


@dataclass(frozen=True)
class Temperatures:
    """Fitted temperatures: one for the emotion head, one per AU output (all equal when shared)."""

    emotion: float = 1.0
    aus: tuple[float, ...] = ()
    shared_au: float = 1.0

    @property
    def is_identity(self) -> bool:
        return self.emotion == 1.0 and all(t == 1.0 for t in self.aus)


def _emotion_logits(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, float), EPS, 1.0))


def _au_logits(probs: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probs, float), EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


def scale_emotion(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of the emotion logits divided by `temperature`."""
    if temperature == 1.0 or not len(probs):
        return np.asarray(probs)
    z = _emotion_logits(probs) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def scale_aus(probs: np.ndarray, temperatures: Sequence[float]) -> np.ndarray:
    """Sigmoid of each AU's logit divided by its temperature (no temperatures: unchanged)."""
    t = np.asarray(temperatures, float)
    if not len(t) or np.all(t == 1.0) or not len(probs):
        return np.asarray(probs)
    return 1.0 / (1.0 + np.exp(-_au_logits(probs) / t[None, :]))


def apply_temperatures(
    probs: dict[str, np.ndarray], emotion: float = 1.0, aus: Sequence[float] = ()
) -> dict[str, np.ndarray]:
    """Both heads' probabilities with the temperatures applied (identity by default)."""
    return {**probs, "emotion": scale_emotion(probs["emotion"], emotion), "aus": scale_aus(probs["aus"], aus)}


def _minimise(nll: object) -> float:
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(nll, bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-5})
    return float(np.exp(result.x))


def fit_emotion_temperature(targets: np.ndarray, probs: np.ndarray) -> float:
    """T minimising the softmax NLL of known-emotion rows (1.0 when there are none)."""
    known = np.asarray(targets) >= 0
    if not known.any():
        return 1.0
    z, y = _emotion_logits(np.asarray(probs)[known]), np.asarray(targets)[known]

    def nll(log_t: float) -> float:
        scaled = z / np.exp(log_t)
        log_norm = np.logaddexp.reduce(scaled, axis=1)
        return float(np.mean(log_norm - scaled[np.arange(len(y)), y]))

    return _minimise(nll)


def fit_au_temperature(targets: np.ndarray, probs: np.ndarray) -> float:
    """T minimising the binary NLL of every coded entry of `targets`/`probs` (any shape)."""
    targets, probs = np.asarray(targets, float), np.asarray(probs, float)
    coded = targets >= 0
    if not coded.any() or len(np.unique(targets[coded])) < 2:
        return 1.0
    z, y = _au_logits(probs[coded]), targets[coded]

    def nll(log_t: float) -> float:
        scaled = z / np.exp(log_t)
        return float(np.mean(y * np.logaddexp(0.0, -scaled) + (1.0 - y) * np.logaddexp(0.0, scaled)))

    return _minimise(nll)


def fit_temperatures(
    emotion_targets: np.ndarray,
    emotion_probs: np.ndarray,
    au_targets: np.ndarray,
    au_probs: np.ndarray,
    *,
    per_au: bool = False,
    min_positives: int = 10,
) -> Temperatures:
    """Temperatures fitted on validation.

    By default one temperature serves every AU: fitted on all coded (image, AU) entries it
    rests on hundreds of labels, where a per-AU fit on CK+'s validation split rests on a
    dozen positives for most AUs and would chase noise. `per_au=True` fits each AU that has
    at least `min_positives` validation positives (and a negative) on its own, the rest keep
    the shared one.
    """
    au_targets, au_probs = np.asarray(au_targets, float), np.asarray(au_probs, float)
    shared = fit_au_temperature(au_targets, au_probs) if au_targets.size else 1.0
    temps = [shared] * au_targets.shape[1] if au_targets.ndim == 2 else []
    if per_au:
        for j in range(len(temps)):
            column = au_targets[:, j]
            # Positives alone (or negatives alone) pin no temperature: the NLL just falls towards a
            # bound, so such an AU keeps the shared one like an AU with too few positives.
            if (column == 1).sum() >= min_positives and (column == 0).any():
                temps[j] = fit_au_temperature(column, au_probs[:, j])
    return Temperatures(fit_emotion_temperature(emotion_targets, emotion_probs), tuple(temps), shared)


def negative_log_likelihood(emotion_targets: np.ndarray, emotion_probs: np.ndarray) -> float:
    """Mean NLL of the true class over known-emotion rows (for logging before/after scaling)."""
    known = np.asarray(emotion_targets) >= 0
    if not known.any():
        return float("nan")
    p = np.asarray(emotion_probs, float)[known, np.asarray(emotion_targets)[known]]
    return float(-np.mean(np.log(np.clip(p, EPS, 1.0))))
