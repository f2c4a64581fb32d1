"""Reading runs back: for reports, the UI, tuning and tests.

Read-only helpers returning plain results (MLflow entities, DataFrames, local files); the
report package turns them into tables and figures. `end_stale_run` is the one write: it
closes a run that a crashed tuning worker left RUNNING.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from ckrun.errors import CkrunError
from ckrun.tracking.store import DEFAULT_EXPERIMENT, configure, refuse_deleted


def get_run(run_id: str) -> Any:
    configure()
    return MlflowClient().get_run(run_id)


def search_runs(experiment: str | None = None, filter_string: str = "", max_results: int = 5000) -> pd.DataFrame:
    """Runs of an experiment as a DataFrame (``params.*``, ``metrics.*``, ``tags.*`` columns)."""
    configure()
    exp = MlflowClient().get_experiment_by_name(experiment or DEFAULT_EXPERIMENT)
    if exp is not None:
        refuse_deleted(exp)
    if exp is None:
        if experiment is None and os.environ.get("MLFLOW_EXPERIMENT_ID"):
            ids = [os.environ["MLFLOW_EXPERIMENT_ID"]]
        else:
            raise CkrunError(f"no MLflow experiment named {experiment or DEFAULT_EXPERIMENT!r}")
    else:
        ids = [exp.experiment_id]
    return mlflow.search_runs(experiment_ids=ids, filter_string=filter_string, max_results=max_results)


def metric_history(run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) pairs of one metric, in step order."""
    configure()
    return sorted((m.step, m.value) for m in MlflowClient().get_metric_history(run_id, key))


def child_runs(parent_run_id: str) -> pd.DataFrame:
    run = get_run(parent_run_id)
    return mlflow.search_runs(
        experiment_ids=[run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'"
    )


def experiment_id_by_name(name: str) -> str | None:
    """The id of an existing, non-deleted experiment (for UI links), or None; creates nothing."""
    configure()
    found = MlflowClient().get_experiment_by_name(name)
    return found.experiment_id if found is not None and found.lifecycle_stage != "deleted" else None


def download_artifact(run_id: str, path: str, dst: Path) -> Path | None:
    """One artifact of a run into `dst`, or None when the run does not have it."""
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(dst)))
    except Exception:
        return None


def read_artifact_text(run_id: str, path: str) -> str | None:
    """One text artifact of a run (JSON, CSV, Markdown), or None when the run lacks it."""
    with tempfile.TemporaryDirectory() as tmp:
        local = download_artifact(run_id, path, Path(tmp))
        if local is None or not local.is_file():
            return None
        return local.read_text()


def copy_artifact(run_id: str, path: str, dst: Path) -> Path | None:
    """One artifact file of a run copied to exactly `dst` (e.g. a PNG a report embeds)."""
    with tempfile.TemporaryDirectory() as tmp:
        local = download_artifact(run_id, path, Path(tmp))
        if local is None or not local.is_file():
            return None
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, dst)
        return dst


def running_child_runs(parent_run_id: str) -> list[str]:
    """Ids of the RUNNING children of a run (a dead worker's trials, evaluations, retrains)."""
    configure()
    try:
        run = MlflowClient().get_run(parent_run_id)
        found = MlflowClient().search_runs(
            [run.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'RUNNING'",
        )
    except mlflow.exceptions.MlflowException:
        return []
    return [r.info.run_id for r in found]


def end_stale_run(run_id: str, reason: str) -> bool:
    """End a run that a dead process left RUNNING as KILLED, with `reason` as ``ckrun.end_reason``.

    Trials are ordinary `start_run` runs nested under the study's parent run; a worker that
    dies mid-trial leaves them RUNNING, and the study closes them here when it finds the worker
    dead (`ckrun.tune.liveness`). KILLED, like any run stopped from outside, with everything it
    logged kept. Returns False when the run is already finished (or gone), so a second worker
    doing the same clean-up never rewrites history. (optuna_integration.MLflowCallback is
    deprecated and would log a second, differently named run per trial.)
    """
    configure()
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return False
    if run.info.status != RunStatus.to_string(RunStatus.RUNNING):
        return False
    client.set_tag(run_id, "ckrun.end_reason", reason[:5000])
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
    return True


def fail_finished_run(run_id: str, error: str) -> None:
    """Mark a run that ended FINISHED as FAILED, with `error` as ``ckrun.error``.

    A trial's training can finish cleanly and still give Optuna nothing to record (a NaN
    objective): Optuna fails the trial, and its run must say FAILED too, not FINISHED.
    """
    configure()
    client = MlflowClient()
    client.set_tag(run_id, "ckrun.error", error[:5000])
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
