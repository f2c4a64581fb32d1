"""The floor under every deep result: logistic regression on downscaled face pixels.

Same crop, same split, same AU selection, same thresholds rule and the same metric names
as `ckrun train`, logged as a `baseline` run, so the compare view and reports always show
what a linear model gets from raw pixels next to the ResNet.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ckrun import names, tracking
from ckrun.arrays import SplitArrays, build_arrays, select_aus
from ckrun.config import TrainConfig
from ckrun.console import echo
from ckrun.data.labels import EMOTION_CLASSES
from ckrun.data.loader import PreparedData
from ckrun.metrics import Diagnosis, diagnose_fit, emotion_targets
from ckrun.run_logging import log_results, run_params
from ckrun.scoring import score_splits, summary_metrics

if TYPE_CHECKING:
    from ckrun.data.pipeline import FaceCache

BASELINE_SIZE = 32  # pixels per side; what a linear model sees


@dataclass
class BaselineResult:
    run_id: str
    metrics: dict[str, float]
    diagnosis: Diagnosis


def _features(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def _classifier(seed: int, c: float) -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))


def fit_predict(
    arrays: dict[str, SplitArrays], aus: list[str], *, seed: int = 0, c: float = 0.01
) -> dict[str, dict[str, np.ndarray]]:
    """Probabilities per split: one multinomial model for emotion, one-vs-rest per AU."""
    train = arrays["train"]
    x_train = _features(train.images)
    probs = {
        s: {"emotion": np.zeros((len(a.images), len(EMOTION_CLASSES))), "aus": np.full((len(a.images), len(aus)), 0.0)}
        for s, a in arrays.items()
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        y = emotion_targets(train.labels["emotion"])
        known = y >= 0
        if len(np.unique(y[known])) > 1:
            model = _classifier(seed, c).fit(x_train[known], y[known])
            classes = model.classes_
            for split, a in arrays.items():
                if len(a.images):
                    probs[split]["emotion"][:, classes] = model.predict_proba(_features(a.images))
        for j in range(len(aus)):
            target = train.labels["aus"][:, j]
            known = target >= 0
            if len(np.unique(target[known])) < 2:
                continue
            model = _classifier(seed, c).fit(x_train[known], target[known].astype(int))
            for split, a in arrays.items():
                if len(a.images):
                    probs[split]["aus"][:, j] = model.predict_proba(_features(a.images))[:, 1]
    return probs


def run_baseline(
    cfg: TrainConfig,
    data: PreparedData,
    *,
    experiment: str | None = None,
    face_cache: FaceCache | None = None,
    c: float = 0.01,
) -> BaselineResult:
    """Fit, score and log the baseline; `cfg` supplies crop, seed, AU and threshold rules."""
    from ckrun.data.pipeline import FaceCache

    aus = select_aus(data.part("train"), cfg, data.au_columns)
    with tracking.start_run(
        kind="baseline",
        run_name="baseline",
        experiment=experiment,
        description=f"Logistic regression (C={c}) on {BASELINE_SIZE}x{BASELINE_SIZE} grey "
        f"face pixels; a floor for the ResNet on {data.name} (digest {data.digest}).",
    ) as run:
        params = run_params(cfg, data, aus) | {"image_size": BASELINE_SIZE, "channels": 1}
        tracking.log_params(
            {
                k: params[k]
                for k in (
                    "image_size",
                    "channels",
                    "crop",
                    "crop_margin",
                    "seed",
                    "min_au_count",
                    "threshold_min_positives",
                    "threshold_shrinkage",
                    "data_source",
                    "data_digest",
                    "n_train",
                    "n_val",
                    "n_test",
                    "n_aus",
                    "au_list",
                )
            }
            | {"model": "logistic_regression", "C": c}
        )
        tracking.log_dataset(data.manifest, source=data.source, digest=data.digest, name=data.name)
        arrays, _ = build_arrays(
            cfg, data, aus, face_cache or FaceCache(cfg.cache), image_size=BASELINE_SIZE, channels=1
        )
        probs = fit_predict(arrays, aus, seed=cfg.seed, c=c)
        evaluations, _ = score_splits(probs, arrays, aus, cfg)
        metrics, objective_kind = summary_metrics(evaluations, arrays, cfg, bool(aus))
        diagnosis = diagnose_fit(
            metrics,
            metrics,
            None,
            objective=objective_kind,
            overfit_gap=cfg.overfit_gap,
            underfit_score=cfg.underfit_score,
        )
        metrics["fit_gap"] = diagnosis.fit_gap
        log_results(metrics, diagnosis, {}, 0, evaluations)
        echo(
            "baseline: "
            + "  ".join(
                f"{k} {metrics[k]:.3f}"
                for k in ("test_emotion_f1", "test_au_f1", names.split_metric("val", "emotion_f1"))
                if k in metrics
            )
        )
    return BaselineResult(run.run_id, metrics, diagnosis)
