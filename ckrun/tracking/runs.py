"""The active run: how it starts and ends, and everything logged into it.

Runs nest (trials under their study, the stages of `ckrun run` under an `mlflow run` parent)
and always end with an honest status. What is logged here carries the names of the MLflow
naming contract in docs/architecture.md; callers hand plain values (dicts, DataFrames, paths).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from ckrun.tracking.store import configure, experiment_id

KIND_TAG = "ckrun.kind"
KINDS = ("train", "trial", "study", "baseline", "evaluate", "cv", "pipeline")
MAX_PARAM_LENGTH = 6000


@dataclass
class RunHandle:
    run_id: str
    experiment_id: str
    name: str


def _env_run_id() -> str | None:
    return os.environ.get("MLFLOW_RUN_ID") or None


@contextlib.contextmanager
def start_run(
    *,
    kind: str,
    run_name: str,
    experiment: str | None = None,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
    system_metrics: bool = False,
    killed_on: tuple[type[BaseException], ...] = (),
) -> Iterator[RunHandle]:
    """A run that ends FINISHED, FAILED (exception, logged as `error`) or KILLED.

    A run started while another is active becomes its child, so trials nest under their
    study and the stages of `ckrun run` under an `mlflow run` parent. At top level, a run id
    exported by `mlflow run` is adopted instead of creating a duplicate. KeyboardInterrupt
    and the `killed_on` exceptions (e.g. a pruned trial) end the run KILLED with everything
    already logged kept.
    """
    configure()
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r}")
    parent = mlflow.active_run()
    nested = parent is not None
    all_tags = {KIND_TAG: kind, **(tags or {})}
    if description:
        all_tags["mlflow.note.content"] = description
    if parent is not None or not _env_run_id():
        exp_id = parent.info.experiment_id if parent is not None else experiment_id(experiment)
        run = mlflow.start_run(
            experiment_id=exp_id,
            run_name=run_name,
            nested=nested,
            tags=all_tags,
            log_system_metrics=system_metrics or None,
        )
    else:
        run = mlflow.start_run(log_system_metrics=system_metrics or None)  # adopts MLFLOW_RUN_ID
        mlflow.set_tags(all_tags)
        MlflowClient().set_tag(run.info.run_id, "mlflow.runName", run_name)
    handle = RunHandle(run.info.run_id, run.info.experiment_id, run_name)
    killed: tuple[type[BaseException], ...] = (*killed_on, KeyboardInterrupt)
    try:
        yield handle
    except killed as exc:
        with contextlib.suppress(Exception):
            mlflow.set_tag("ckrun.end_reason", type(exc).__name__)
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException as exc:
        with contextlib.suppress(Exception):
            mlflow.set_tag("ckrun.error", f"{type(exc).__name__}: {exc}"[:5000])
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    else:
        mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))


@contextlib.contextmanager
def parent_for_mlflow_run(run_name: str) -> Iterator[RunHandle | None]:
    """Under `mlflow run`, adopt its run as the `pipeline` parent of every stage; else nothing.

    Without this, the first stage would adopt MLFLOW_RUN_ID and the later ones would land
    as unrelated top-level runs.
    """
    if _env_run_id() and mlflow.active_run() is None:
        with start_run(kind="pipeline", run_name=run_name) as handle:
            yield handle
    else:
        yield None


def active_run_id() -> str | None:
    run = mlflow.active_run()
    return run.info.run_id if run else None


def set_tags(tags: Mapping[str, Any], run_id: str | None = None) -> None:
    clean = {k: str(v) for k, v in tags.items()}
    if run_id:
        for k, v in clean.items():
            MlflowClient().set_tag(run_id, k, v)
    else:
        mlflow.set_tags(clean)


def log_params(params: Mapping[str, Any]) -> None:
    """Flat params; long values truncated to MLflow's limit, never secrets (callers' duty)."""
    mlflow.log_params({k: str(v)[:MAX_PARAM_LENGTH] for k, v in params.items()})


def log_metrics(metrics: Mapping[str, float], step: int | None = None, run_id: str | None = None) -> None:
    clean = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
    if not clean:
        return
    if run_id:
        client = MlflowClient()
        for k, v in clean.items():
            client.log_metric(run_id, k, v, step=step or 0)
    else:
        mlflow.log_metrics(clean, step=step)


def final_metric_step(epochs_run: int) -> int:
    """Step of the final (restored-model) metrics: one past the last epoch.

    Per-epoch curves and final scores share names (docs/architecture.md), so the final value
    sits at its own step and is the one MLflow shows as latest in tables and compare views.
    """
    return int(epochs_run) + 1


def log_text(text: str, artifact_file: str) -> None:
    mlflow.log_text(text, artifact_file)


def log_dict(data: Any, artifact_file: str) -> None:
    mlflow.log_dict(data, artifact_file)


def log_artifact(path: Path | str, artifact_path: str | None = None) -> None:
    mlflow.log_artifact(str(path), artifact_path)


def log_figure_file(path: Path, artifact_dir: str) -> None:
    mlflow.log_artifact(str(path), artifact_dir)


def log_table(frame: pd.DataFrame, artifact_file: str) -> None:
    """A DataFrame as CSV (or JSON records when `artifact_file` ends in .json)."""
    if artifact_file.endswith(".json"):
        mlflow.log_dict(json.loads(frame.to_json(orient="records")), artifact_file)
    else:
        mlflow.log_text(frame.to_csv(index=False), artifact_file)


def log_dataset(manifest: pd.DataFrame, *, source: str, digest: str, name: str, context: str = "training") -> None:
    """The manifest as an MLflow dataset input, so runs on the same data line up by digest.

    The SQL store looks a dataset up and inserts it when missing; two workers logging the same
    dataset at once (their first trials) can both insert, and the loser gets a UNIQUE-constraint
    error. The retry finds the winner's row and only links it to this run.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = mlflow.data.from_pandas(manifest, source=source, name=name, digest=digest)  # type: ignore[attr-defined]
        for attempt in range(3):
            try:
                mlflow.log_input(dataset, context=context)
                return
            except mlflow.exceptions.MlflowException as exc:
                if attempt == 2 or not _is_unique_violation(exc):
                    raise
                time.sleep(0.2 * (attempt + 1))


def _is_unique_violation(exc: BaseException) -> bool:
    text = f"{exc} {exc.__cause__ or ''}".lower()
    return "unique" in text or "integrityerror" in text or "duplicate key" in text
