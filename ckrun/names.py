"""Metric names in one place: Keras history keys → the MLflow names of docs/architecture.md.

Keras names multi-output metrics after the heads (``val_aus_f1``); MLflow, reports and the
tuner use ``val_au_f1``. Everything that reads or writes a metric name goes through here,
so no module hard-codes a string another one has to match.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

SPLITS = ("train", "val", "test")
# The tag `ckrun tune --retrain` puts on its run, which trains on the val images too: what the
# retrain writes and the report reads (its val scores are not held out, so they rank nothing).
TRAIN_DATA_TAG = "ckrun.train_data"
TRAINED_ON_VAL = "train+val"

# Final per-split metrics ({split}_{name}); `au_*_05` are the same AU scores at threshold 0.5.
SPLIT_METRICS = (
    "emotion_accuracy",
    "emotion_f1",
    "au_f1",
    "au_f1_micro",
    "au_precision_weighted",
    "au_recall_weighted",
    "au_f1_weighted",
    "au_subset_accuracy",
    "au_roc_auc_macro",
    "au_f1_05",
    "au_f1_micro_05",
)
RUN_METRICS = (
    "best_epoch",
    "epochs_run",
    "fit_gap",
    "majority_emotion_accuracy",
    "objective",
    "selected_val_objective",  # the epoch-selection rule's val objective at best_epoch
)
# From the per-image predictions of val and test (ckrun.split_analysis): calibration,
# threshold-free and skew-normalised AU scores, and the EMFACS agreement of the two heads.
ANALYSIS_METRICS = (
    "emotion_ece",
    "au_ece",
    "au_average_precision_macro",
    "au_f1_skew_normalised",
    "emfacs_consistency",
    "emfacs_consistency_truth",
)
# Subject-level bootstrap bounds of the headline test metrics: test_<metric>_ci_low / _ci_high.
INTERVAL_SUFFIXES = ("_ci_low", "_ci_high")


def is_interval(name: str) -> bool:
    """True for a bootstrap bound (averaging bounds over CV folds would mean nothing)."""
    return name.endswith(INTERVAL_SUFFIXES)


OBJECTIVE_KINDS = ("mean", "emotion", "au")


def split_metric(split: str, name: str) -> str:
    return f"{split}_{name}"


def keras_to_mlflow(key: str) -> str:
    """``val_aus_f1`` → ``val_au_f1``, ``loss`` → ``train_loss``, ``emotion_f1`` → ``train_emotion_f1``."""
    prefix = "val_" if key.startswith("val_") else "train_"
    base = key.removeprefix("val_")
    if base.startswith("aus_"):
        base = "au_" + base.removeprefix("aus_")
    if base in ("learning_rate", "lr"):
        return "learning_rate"
    return prefix + base


def epoch_metrics(logs: Mapping[str, float]) -> dict[str, float]:
    """One epoch's Keras logs renamed to the MLflow scheme (non-finite values dropped)."""
    out = {}
    for key, value in logs.items():
        value = float(value)
        if math.isfinite(value):
            out[keras_to_mlflow(key)] = value
    return out


def objective(metrics: Mapping[str, float], split: str = "val", kind: str = "mean") -> float:
    """The validation objective: mean of emotion and AU macro-F1, or either alone.

    Falls back to whichever score exists (a dataset without AUs has no AU F1).
    """
    emotion = metrics.get(f"{split}_emotion_f1")
    au = metrics.get(f"{split}_au_f1")
    if kind == "emotion" or au is None:
        return float(emotion) if emotion is not None else float("nan")
    if kind == "au" or emotion is None:
        return float(au)
    return (float(emotion) + float(au)) / 2.0
