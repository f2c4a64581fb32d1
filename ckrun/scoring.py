"""From a fitted model's probabilities to a run's final scores.

Predict every split, optionally temperature-scale them (fitted on validation), tune the AU
thresholds on validation, score each split with them (and at 0.5), analyse the val and test
predictions (intervals, curves, calibration, EMFACS: `ckrun.split_analysis`), and reduce it
all to the flat metrics a run logs plus the objective its fit is diagnosed on. The ResNet run
and the linear baseline share it, so their numbers compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ckrun import names
from ckrun.arrays import SplitArrays
from ckrun.calibration import Temperatures, apply_temperatures, fit_temperatures
from ckrun.config import TrainConfig
from ckrun.metrics import SplitEvaluation, emotion_targets, evaluate_split, majority_accuracy, tune_thresholds
from ckrun.predictions import prediction_table
from ckrun.split_analysis import AnalysisSettings, attach_analysis

ANALYSED_SPLITS = ("val", "test")  # whose predictions are logged and analysed; intervals on test only

if TYPE_CHECKING:
    from ckrun.data.pipeline import Preprocessing


def predict_arrays(models: Any, arrays: SplitArrays, prep: Preprocessing) -> dict[str, np.ndarray]:
    """Probabilities of a split by the path every prediction takes (`Predictor`: members, TTA)."""
    from ckrun.predict import Predictor

    return Predictor(models, prep).probabilities(arrays.images)


def val_thresholds(
    val: SplitArrays, val_probs: dict[str, np.ndarray], aus: Sequence[str], cfg: TrainConfig
) -> np.ndarray:
    """AU thresholds tuned on val by the run's rule (`threshold_min_positives`, `threshold_shrinkage`)."""
    if not aus:
        return np.zeros(0)
    return tune_thresholds(
        val.labels["aus"][:, : len(aus)],
        val_probs["aus"][:, : len(aus)],
        min_positives=cfg.threshold_min_positives,
        shrinkage=cfg.threshold_shrinkage,
    )


def score_splits(
    probs: dict[str, dict[str, np.ndarray]], arrays: dict[str, SplitArrays], aus: Sequence[str], cfg: TrainConfig
) -> tuple[dict[str, SplitEvaluation], np.ndarray]:
    """Tune AU thresholds on val, then score every split with them (and at 0.5)."""
    thresholds = val_thresholds(arrays["val"], probs["val"], aus, cfg)
    evaluations = {
        split: evaluate_split(split, arrays[split].labels, probs[split], aus=aus, thresholds=thresholds)
        for split in names.SPLITS
        if len(arrays[split].images)
    }
    settings = AnalysisSettings.from_config(cfg)
    for split, ev in evaluations.items():
        rows = arrays[split].rows
        if split in ANALYSED_SPLITS and rows is not None:
            table = prediction_table(rows, arrays[split].labels, probs[split], aus, thresholds)
            attach_analysis(ev, table, settings, intervals=split == "test")
    return evaluations, thresholds


def calibrate_probabilities(
    probs: dict[str, dict[str, np.ndarray]], arrays: dict[str, SplitArrays], aus: Sequence[str], cfg: TrainConfig
) -> tuple[dict[str, dict[str, np.ndarray]], Temperatures]:
    """With `calibrate`, temperatures fitted on val and applied to every split; else unchanged."""
    if not cfg.calibrate:
        return probs, Temperatures(aus=(1.0,) * len(aus))
    val = arrays["val"].labels
    temperatures = fit_temperatures(
        emotion_targets(val["emotion"]),
        probs["val"]["emotion"],
        val["aus"][:, : len(aus)],
        probs["val"]["aus"][:, : len(aus)],
        per_au=cfg.calibrate_aus == "per_au",
        min_positives=cfg.threshold_min_positives,
    )
    scaled = {s: apply_temperatures(p, temperatures.emotion, temperatures.aus) for s, p in probs.items()}
    return scaled, temperatures


def summary_metrics(
    evaluations: dict[str, SplitEvaluation], arrays: dict[str, SplitArrays], cfg: TrainConfig, has_aus: bool
) -> tuple[dict[str, float], str]:
    """Flat final metrics plus the fit diagnosis (shared by the ResNet and the baseline)."""
    metrics: dict[str, float] = {}
    for ev in evaluations.values():
        metrics.update(ev.metrics)
    eval_split = "test" if "test" in evaluations else "val"
    metrics["majority_emotion_accuracy"] = majority_accuracy(
        emotion_targets(arrays["train"].labels["emotion"]), emotion_targets(arrays[eval_split].labels["emotion"])
    )
    objective_kind = cfg.objective if has_aus else "emotion"
    metrics["objective"] = names.objective(metrics, "val", objective_kind)
    return metrics, objective_kind
