"""Uncertainty that respects subjects: bootstrap intervals and a paired test between two runs.

The frames of one CK+ subject are not independent: the same face, lighting and way of
posing repeat across that person's sequences, so a model right on one frame of a subject
tends to be right on the others. Resampling images treats ~200 test frames as ~200
independent draws and gives intervals that are too narrow; the honest unit is the subject
(CK+ has 123, a test split ~25). So both the bootstrap and the paired test resample or swap
whole subjects.

Every headline metric is a function of counts that add up over subjects (the emotion
confusion matrix; per-AU true/false positives and false negatives), so a bootstrap sample
is a weighted sum of per-subject counts: one matrix product for all B samples at once, and
1000 samples cost milliseconds rather than 1000 re-scorings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ckrun.data.labels import EMOTION_CLASSES
from ckrun.predictions import Predictions

# The test metrics that get intervals and are compared; names as in ckrun.names.SPLIT_METRICS.
HEADLINE_METRICS: tuple[str, ...] = ("emotion_accuracy", "emotion_f1", "au_f1", "au_f1_weighted")
EXACT_PERMUTATION_LIMIT = 16  # up to 2**16 sign patterns the paired test enumerates them all


@dataclass
class GroupCounts:
    """Additive counts per group (subject): what every headline metric is computed from."""

    groups: np.ndarray  # (G,) group labels, sorted
    confusion: np.ndarray  # (G, C, C) emotion confusion counts, rows = truth
    au: np.ndarray  # (G, A, 3) per-AU true positives, false positives, false negatives


def group_counts(pred: Predictions, groups: np.ndarray) -> GroupCounts:
    """Counts of `pred` summed within each group (labels masked out are not counted)."""
    labels, inverse = np.unique(np.asarray(groups), return_inverse=True)
    n_groups, n_classes = len(labels), len(EMOTION_CLASSES)
    known = pred.emotion_targets >= 0
    cell = (inverse[known] * n_classes + pred.emotion_targets[known]) * n_classes + pred.emotion_predictions[known]
    confusion = np.bincount(cell, minlength=n_groups * n_classes**2).reshape(n_groups, n_classes, n_classes)
    y, decision = pred.au_targets, pred.au_decisions
    coded = y >= 0
    per_image = np.stack(
        [coded & (y == 1) & (decision == 1), coded & (y == 0) & (decision == 1), coded & (y == 1) & (decision == 0)],
        axis=-1,
    ).astype(float)  # (n, A, 3)
    au = np.zeros((n_groups, len(pred.aus), 3))
    np.add.at(au, inverse, per_image)
    return GroupCounts(labels, confusion.astype(float), au)


def metrics_from_counts(confusion: np.ndarray, au: np.ndarray) -> dict[str, np.ndarray]:
    """Headline metrics from counts with any leading batch shape: (..., C, C) and (..., A, 3).

    Defined exactly as `ckrun.metrics` defines them (tests check the two agree): emotion
    macro-F1 over classes present in truth or prediction, AU macro-F1 over AUs with any
    positive or predicted positive, AU weighted-F1 by support.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        total = confusion.sum(axis=(-2, -1))
        tp = np.diagonal(confusion, axis1=-2, axis2=-1)
        rows, cols = confusion.sum(axis=-1), confusion.sum(axis=-2)
        present = (rows + cols) > 0
        f1_class = np.where(present, 2 * tp / np.where(present, rows + cols, 1), 0.0)
        n_present = present.sum(axis=-1)
        out = {
            "emotion_accuracy": np.where(total > 0, tp.sum(axis=-1) / np.where(total > 0, total, 1), np.nan),
            "emotion_f1": np.where(n_present > 0, f1_class.sum(axis=-1) / np.maximum(n_present, 1), np.nan),
        }
        if au.shape[-2] == 0:
            return out
        au_tp, au_fp, au_fn = au[..., 0], au[..., 1], au[..., 2]
        denom = 2 * au_tp + au_fp + au_fn
        defined = denom > 0
        f1_au = np.where(defined, 2 * au_tp / np.where(defined, denom, 1), 0.0)
        n_defined = defined.sum(axis=-1)
        support = au_tp + au_fn
        out["au_f1"] = np.where(n_defined > 0, f1_au.sum(axis=-1) / np.maximum(n_defined, 1), 0.0)
        out["au_f1_weighted"] = (f1_au * support).sum(axis=-1) / np.maximum(support.sum(axis=-1), 1)
    return out


def _resample_weights(n_groups: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """(samples, G): how often each group is drawn in each bootstrap sample."""
    return rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=samples).astype(float)


def _weighted(weights: np.ndarray, counts: GroupCounts) -> dict[str, np.ndarray]:
    return metrics_from_counts(
        np.tensordot(weights, counts.confusion, axes=(1, 0)), np.tensordot(weights, counts.au, axes=(1, 0))
    )


def bootstrap_intervals(
    pred: Predictions,
    *,
    samples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    unit: str = "subject",
    metrics: Sequence[str] = HEADLINE_METRICS,
) -> pd.DataFrame:
    """Percentile bootstrap intervals of the headline metrics: metric, estimate, ci_low, ci_high.

    `unit="subject"` resamples subjects with replacement (each drawn subject brings all its
    images); `unit="image"` resamples images, which is what ignoring subjects amounts to and
    is kept only to show the difference. Seeded: the same predictions and seed give the same
    interval.
    """
    if unit not in ("subject", "image"):
        raise ValueError(f"unit must be 'subject' or 'image', not {unit!r}")
    n = len(pred.frame)
    if n == 0 or samples < 1:
        return pd.DataFrame(columns=["metric", "estimate", "ci_low", "ci_high"])
    counts = group_counts(pred, pred.subjects if unit == "subject" else np.arange(n))
    estimate = metrics_from_counts(counts.confusion.sum(axis=0), counts.au.sum(axis=0))
    rows = []
    rng = np.random.default_rng(seed)
    values = _weighted(_resample_weights(len(counts.groups), samples, rng), counts)
    tail = 100 * (1 - level) / 2
    for metric in metrics:
        if metric not in estimate or not np.isfinite(estimate[metric]):
            continue
        sample = values[metric][np.isfinite(values[metric])]
        low, high = np.percentile(sample, [tail, 100 - tail]) if len(sample) else (np.nan, np.nan)
        rows.append(
            {"metric": metric, "estimate": float(estimate[metric]), "ci_low": float(low), "ci_high": float(high)}
        )
    return pd.DataFrame(rows, columns=["metric", "estimate", "ci_low", "ci_high"])


# --------------------------------------------------------------------------------------
# Paired comparison of two runs on the same test images


@dataclass
class PairedComparison:
    """Per metric: both runs, their difference (A - B), its interval, the p-value."""

    table: pd.DataFrame  # metric, a, b, difference, ci_low, ci_high, p_value, significant
    n_subjects: int
    n_images: int
    samples: int
    permutations: int
    exact: bool
    level: float
    alpha: float


def _swap_masks(n_groups: int, permutations: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """(P, G) 0/1: which subjects swap the two runs' predictions; every pattern when few subjects.

    Up to EXACT_PERMUTATION_LIMIT subjects the 2^G patterns are enumerated whatever `permutations`
    says: the exact p-value costs at most 65,536 count sums (milliseconds), and a random draw of
    fewer patterns would only add Monte Carlo noise to it.
    """
    if n_groups <= EXACT_PERMUTATION_LIMIT:
        patterns = np.arange(2**n_groups)[:, None] >> np.arange(n_groups)[None, :]
        return (patterns & 1).astype(float), True
    return rng.integers(0, 2, size=(permutations, n_groups)).astype(float), False


def paired_comparison(
    a: Predictions,
    b: Predictions,
    *,
    samples: int = 1000,
    permutations: int = 10000,
    level: float = 0.95,
    alpha: float = 0.05,
    seed: int = 0,
    metrics: Sequence[str] = HEADLINE_METRICS,
) -> PairedComparison:
    """Is A better than B on the same test subjects, beyond what the choice of subjects explains?

    Rows of `a` and `b` must be the same images in the same order (`ckrun.compare` aligns
    them). The p-value is a two-sided subject-level permutation test: under "A and B are
    exchangeable", swapping the two runs' predictions for any set of subjects is as likely as
    the observed assignment, so the metric difference is recomputed for every swap pattern
    (all 2^G when G ≤ 16 subjects, else `permutations` random ones) and p is the share at
    least as extreme as observed. For accuracy this is the sign-flip test of per-subject
    differences; for F1, which does not decompose, it is the approximate randomisation test
    (Noreen 1989) with subjects as the unit. The interval is a paired subject bootstrap: the
    same resampled subjects score both runs.
    """
    groups = a.subjects
    ca, cb = group_counts(a, groups), group_counts(b, groups)
    ma = metrics_from_counts(ca.confusion.sum(axis=0), ca.au.sum(axis=0))
    mb = metrics_from_counts(cb.confusion.sum(axis=0), cb.au.sum(axis=0))
    rng = np.random.default_rng(seed)
    weights = _resample_weights(len(ca.groups), max(samples, 1), rng)
    boot_a, boot_b = _weighted(weights, ca), _weighted(weights, cb)
    masks, exact = _swap_masks(len(ca.groups), permutations, rng)
    keep = 1.0 - masks
    swapped_a = metrics_from_counts(
        np.tensordot(keep, ca.confusion, axes=(1, 0)) + np.tensordot(masks, cb.confusion, axes=(1, 0)),
        np.tensordot(keep, ca.au, axes=(1, 0)) + np.tensordot(masks, cb.au, axes=(1, 0)),
    )
    swapped_b = metrics_from_counts(
        np.tensordot(masks, ca.confusion, axes=(1, 0)) + np.tensordot(keep, cb.confusion, axes=(1, 0)),
        np.tensordot(masks, ca.au, axes=(1, 0)) + np.tensordot(keep, cb.au, axes=(1, 0)),
    )
    tail = 100 * (1 - level) / 2
    rows = []
    for metric in metrics:
        if metric not in ma or not (np.isfinite(ma[metric]) and np.isfinite(mb[metric])):
            continue
        observed = float(ma[metric] - mb[metric])
        diffs = boot_a[metric] - boot_b[metric]
        diffs = diffs[np.isfinite(diffs)]
        low, high = np.percentile(diffs, [tail, 100 - tail]) if len(diffs) else (np.nan, np.nan)
        null = swapped_a[metric] - swapped_b[metric]
        extreme = np.abs(null) >= abs(observed) - 1e-12
        p = float(extreme.mean()) if exact else float((1 + extreme.sum()) / (1 + len(null)))
        rows.append(
            {
                "metric": metric,
                "a": float(ma[metric]),
                "b": float(mb[metric]),
                "difference": observed,
                "ci_low": float(low),
                "ci_high": float(high),
                "p_value": p,
                "significant": bool(p < alpha),
            }
        )
    columns = ["metric", "a", "b", "difference", "ci_low", "ci_high", "p_value", "significant"]
    return PairedComparison(
        pd.DataFrame(rows, columns=columns), len(ca.groups), len(a.frame), samples, len(masks), exact, level, alpha
    )
