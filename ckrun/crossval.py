"""K-fold subject-exclusive cross-validation: one child run per fold, mean ± std on the parent.

On a dataset of ~120 subjects a single split moves scores by several points from the fold
assignment alone; the parent run's means and standard deviations say how much of a
difference between two configs is real. With `ensemble`, the parent run also logs one model
averaging the fold models (`ckrun.ensemble`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ckrun import names, tracking
from ckrun.config import TrainConfig
from ckrun.console import echo
from ckrun.data.loader import PreparedData, manifest_digest
from ckrun.data.split import kfold_splits
from ckrun.run_logging import describe_run, run_params, timestamp
from ckrun.train import TrainResult, train


@dataclass
class CVResult:
    run_id: str
    folds: list[TrainResult]
    mean: dict[str, float]
    std: dict[str, float]
    verdict: str
    model_uri: str | None = None  # the fold ensemble, when asked for

    def summary_line(self) -> str:
        keys = ("test_emotion_f1", "test_au_f1", "val_emotion_f1", "val_au_f1")
        parts = [f"{k} {self.mean[k]:.3f}±{self.std[k]:.3f}" for k in keys if k in self.mean]
        return "  ".join([*parts, f"fit {self.verdict}"])


def aggregate(fold_metrics: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and (sample) standard deviation of every metric all folds report (bootstrap bounds excepted)."""
    keys = set.intersection(*(set(m) for m in fold_metrics)) if fold_metrics else set()
    keys = {k for k in keys if not names.is_interval(k)}  # a fold's interval; the folds' spread is the std
    mean, std = {}, {}
    for key in sorted(keys):
        values = np.asarray([m[key] for m in fold_metrics], float)
        values = values[np.isfinite(values)]
        if len(values):
            mean[key] = float(values.mean())
            std[key] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return mean, std


def cross_validate(
    cfg: TrainConfig,
    data: PreparedData,
    k: int,
    *,
    experiment: str | None = None,
    system_metrics: bool = False,
    ensemble: bool = False,
) -> CVResult:
    from ckrun.data.pipeline import FaceCache

    folds = kfold_splits(data.manifest, k, seed=cfg.seed)  # fails before any run if a fold is unusable
    cache = FaceCache(cfg.cache)
    results: list[TrainResult] = []
    with tracking.start_run(
        kind="cv",
        run_name=f"cv{k}-{timestamp()}",
        experiment=experiment,
        description=f"{k}-fold subject-exclusive cross-validation. " + describe_run(cfg, data),
        system_metrics=system_metrics,
    ) as parent:
        tracking.log_params({**run_params(cfg, data, []), "cv_folds": k})
        tracking.log_text(cfg.to_yaml(), "config.yaml")
        for i, manifest in enumerate(folds, start=1):
            echo(f"--- fold {i}/{k}")
            fold = PreparedData(data.source, data.source_format, manifest, manifest_digest(manifest), data.skipped)
            results.append(
                train(
                    cfg,
                    fold,
                    run_name=f"fold-{i}",
                    kind="train",
                    tags={"ckrun.fold": str(i), "ckrun.cv_parent": parent.run_id},
                    face_cache=cache,
                )
            )
        mean, std = aggregate([r.metrics for r in results])
        tracking.log_metrics(mean)
        tracking.log_metrics({f"{key}_std": value for key, value in std.items()})
        verdict = Counter(r.diagnosis.verdict for r in results).most_common(1)[0][0]
        tracking.set_tags({"fit_diagnosis": verdict})
        table = pd.DataFrame(
            [
                {"fold": i, "run_id": r.run_id, "fit_diagnosis": r.diagnosis.verdict, **r.metrics}
                for i, r in enumerate(results, start=1)
            ]
        )
        tracking.log_table(table, "cv_folds.csv")
        model_uri = None
        if ensemble:
            from ckrun.ensemble import log_cv_ensemble

            model_uri = log_cv_ensemble(cfg, results)
    result = CVResult(parent.run_id, results, mean, std, verdict, model_uri)
    echo(f"cross-validation ({k} folds): {result.summary_line()}")
    return result
