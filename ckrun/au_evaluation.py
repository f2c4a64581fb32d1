"""Per-AU evaluation the FACS literature asks for, beyond F1 at one threshold.

F1 depends on how often an AU occurs: at the same hit and false-alarm rates, a rare AU
(AU9 in 5% of CK+ frames) scores a much lower F1 than a frequent one (AU25 in 40%), so raw
F1 ranks AUs by base rate as much as by how well they are detected. Jeni, Cohn & De la
Torre ("Facing Imbalanced Data — Recommendations for the Use of Performance Metrics",
ACII 2013) recommend reporting threshold-free measures (ROC-AUC, which ignores skew) and
F1 normalised to a common skew beside the raw F1. Per AU this module gives the
precision-recall curve and average precision (the area under it), F1 against the
threshold, F1 at the tuned and at the 0.5 threshold, the skew-normalised F1 and the
binary expected calibration error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve

from ckrun.calibration import au_reliability, expected_calibration_error

F1_CURVE_GRID = np.round(np.linspace(0.02, 0.98, 49), 2)
MAX_CURVE_POINTS = 200
TABLE_COLUMNS = (
    "au",
    "positives",
    "skew",
    "f1",
    "f1_05",
    "f1_skew_normalised",
    "average_precision",
    "ece",
)  # PR curves are thinned to this many points for artifacts and figures


def skew_normalised_f1(tp: float, fp: float, fn: float, tn: float, skew: float = 1.0) -> float:
    """The F1 the same detector would score at `skew` negatives per positive (Jeni et al. 2013).

    A detector is characterised by its true-positive rate TPR = TP / P and false-positive
    rate FPR = FP / N, which do not depend on the base rate. With P positives and N = s·P
    negatives it makes TP = TPR·P, FN = (1 - TPR)·P and FP = FPR·s·P, so

        F1_s = 2·TP / (2·TP + FP + FN) = 2·TPR / (1 + TPR + s·FPR),

    and at skew s = 1 (as many negatives as positives) F1_norm = 2·TPR / (1 + TPR + FPR).
    Equivalently precision is computed with FP scaled by 1/s_observed (Jeni et al.'s
    formulation). NaN when the split has no positive of the AU; FPR = 0 without negatives.
    """
    positives, negatives = tp + fn, fp + tn
    if positives <= 0:
        return float("nan")
    tpr = tp / positives
    fpr = fp / negatives if negatives > 0 else 0.0
    return float(2 * tpr / (1 + tpr + skew * fpr))


def f1_at_thresholds(y: np.ndarray, p: np.ndarray, grid: Sequence[float] | np.ndarray) -> np.ndarray:
    """Binary F1 at every threshold of `grid` at once (nan where no positive and none predicted)."""
    pred = p[None, :] >= np.asarray(grid)[:, None]
    positive = y[None, :] == 1
    tp = (pred & positive).sum(axis=1)
    denom = 2 * tp + (pred & ~positive).sum(axis=1) + (~pred & positive).sum(axis=1)
    return np.divide(2 * tp, denom, out=np.full(len(tp), np.nan), where=denom > 0)


def _thin(values: np.ndarray) -> np.ndarray:
    step = max(1, int(np.ceil(len(values) / MAX_CURVE_POINTS)))
    return values if step == 1 else np.concatenate([values[::step], values[-1:]])


@dataclass
class AUEvaluation:
    """Extra per-AU columns (one row per AU, in output order) and the curves behind them."""

    table: pd.DataFrame  # TABLE_COLUMNS
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # macro summaries, unprefixed


def evaluate_aus(
    targets: np.ndarray, probs: np.ndarray, aus: Sequence[str], thresholds: np.ndarray, *, n_bins: int = 10
) -> AUEvaluation:
    """Per-AU curves and threshold-free scores over coded entries (-1 = not coded)."""
    targets, probs = np.asarray(targets, float), np.asarray(probs, float)
    rows, curves = [], {}
    for j, au in enumerate(aus):
        coded = targets[:, j] >= 0
        y, p = targets[coded, j].astype(int), probs[coded, j]
        positives, negatives = int(y.sum()), int(len(y) - y.sum())
        decided = p >= thresholds[j]
        tp, fp = int((decided & (y == 1)).sum()), int((decided & (y == 0)).sum())
        fn, tn = positives - tp, negatives - fp
        tuned, half = f1_at_thresholds(y, p, [thresholds[j], 0.5]) if len(y) else (np.nan, np.nan)
        bins = au_reliability(y, p, n_bins)
        curve: dict[str, Any] = {
            "threshold": float(thresholds[j]),
            "f1_grid": F1_CURVE_GRID.tolist(),
            "f1": [None if np.isnan(v) else float(v) for v in f1_at_thresholds(y, p, F1_CURVE_GRID)],
            "reliability": bins.to_dict(orient="list"),
        }
        if 0 < positives < len(y):
            precision, recall, _ = precision_recall_curve(y, p)
            curve.update(precision=_thin(precision).tolist(), recall=_thin(recall).tolist())
            ap = float(average_precision_score(y, p))
        else:
            ap = float("nan")
        curve["base_rate"] = positives / len(y) if len(y) else float("nan")
        curve["average_precision"] = ap
        curves[au] = curve
        rows.append(
            {
                "au": au,
                "positives": positives,
                "skew": negatives / positives if positives else float("nan"),
                "f1": float(tuned),
                "f1_05": float(half),
                "f1_skew_normalised": skew_normalised_f1(tp, fp, fn, tn),
                "average_precision": ap,
                "ece": expected_calibration_error(bins),
            }
        )
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    metrics: dict[str, float] = {}
    if len(table):
        for key, column in (("au_average_precision_macro", "average_precision"),
                            ("au_f1_skew_normalised", "f1_skew_normalised")):  # fmt: skip
            values = table[column].dropna()
            metrics[key] = float(values.mean()) if len(values) else float("nan")
        metrics["au_ece"] = expected_calibration_error(au_reliability(targets, probs, n_bins))
    return AUEvaluation(table, curves, metrics)
