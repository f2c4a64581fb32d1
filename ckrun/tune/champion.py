"""After the trials: the best trial on the parent run, its model registered and tested once.

The study's parent run gets the trials table, the best params and the best run's final metrics
(``best_*``), Optuna's plots, and trial counts; the best model (or its retrain on train+val)
becomes ``models:/<name>@champion`` and is scored once on the test split in its own evaluate
run (``champion_*`` on the parent). The best trial is chosen on validation scores only.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import yaml

from ckrun import names, tracking
from ckrun.config import TrainConfig, build_config
from ckrun.console import echo, warn
from ckrun.errors import CkrunError
from ckrun.tune.attrs import PARETO_TARGETS, RUN_ID_ATTR
from ckrun.tune.plots import log_study_plots
from ckrun.tune.study import trial_counts, trials_table

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

    from ckrun.data.loader import PreparedData
    from ckrun.tune.options import StudyResult, TuneOptions


def best_trials(study: Study, pareto: bool) -> tuple[FrozenTrial | None, list[FrozenTrial]]:
    """The best trial and the Pareto front (pareto: the front member with the best mean F1)."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        return None, []
    if not pareto:
        # Not study.best_trial: on PostgreSQL its ORDER BY value leaves ties in any order, so the
        # best (hence the champion) could change between two finalisations of the same trials.
        # Ties go to the earliest trial, whatever the storage.
        sign = 1.0 if study.direction.name == "MAXIMIZE" else -1.0
        return max(complete, key=lambda t: (sign * float(t.value), -t.number)), []  # type: ignore[arg-type]
    front = study.best_trials
    return max(front, key=lambda t: float(np.nanmean(t.values))), front


def log_best(study: Study, best: FrozenTrial | None, front: Sequence[FrozenTrial]) -> str | None:
    """Best params, the best run's final metrics (``best_*``), trials table and plots on the parent run."""
    tracking.log_table(trials_table(study), "trials.csv")
    if front:
        tracking.log_table(
            pd.DataFrame([{"number": t.number, **dict(zip(PARETO_TARGETS, t.values, strict=True))} for t in front]),
            "pareto_front.csv",
        )
    if best is None:
        return None
    run_id = best.user_attrs.get(RUN_ID_ATTR)
    tracking.set_tags({"ckrun.best_trial": best.number, "ckrun.best_run_id": run_id or ""})
    tracking.log_dict({"number": best.number, "values": best.values, "params": best.params}, "best_trial.json")
    if run_id:
        metrics = tracking.get_run(run_id).data.metrics
        tracking.log_metrics({f"best_{k}": v for k, v in metrics.items() if not k.startswith(("system/", "best_"))})
        with tempfile.TemporaryDirectory() as tmp:
            config = tracking.download_artifact(run_id, "config.yaml", Path(tmp))
            if config is not None:
                tracking.log_text(config.read_text(), "best_config.yaml")
    return run_id


def _best_config(run_id: str) -> TrainConfig:
    with tempfile.TemporaryDirectory() as tmp:
        path = tracking.download_artifact(run_id, "config.yaml", Path(tmp))
        if path is None:
            raise CkrunError(f"best run {run_id} has no config.yaml to retrain from")
        return build_config(yaml.safe_load(path.read_text()))


def train_plus_val(data: PreparedData) -> PreparedData:
    """The data with validation images also in train (val stays for the curves and thresholds)."""
    from ckrun.data.loader import PreparedData, manifest_digest

    manifest = data.manifest
    extra = manifest.loc[manifest["split"] == "val"].assign(split="train")
    merged = pd.concat([manifest, extra], ignore_index=True)
    return PreparedData(data.source, data.source_format, merged, manifest_digest(merged), data.skipped)


def retrain_best(best: FrozenTrial, run_id: str, data: PreparedData, options: TuneOptions) -> str | None:
    """Retrain the best config on train+val for the best trial's number of epochs; its model URI."""
    from ckrun.train import train

    trial_run = tracking.get_run(run_id)
    cfg = _best_config(run_id)
    epochs = int(trial_run.data.metrics.get("best_epoch", cfg.epochs))
    # Val is trained on now, so it cannot pick an epoch: the trial's kept epoch count is the
    # choice, and the retrain keeps the weights it ends with (averaged ones, under EMA/SWA).
    cfg = cfg.updated(epochs=max(1, epochs), early_stopping=0, selection="last", log_model=True)
    echo(f"retraining trial {best.number}'s config on train+val for {cfg.epochs} epochs")
    result = train(
        cfg,
        train_plus_val(data),
        kind="train",
        run_name=f"{options.study_name}-retrain",
        tags={
            "ckrun.study_name": options.study_name,
            "ckrun.retrained_from": run_id,
            "ckrun.trial_number": str(best.number),
            names.TRAIN_DATA_TAG: names.TRAINED_ON_VAL,
        },
        verbose=options.verbose,
    )
    return tracking.run_model_uri(result.run_id) if result.run_id else None


def _already_champion(run_id: str, options: TuneOptions) -> bool:
    """The alias already points at this trial's model (or, with --retrain, at a retrain of it).

    A resumed study whose best trial did not change must not move the alias: with --retrain it
    would also retrain again and register a new version of the same trial.
    """
    if not options.retrain:
        return tracking.alias_run_id(options.register_name) == run_id
    tags = tracking.alias_tags(options.register_name)
    return tags.get("ckrun.trial_run_id") == run_id and tags.get("ckrun.retrained") == "True"


def register_best(
    best: FrozenTrial, run_id: str, data: PreparedData, options: TuneOptions
) -> tuple[str | None, str | None]:
    """Register the best model (or its train+val retrain) as ``models:/<name>@champion``."""
    logged = tracking.run_model_uri(run_id)
    if logged is None and not options.retrain:
        warn(f"trial {best.number}'s run logged no model (log_model=false?): nothing to register")
        return None, None
    alias_uri = f"models:/{options.register_name}@champion"
    if _already_champion(run_id, options):
        version = tracking.alias_version(options.register_name)
        what = "the train+val retrain of trial" if options.retrain else "trial"
        echo(f"{alias_uri} already is {what} {best.number} (version {version})")
        return alias_uri, version
    source = retrain_best(best, run_id, data, options) if options.retrain else logged
    if source is None:
        return None, None
    version = tracking.register_model(source, options.register_name, alias="champion")
    tracking.tag_model_version(
        options.register_name,
        version,
        {
            "ckrun.study_name": options.study_name,
            "ckrun.trial_number": best.number,
            "ckrun.trial_run_id": run_id,
            "ckrun.retrained": options.retrain,
        },
    )
    echo(f"registered {source} as {alias_uri} (version {version})")
    return alias_uri, version


def evaluate_champion(model_uri: str, data: PreparedData) -> dict[str, float]:
    """Score the registered model once on the test split (its own evaluate run); ``champion_*`` on the parent."""
    from ckrun.evaluate import evaluate_model_uri

    result = evaluate_model_uri(model_uri, data.source, split="test")
    test = {k: v for k, v in result.metrics.items() if k.startswith("test_")}
    tracking.log_metrics({f"champion_{k}": v for k, v in test.items()})
    return test


def finalize(
    study: Study, worker_data: Callable[[], PreparedData], options: TuneOptions, result: StudyResult
) -> StudyResult:
    """Log the best trial on the parent run, then register and test the champion."""
    best, front = best_trials(study, options.pareto)
    result.best_trial, result.pareto_front = best, front
    result.best_run_id = log_best(study, best, front)
    if best is not None:
        log_study_plots(study, options.pareto)
    result.counts = trial_counts(study)
    tracking.log_metrics({f"trials_{k.lower()}": v for k, v in result.counts.items()})
    if best is None:
        warn(f"study {options.study_name!r} has no completed trial yet: nothing to register")
        return result
    if options.register and result.best_run_id:
        data = worker_data()
        result.model_uri, result.model_version = register_best(best, result.best_run_id, data, options)
        if result.model_uri:
            tracking.set_tags({"ckrun.registered_model": result.model_uri, "ckrun.model_version": result.model_version})
            result.test_metrics = evaluate_champion(result.model_uri, data)
    return result
