"""Optuna's view of a study: which hyperparameters mattered (Optuna's default importance evaluator).

The storage is found as `ckrun tune` found it (``--storage``, else ``$CKRUN_STORAGE``, else
``optuna.db`` beside mlflow.db), so the report reads the study the trials were written to,
not an ``optuna.db`` that happens to lie in the working directory.
Read-only: a storage URL that points at a missing SQLite or journal file, or at a database that
is not Optuna's (the MLflow store), is reported, not opened (Optuna would create its tables there).
"""

from __future__ import annotations

import warnings
from pathlib import Path


def param_importances(study_name: str, storage: str | None) -> tuple[dict[str, float] | None, str | None]:
    """(importances, note): importances of the study's first objective, or a note saying why not."""
    from ckrun.tune.storage import foreign_database, open_storage, resolve_storage

    spec = resolve_storage(storage)
    file = spec.url if spec.is_journal else None
    if spec.kind == "sqlite" and spec.url.startswith("sqlite:///"):
        file = spec.url.removeprefix("sqlite:///")
    if file is not None and not Path(file).is_file():
        return None, f"Optuna storage {spec.label} not found: no importance plot for study '{study_name}'."
    foreign = foreign_database(Path(file)) if file is not None and not spec.is_journal else None
    if foreign:  # Optuna would add its tables to it
        return None, f"Optuna storage {spec.label} is {foreign}: no importance plot for study '{study_name}'."
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(spec) if spec.is_journal else spec.url)
    except Exception as exc:
        return None, f"Could not load Optuna study '{study_name}': {str(exc).splitlines()[0] if str(exc) else exc}."
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    multi = len(study.directions) > 1
    if len(complete) < 2:  # one trial has no spread to attribute: Optuna would warn and call them all equal
        return None, (
            f"Optuna importances need at least two completed trials (study '{study_name}' has "
            f"{len(complete)}): run more trials for an importance plot."
        )
    try:
        from ckrun.tune.plots import importance_target

        target = importance_target(0) if multi else None
        with warnings.catch_warnings():  # "computes the importances ... to achieve low `target` values": negated
            warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes")
            importances = optuna.importance.get_param_importances(study, target=target)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, (
            f"Optuna importances need completed trials that vary their parameters "
            f"(study '{study_name}' has {len(complete)} complete): {reason}."
        )
    note = (
        "Importances are for the first objective (emotion macro-F1) of this multi-objective study." if multi else None
    )
    return {k: float(v) for k, v in importances.items()}, note
