"""Ensembles: what a multi-seed run logs about its members, and the model averaging CV folds.

An ensemble is a `ckrun.predict.Predictor` over several Keras models: its probabilities are
the members' mean, its AU thresholds are tuned on validation on those mean probabilities
(like a single model's), and it is logged as one pyfunc model (`tracking.log_model` with a
list). Two kinds:

- ``ensemble_seeds: N`` trains N seeds on one split inside one run (`train.fit_members`);
  `member_metrics` logs how each member alone scores on validation, so the gain of
  averaging is visible next to the run's own `objective`.
- ``ckrun train --cv K --ensemble`` averages the K fold models on the CV parent run
  (`log_cv_ensemble`). Folds were trained on different splits, so every member keeps its
  own normalisation and AU list; the ensemble predicts the AUs every fold models, and as
  no validation set is held out from all folds, an AU's threshold is the mean of the
  thresholds the folds tuned on their own validation sets. A calibrated fold's temperatures
  scale its own model's outputs before the mean, as they did when its thresholds were tuned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ckrun import names, tracking
from ckrun.arrays import SplitArrays
from ckrun.config import TrainConfig
from ckrun.metrics import evaluate_split

if TYPE_CHECKING:
    from ckrun.data.pipeline import Preprocessing
    from ckrun.train import FitOutcome, TrainResult


def member_metrics(
    fits: Sequence[FitOutcome], arrays: dict[str, SplitArrays], prep: Preprocessing, cfg: TrainConfig
) -> dict[str, float]:
    """Each member's own val objective (``member<k>_objective``) and selected epoch."""
    from ckrun.scoring import predict_arrays, val_thresholds

    val = arrays["val"]
    aus = list(prep.aus)
    kind = cfg.objective if aus else "emotion"
    out: dict[str, float] = {"ensemble_members": float(len(fits))}
    for k, fit in enumerate(fits, start=1):
        probs = predict_arrays(fit.model, val, prep)
        thresholds = val_thresholds(val, probs, aus, cfg)
        ev = evaluate_split("val", val.labels, probs, aus=aus, thresholds=thresholds)
        out[f"member{k}_objective"] = names.objective(ev.metrics, "val", kind)
        out[f"member{k}_best_epoch"] = float(fit.best_epoch)
    return out


def cv_ensemble(results: Sequence[TrainResult]) -> tuple[list[Any], Preprocessing, list[Preprocessing]]:
    """Members, the ensemble's preprocessing and each member's own, from the folds of a CV."""
    members = [(model, r.preprocessing) for r in results for model in r.models]
    if not members:
        raise ValueError("no fold models to average")
    first = results[0].preprocessing
    aus = tuple(a for a in first.aus if all(a in r.preprocessing.aus for r in results))
    thresholds = tuple(
        float(np.mean([r.preprocessing.thresholds[r.preprocessing.aus.index(a)] for r in results])) for a in aus
    )
    mean = tuple(float(v) for v in np.mean([r.preprocessing.mean for r in results], axis=0))
    std = tuple(float(v) for v in np.mean([r.preprocessing.std for r in results], axis=0))
    # Each fold model keeps its own temperatures (`Predictor` applies them member by member);
    # the first fold's would be for its AU list and its model only.
    prep = dataclasses.replace(
        first, aus=aus, thresholds=thresholds, mean=mean, std=std, emotion_temperature=1.0, au_temperatures=()
    )
    return [m for m, _ in members], prep, [p for _, p in members]


def log_cv_ensemble(cfg: TrainConfig, results: Sequence[TrainResult]) -> str:
    """Log one pyfunc model averaging every fold's model(s) on the active CV parent run.

    Folds fused with a linear baseline (`ckrun.fusion`) bring it along: the ensemble's
    probabilities are the mean over folds of the members' average fused with each fold's
    baseline at that fold's weight.
    """
    models, prep, member_preps = cv_ensemble(results)
    tracking.log_params({"cv_ensemble": True, "ensemble_members": len(models), "ensemble_aus": ",".join(prep.aus)})
    fusions = [r.fusion for r in results]
    return tracking.log_model(
        models, prep.to_json(), cfg.to_yaml(), [m.to_json() for m in member_preps], fusions=fusions
    )
