"""K-fold subject-exclusive cross-validation: one child run per fold, mean ± std on the parent.

On a dataset of ~120 subjects a single split moves scores by several points from the fold
assignment alone; the parent run's means and standard deviations say how much of a
difference between two configs is real. With `ensemble`, the parent run also logs one model
averaging the fold models (`ckrun.ensemble`).

`cross_validate_baseline` runs `ckrun baseline` on the very same folds (they depend only on
the data and `seed`), so a network's cross-validated scores have a floor measured on the same
test subjects: the first thing a reviewer compares them with.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
    folds: list[Any]  # TrainResult (network) or BaselineResult: each has run_id, metrics, diagnosis
    mean: dict[str, float]
    std: dict[str, float]
    verdict: str
    model_uri: str | None = None  # the fold ensemble, when asked for

    def summary_line(self) -> str:
        keys = (
            "test_emotion_accuracy",
            "test_emotion_f1",
            "test_au_f1_weighted",
            "test_au_f1",
            "val_emotion_f1",
            "val_au_f1",
        )
        parts = [
            f"{k} {self.mean[k]:.3f}" + (f"±{self.std[k]:.3f}" if np.isfinite(self.std.get(k, np.nan)) else "")
            for k in keys
            if k in self.mean
        ]
        return "  ".join([*parts, f"fit {self.verdict}"])


def aggregate(fold_metrics: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and (sample) standard deviation of every metric all folds report (bootstrap bounds excepted).

    A fold where a metric is undefined (NaN, e.g. ROC-AUC with an AU absent from its test
    split) is left out of that metric's mean and SD. The sample SD of one value is undefined,
    not 0: a metric only one fold defines gets NaN, which is not logged, rather than a spread
    of zero that would read as perfectly stable.
    """
    keys = set.intersection(*(set(m) for m in fold_metrics)) if fold_metrics else set()
    keys = {k for k in keys if not names.is_interval(k)}  # a fold's interval; the folds' spread is the std
    mean, std = {}, {}
    for key in sorted(keys):
        values = np.asarray([m[key] for m in fold_metrics], float)
        values = values[np.isfinite(values)]
        if len(values):
            mean[key] = float(values.mean())
            std[key] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
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

    cache = FaceCache(cfg.cache)

    def fit(i: int, fold: PreparedData, parent: str) -> TrainResult:
        return train(cfg, fold, run_name=f"fold-{i}", kind="train", tags=_fold_tags(i, parent), face_cache=cache)

    def finish(results: list[Any]) -> str | None:
        if not ensemble:
            return None
        from ckrun.ensemble import log_cv_ensemble

        return log_cv_ensemble(cfg, results)

    return _cross_validate(
        cfg,
        data,
        k,
        kind="cv",
        run_name=f"cv{k}-{timestamp()}",
        description=f"{k}-fold subject-exclusive cross-validation. " + describe_run(cfg, data),
        params={**run_params(cfg, data, []), "cv_folds": k},
        experiment=experiment,
        system_metrics=system_metrics,
        fit=fit,
        finish=finish,
    )


def cross_validate_baseline(
    cfg: TrainConfig,
    data: PreparedData,
    k: int,
    *,
    experiment: str | None = None,
    model: str = "best",
    c_grid: Sequence[float] | None = None,
) -> CVResult:
    """`ckrun baseline` on each of the folds `cross_validate` uses, under one parent run.

    The parent is a `baseline` run with a `cv_folds` param: reports set a cross-validated
    network against it (same data, folds and seed), never a single-split run.
    """
    from ckrun.baseline import SHARED_PARAMS, check_c_grid, check_model, run_baseline
    from ckrun.baselines import C_GRID
    from ckrun.data.pipeline import FaceCache

    check_model(model)  # refused before the parent run starts, not inside its first fold
    grid = check_c_grid(c_grid if c_grid is not None else C_GRID)
    cache = FaceCache(cfg.cache)

    def fit(i: int, fold: PreparedData, parent: str) -> Any:
        return run_baseline(
            cfg,
            fold,
            face_cache=cache,
            model=model,
            c_grid=grid,
            run_name=f"baseline-fold-{i}",
            tags=_fold_tags(i, parent),
        )

    def finish(results: list[Any]) -> None:
        kept = Counter(r.model for r in results)
        tracking.log_params(
            {"baseline_model": kept.most_common(1)[0][0], "baseline_models_kept": ",".join(r.model for r in results)}
        )

    params = run_params(cfg, data, [])
    return _cross_validate(
        cfg,
        data,
        k,
        kind="baseline",
        run_name=f"baseline-cv{k}-{timestamp()}",
        description=f"{k}-fold subject-exclusive cross-validation of the linear baseline ({model}), on the folds "
        f"`ckrun train --cv {k}` uses with seed {cfg.seed}, on {data.name} (digest {data.digest}).",
        params={key: params[key] for key in SHARED_PARAMS}
        | {"cv_folds": k, "baseline_request": model, "baseline_C_grid": json.dumps(grid)},
        experiment=experiment,
        system_metrics=False,
        fit=fit,
        finish=finish,
        fold_columns=lambda result: {"baseline_model": result.model},
    )


def _fold_tags(i: int, parent: str) -> dict[str, str]:
    return {"ckrun.fold": str(i), "ckrun.cv_parent": parent}


def _cross_validate(
    cfg: TrainConfig,
    data: PreparedData,
    k: int,
    *,
    kind: str,
    run_name: str,
    description: str,
    params: dict[str, Any],
    experiment: str | None,
    system_metrics: bool,
    fit: Callable[[int, PreparedData, str], Any],
    finish: Callable[[list[Any]], str | None],
    fold_columns: Callable[[Any], dict[str, Any]] = lambda result: {},
) -> CVResult:
    """The parent run, one `fit(fold number, fold data, parent run id)` per fold inside it, the
    fold means and spreads, then `finish` (which may log a model and return its URI).
    `fold_columns` adds a fold's own columns to `cv_folds.csv` (e.g. the baseline family it kept)."""
    folds = kfold_splits(data.manifest, k, seed=cfg.seed)  # fails before any run if a fold is unusable
    results: list[Any] = []
    with tracking.start_run(
        kind=kind, run_name=run_name, experiment=experiment, description=description, system_metrics=system_metrics
    ) as parent:
        tracking.log_params(params)
        tracking.log_text(cfg.to_yaml(), "config.yaml")
        for i, manifest in enumerate(folds, start=1):
            echo(f"--- fold {i}/{k}")
            fold = PreparedData(data.source, data.source_format, manifest, manifest_digest(manifest), data.skipped)
            results.append(fit(i, fold, parent.run_id))
        mean, std = aggregate([r.metrics for r in results])
        tracking.log_metrics(mean)
        tracking.log_metrics({f"{key}_std": value for key, value in std.items()})
        verdict = Counter(r.diagnosis.verdict for r in results).most_common(1)[0][0]
        tracking.set_tags({"fit_diagnosis": verdict})
        table = pd.DataFrame(
            [
                {"fold": i, "run_id": r.run_id, **fold_columns(r), "fit_diagnosis": r.diagnosis.verdict, **r.metrics}
                for i, r in enumerate(results, start=1)
            ]
        )
        tracking.log_table(table, "cv_folds.csv")
        model_uri = finish(results)
    result = CVResult(parent.run_id, results, mean, std, verdict, model_uri)
    echo(f"cross-validation ({k} folds): {result.summary_line()}")
    return result
